"""The model registry: register a candidate, find and score the champion.

Public KFP components (``from flywheel.components import ...``). Each one only declares typed inputs
and outputs and hands paths to a plain function in ``components.steps``; failures surface as one
line naming the step.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from flywheel.components.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def register_model(
    registry: str,
    model_name: str,
    workload: str,
    run_id: str,
    run_name: str,
    registry_state: str,
    training_batches: int,
    model: Input[Model],
    metrics: Input[Metrics],
    train: Input[Dataset],
    test: Input[Dataset],
    champion: Input[Metrics],
) -> NamedTuple("Registered", [("version", int), ("created", bool), ("sha256", str)]):
    """Add the model as a candidate version with metrics and lineage (data, code, parameters, run).

    The lineage also keeps which leading batches trained it (so a report can mark in-sample
    scores) and the champion's scores on the same held-out rows (so it can show whether the
    retrain helped). ``registry_state`` keys the cache to the registry's state
    (``pipelines.registry_state``). Without a ``run_id`` (a local run, cached by its inputs), the
    run named is the one that trained the model.
    """
    from collections import namedtuple
    from pathlib import Path

    from flywheel.components.contract.workload import load_workload
    from flywheel.components.monitoring.scores import logged_metrics
    from flywheel.components.steps.register import register_model as register
    from flywheel.components.steps.runtime import reported_step

    def dataset(artifact) -> dict:
        return {
            key: artifact.metadata.get(key)
            for key in ("source", "source_fingerprint", "rows", "sha256", "columns")
        } | {"uri": artifact.uri}

    with reported_step("register-model"):
        registration = register(
            registry_uri=registry,
            model_name=model_name or load_workload(workload).name,
            model_path=Path(model.path),
            metrics=logged_metrics(metrics.metadata),
            hyperparameters=model.metadata.get("hyperparameters", {}),
            lineage={
                "data": {
                    "train": dataset(train),
                    "test": dataset(test),
                    "training_batches": training_batches,
                },
                "compared_with": {
                    "version": int(champion.metadata.get("version", 0)) or None,
                    "metrics": logged_metrics(champion.metadata),
                },
                "code": {
                    "entry_point": model.metadata.get("entry_point"),
                    "sha256": model.metadata.get("code_sha256"),
                    "workload": workload,
                },
                "training": {
                    "job_name": model.metadata.get("job_name"),
                    "compute": model.metadata.get("compute"),
                    "metrics": model.metadata.get("metrics", {}),
                    "model_artifact": model.uri,
                },
                "run": {"id": run_id, "name": run_name}
                if run_id
                else {"name": Path(model.path).parents[1].name},
            },
        )
    verb = "registered" if registration.created else "already registered as"
    print(f"{verb} {registration.version.name} version {registration.version.version}", flush=True)
    registered = namedtuple("Registered", ["version", "created", "sha256"])
    return registered(
        registration.version.version, registration.created, registration.version.model_sha256
    )


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def find_champion(registry: str, model_name: str, workload: str, champion: Output[Model]):
    """Fetch the registry's champion; fails, saying so, when there is none yet."""
    from pathlib import Path

    from flywheel.components.contract.workload import load_workload
    from flywheel.components.steps.champion import find_champion as find
    from flywheel.components.steps.runtime import reported_step

    with reported_step("find-champion"):
        version = find(
            registry_uri=registry,
            model_name=model_name or load_workload(workload).name,
            model_path=Path(champion.path),
        )
    train_data = version.lineage.get("data", {}).get("train", {})
    champion.metadata.update(
        {
            "name": version.name,
            "version": version.version,
            "model_uri": version.model_uri,
            "metrics": dict(version.metrics),
            "columns": train_data.get("columns") or [],
        }
    )
    print(f"champion: {version.name} version {version.version}", flush=True)


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def score_champion(
    registry: str,
    model_name: str,
    workload: str,
    compute: str,
    compute_config: dict,
    registry_state: str,
    test: Input[Dataset],
    metrics: Output[Metrics],
):
    """Score the current champion on the candidate's held-out rows, so the gate compares like with like.

    ``registry_state`` keys the cache to the registry's state: a new champion is scored again.
    """
    import json
    import tempfile
    from pathlib import Path

    from flywheel.components.contract.workload import load_workload
    from flywheel.components.registry import open_registry
    from flywheel.components.steps.champion import find_champion
    from flywheel.components.steps.evaluate import evaluate_model as evaluate
    from flywheel.components.steps.runtime import reported_step

    with reported_step("score-champion"):
        name = model_name or load_workload(workload).name
        if open_registry(registry).champion(name) is None:
            metrics.metadata["version"] = 0
            Path(metrics.path).write_text("{}")
            print("no champion yet", flush=True)
            return
        with tempfile.TemporaryDirectory() as scratch:
            model_path = Path(scratch) / "model.tar.gz"
            champion = find_champion(registry_uri=registry, model_name=name, model_path=model_path)
            result = evaluate(
                workload_path=workload,
                compute=compute,
                compute_config=compute_config,
                model_path=model_path,
                test_path=Path(test.path),
            )
    for metric, value in result.metrics.items():
        metrics.log_metric(metric, value)
    metrics.metadata["version"] = champion.version
    metrics.metadata["model_sha256"] = champion.model_sha256
    Path(metrics.path).write_text(json.dumps(result.metrics, indent=2))
    print(f"champion version {champion.version} on these rows: {result.metrics}", flush=True)
