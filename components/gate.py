"""The quality gate: decide whether a candidate beats the champion, and promote it (or ask a
person to approve it).

Public KFP components (``from flywheel.components import ...``). Each one only declares typed inputs
and outputs and hands paths to a plain function in ``components.steps``; failures surface as one
line naming the step.
"""

from kfp import dsl
from kfp.dsl import Input, Metrics

from flywheel.components.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def decide_promotion(
    workload: str,
    version: int,
    sha256: str,
    margin: float,
    registry_state: str,
    candidate: Input[Metrics],
    champion: Input[Metrics],
) -> bool:
    """The quality gate: decide whether the candidate beats the champion on the workload's objective.

    Both were scored on the same held-out rows. With no champion the candidate wins; otherwise it
    must be better by more than ``margin`` and by more than float noise, so a tie never replaces
    the champion.

    Args:
        workload: The workload, whose objective metric and goal (minimize or maximize) decide.
        version: The candidate's registered version (from ``register_model``).
        sha256: The candidate's model digest (from ``register_model``); a champion with the same
            digest is the same model and is not replaced.
        margin: How much better than the champion the candidate must be; zero or more.
        registry_state: A digest of the registry's state, given so that the cache misses when
            the registry changed; empty when caching is off.
        candidate: The candidate's scores on the held-out rows (from ``evaluate_model``).
        champion: The champion's scores on the same rows (from ``score_champion``).

    Returns:
        Output: True when the candidate should be promoted.
    """
    from flywheel.components.contract.workload import load_workload
    from flywheel.components.monitoring.scores import logged_metrics
    from flywheel.components.steps.gate import decide_promotion as decide
    from flywheel.components.steps.runtime import reported_step

    with reported_step("decide-promotion"):
        spec = load_workload(workload)
        champion_version = int(champion.metadata.get("version", 0)) or None
        decision = decide(
            candidate_version=version,
            candidate_sha256=sha256,
            candidate_metrics=logged_metrics(candidate.metadata),
            champion_version=champion_version,
            champion_sha256=champion.metadata.get("model_sha256"),
            champion_metrics=logged_metrics(champion.metadata) if champion_version else None,
            metric=spec.objective_metric,
            goal=spec.objective_goal,
            margin=margin,
        )
    print(f"promote: {decision.promote} ({decision.reason})", flush=True)
    return decision.promote


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def promote_model(
    registry: str,
    model_name: str,
    workload: str,
    version: int,
    registry_state: str,
    champion: Input[Metrics],
):
    """Make the candidate the champion, or with the workload's ``approval: manual`` ask for approval.

    With ``approval: auto`` (the default) the candidate is Approved and becomes the champion. With
    ``manual`` it stays PendingManualApproval, and the workload's ``notify`` targets are sent its
    scores against the champion's and the ``flywheel approve`` command. Neither happens if the
    champion changed since the gate compared (promoting would skip that comparison) or if someone
    already rejected this version; the log says why.

    Args:
        registry: The model registry (a folder, ``file://`` URI or ``sagemaker://`` URI, as for
            ``register_model``).
        model_name: The registered model's name; empty uses the workload's name.
        workload: The workload: its name is the model's when ``model_name`` is empty, and its
            ``approval`` and ``notify`` say whether a person decides and who is told.
        version: The candidate's registered version (from ``register_model``).
        registry_state: A digest of the registry's state, given so that the cache misses when
            the registry changed; empty when caching is off.
        champion: The champion the gate compared with (from ``score_champion``); its version
            must still be the registry's champion.
    """
    from flywheel.components.contract.workload import load_workload
    from flywheel.components.monitoring.scores import logged_metrics
    from flywheel.components.steps.gate import promote_model as promote
    from flywheel.components.steps.runtime import reported_step

    with reported_step("promote-model"):
        spec = load_workload(workload)
        compared_with = int(champion.metadata.get("version", 0)) or None
        decision = promote(
            registry_uri=registry,
            model_name=model_name or spec.name,
            version=version,
            compared_with=compared_with,
            reason=f"beat version {compared_with} on the same held-out rows"
            if compared_with
            else "first champion",
            approval=spec.approval,
            notify_target=spec.notify,
            champion_metrics=logged_metrics(champion.metadata) if compared_with else None,
            objective_metric=spec.objective_metric,
        )
    print(f"{'promoted' if decision.promote else 'not promoted'}: {decision.reason}", flush=True)
