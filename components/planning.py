"""Plan a training run: whether the workload's model can be scored, so the pipeline knows its shape.

Public KFP component (``from flywheel.components import plan_training``). Its output (one bool)
feeds a ``dsl.If``; it is a plain return value rather than a named one because kfp.local resolves
a condition's task output only under KFP's default name, ``Output``.
"""

from kfp import dsl

from flywheel.components.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def plan_training(workload: str, code_fingerprint: str) -> bool:
    """Say whether the trained model will be scored, so evaluation and the quality gate can run.

    A model is scored by the workload's serving handlers or by its evaluation script. A
    training-only workload (``serving: false`` and no evaluation script) has neither, so its
    pipeline trains, registers the model as a candidate with no metrics, and stops; this step
    says so in one line.

    Args:
        workload: The workload to train.
        code_fingerprint: The digest of the script folder and ``workload.yaml``, given so that a
            changed workload misses the cache.

    Returns:
        Output: True when the model is scored (evaluate, score the champion, the quality gate);
            False for a training-only workload (``task.outputs["Output"]``).
    """
    from flywheel.components.contract.workload import load_workload
    from flywheel.components.steps.runtime import reported_step
    from flywheel.components.steps.training_plan import TRAINING_ONLY

    with reported_step("plan-training"):
        scored = load_workload(workload).scores
    if not scored:
        print(TRAINING_ONLY, flush=True)
    return scored
