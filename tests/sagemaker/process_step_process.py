"""A processing job launched from a process of its own, as a KFP task pod runs it, for kill-and-retry
tests.

Usage: ``python process_step_process.py <folder> <compute_config JSON>``. ``<folder>/source`` holds
the script and ``<folder>/raw`` its input; the ``features`` output is fetched to
``<folder>/features`` and ``report`` stays on S3. AWS endpoints come from the environment
(``AWS_ENDPOINT_URL_SAGEMAKER`` and ``AWS_ENDPOINT_URL``).
"""

import json
import sys
from pathlib import Path

from flywheel.components.compute.sagemaker import SageMakerBackend, SageMakerConfig
from flywheel.components.compute.sagemaker.polling import Backoff, PollSchedule
from flywheel.components.contract.processing import (
    ProcessingInput,
    ProcessingJobSpec,
    ProcessingOutput,
)
from flywheel.components.steps.runtime import reported_step

# Describe every 0.2 s instead of every 5-60 s, so a test takes seconds; the calls are the same.
PollSchedule.__init__.__defaults__ = (0.2, 0.0, 0.2)
# Throttled calls are asked again within 0.05 s instead of up to 30 s, for the same reason.
Backoff.__init__.__defaults__ = (0.02, 0.05)

folder, config = Path(sys.argv[1]), json.loads(sys.argv[2])
spec = ProcessingJobSpec(
    job_name="qsar-features",
    source_dir=str(folder / "source"),
    entry_point="preprocess.py",
    inputs=(ProcessingInput("raw", str(folder / "raw")),),
    outputs=(
        ProcessingOutput("features", destination=str(folder / "features")),
        ProcessingOutput("report"),
    ),
    arguments=("--test-fraction", "0.2"),
)
with reported_step("preprocess"):
    result = SageMakerBackend(SageMakerConfig.from_mapping(config)).process(spec)
print(f"processed {result.job_name} {json.dumps(dict(result.outputs), sort_keys=True)}", flush=True)
