"""A SageMaker tuning job launched from a process of its own, as a KFP task pod runs it, for
kill-and-retry tests.

Usage: ``python tune_step_process.py <compute_config JSON> <result.json>``. The QSAR example's
training job, searched over two ranges; AWS endpoints come from the environment
(``AWS_ENDPOINT_URL_SAGEMAKER`` and ``AWS_ENDPOINT_URL``).
"""

import json
import sys
from dataclasses import asdict
from pathlib import Path

from flywheel.components.compute.sagemaker import AwsClients, SageMakerConfig
from flywheel.components.compute.sagemaker.polling import Backoff, PollSchedule
from flywheel.components.compute.sagemaker.s3 import S3Uri
from flywheel.components.compute.sagemaker.training import training_request
from flywheel.components.compute.sagemaker.tuning import run_tuning, tuning_request
from flywheel.components.contract.tuning import tuning_of
from flywheel.components.contract.workload import load_workload
from flywheel.components.steps.runtime import reported_step

# Describe every 0.2 s instead of every 5-60 s, so a test takes seconds; the calls are the same.
PollSchedule.__init__.__defaults__ = (0.2, 0.0, 0.2)
# Throttled calls are asked again within 0.05 s instead of up to 30 s, for the same reason.
Backoff.__init__.__defaults__ = (0.02, 0.05)

SECTION = {
    "objective": {"metric": "test_rmse", "type": "Minimize"},
    "strategy": "Bayesian",
    "ranges": {
        "n_estimators": {"type": "integer", "min": 50, "max": 800, "scaling": "Logarithmic"},
        "max_features": {"type": "categorical", "values": ["sqrt", "log2"]},
    },
    "max_jobs": 4,
    "max_parallel_jobs": 2,
}

config = SageMakerConfig.from_mapping(json.loads(sys.argv[1]))
result_path = Path(sys.argv[2])
with reported_step("tune"):
    workload = load_workload("builtin:qsar")
    spec = tuning_of(
        {"tuning": SECTION}, workload.hyperparameters, [m.name for m in workload.metric_definitions]
    )
    job = workload.training_job(
        job_name="qsar",
        channels={"train": f"{config.s3_prefix}/data/train"},
        hyperparameters=workload.resolve_hyperparameters({}),
        output_location=str(config.s3_prefix),
    )
    bucket = config.s3_prefix.bucket
    training = training_request(
        job,
        config,
        image=config.image_uri,
        code=S3Uri(bucket, "flywheel/code/0123456789abcdef/sourcedir.tar.gz"),
        channels={"train": S3Uri(bucket, "flywheel/data/train")},
        region="us-east-1",
    )
    request = tuning_request(spec, training, run_id="retry-run")
    result = run_tuning(AwsClients.connect("us-east-1"), request)
result_path.write_text(json.dumps(asdict(result), default=str))
print(f"tuned {result.tuning_job_name} best {result.best_training_job}", flush=True)
