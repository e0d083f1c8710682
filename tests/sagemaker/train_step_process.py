"""The real train step in a process of its own, as a KFP task pod runs it, for kill-and-retry tests.

Usage: ``python train_step_process.py <train.csv> <test.csv> <model.tar.gz> <compute_config JSON>``.
AWS endpoints come from the environment (``AWS_ENDPOINT_URL_SAGEMAKER`` and ``AWS_ENDPOINT_URL``).
"""

import json
import sys
from pathlib import Path

from flywheel.components.compute.sagemaker.polling import Backoff, PollSchedule
from flywheel.components.steps.runtime import reported_step
from flywheel.components.steps.train import train_model

# Describe every 0.2 s instead of every 5-60 s, so a test takes seconds; the calls are the same.
PollSchedule.__init__.__defaults__ = (0.2, 0.0, 0.2)
# Throttled calls are asked again within 0.05 s instead of up to 30 s, for the same reason.
Backoff.__init__.__defaults__ = (0.02, 0.05)

train, test, model, config = sys.argv[1:]
with reported_step("train-model"):
    trained = train_model(
        workload_path="builtin:qsar",
        compute="sagemaker",
        compute_config=json.loads(config),
        hyperparameters={},
        train_path=Path(train),
        test_path=Path(test),
        model_path=Path(model),
    )
print(f"trained {trained.job_name}", flush=True)
