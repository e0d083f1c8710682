"""The toolkit's training module for several processes per host: the user's script under torchrun.

SageMaker's PyTorch container names its own module in ``SAGEMAKER_TRAINING_MODULE`` and, for
``distribution={"torch_distributed": {"enabled": True}}``, starts the script with the toolkit's
``TorchDistributedRunner``. This module does the same for the EKS backend, with the process count
of the pod's placement, so a multi-GPU pod runs ``torchrun --nproc_per_node N script --hp value``.
"""

from __future__ import annotations

import os

PROCESSES_PER_HOST_ENV = "FLYWHEEL_PROCESSES_PER_HOST"
MODULE = f"{__name__}:main"


def main() -> None:
    """Run the user's entry point under ``torchrun``, as the toolkit's ``train`` would run it alone."""
    from sagemaker_training import entry_point, environment, params, runner

    env = environment.Environment()
    entry_point.run(
        env.module_dir,
        env.user_entry_point,
        env.to_cmd_args(),
        env.to_env_vars(),
        runner_type=runner.TorchDistributedRunnerType,
        extra_opts={params.MPI_PROCESSES_PER_HOST: int(os.environ[PROCESSES_PER_HOST_ENV])},
    )
