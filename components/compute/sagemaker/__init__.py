"""SageMaker: training, processing, batch transform, models, endpoints and the model registry, as
launchers that never duplicate a job on retry, stop the job on cancel, and stream its logs live.

What others may use is exported here; the rest of the package is private.
"""

from flywheel.components.compute.sagemaker.backend import SageMakerBackend
from flywheel.components.compute.sagemaker.clients import AwsClients
from flywheel.components.compute.sagemaker.remote_runner import StepCancelledError, Watch, run_job
from flywheel.components.compute.sagemaker.specs import SageMakerConfig

__all__ = [
    "AwsClients",
    "SageMakerBackend",
    "SageMakerConfig",
    "StepCancelledError",
    "Watch",
    "run_job",
]
