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
    train: Input[Dataset],
    test: Input[Dataset],
    metrics: Input[Metrics] = None,
    champion: Input[Metrics] = None,
) -> NamedTuple("Registered", [("version", int), ("created", bool), ("sha256", str)]):
    """Register the model as a candidate version, with its metrics and full lineage.

    The lineage says where the model came from: the data (with which leading batches trained
    it, so a report can mark in-sample scores), the code, the hyperparameters, the training job
    and the run; it also keeps the champion's scores on the same held-out rows, so a report can
    show whether the retrain helped. Registering the same model again returns its version.

    Args:
        registry: The model registry: a folder (or ``file://`` URI) for the local registry, or
            ``sagemaker://<region>/<bucket>/<prefix>?image=<serving image>`` for SageMaker Model
            Registry.
        model_name: The registered model's name; empty uses the workload's name.
        workload: The workload the model was trained for; recorded in the lineage.
        run_id: The pipeline run's id, recorded in the lineage; empty (a local run, cached by its
            inputs) names the run that trained the model instead.
        run_name: The pipeline run's name, recorded with ``run_id``.
        registry_state: A digest of the registry's state, given so that the cache misses when
            the registry changed; empty when caching is off.
        training_batches: How many leading batches trained the model, recorded in the lineage.
        model: The trained model (from ``train_model``); its hyperparameters are recorded with
            the types ``workload.yaml`` declares (an int stays an int).
        train: The training rows (from ``prepare_data``), recorded in the lineage.
        test: The held-out rows (from ``prepare_data``), recorded in the lineage.
        metrics: The model's scores on the held-out rows (from ``evaluate_model``); omitted for
            a training-only workload (``plan_training``), which registers with no metrics.
        champion: The champion's scores on the same held-out rows (from ``score_champion``);
            optional, for a pipeline that compares in a condition of its own.

    When the model's training was tracked in MLflow, the lineage keeps its tracking run, and that
    run is tagged with this version and given the held-out scores.

    Returns:
        version: The candidate's version number in the registry.
        created: False when this exact model was already registered.
        sha256: The digest of the registered ``model.tar.gz``.
    """
    from collections import namedtuple
    from pathlib import Path

    from flywheel.components.contract.workload import load_workload
    from flywheel.components.monitoring.scores import logged_metrics
    from flywheel.components.steps.register import register_model as register
    from flywheel.components.steps.runtime import reported_step
    from flywheel.components.steps.tuning_rounds import tuning_lineage

    def dataset(artifact) -> dict:
        return {
            key: artifact.metadata.get(key)
            for key in ("source", "source_fingerprint", "rows", "sha256", "columns")
        } | {"uri": artifact.uri}

    with reported_step("register-model"):
        spec = load_workload(workload)
        registration = register(
            registry_uri=registry,
            model_name=model_name or spec.name,
            model_path=Path(model.path),
            metrics=logged_metrics(metrics.metadata) if metrics is not None else {},
            hyperparameters=model.metadata.get("hyperparameters", {}),
            declared=spec.hyperparameters,
            lineage={
                "data": {
                    "train": dataset(train),
                    "test": dataset(test),
                    "training_batches": training_batches,
                },
                "compared_with": {
                    "version": int(champion.metadata.get("version", 0)) or None
                    if champion is not None
                    else None,
                    "metrics": logged_metrics(champion.metadata) if champion is not None else {},
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
                    # The MLflow run that recorded the training (its series, its parameters).
                    "tracking_run_id": model.metadata.get("tracking_run_id") or None,
                    "tracking_uri": model.metadata.get("tracking_uri") or None,
                },
                "run": {"id": run_id, "name": run_name}
                if run_id
                else {"name": Path(model.path).parents[1].name},
                # A tuned model's search: the tuning run, the winning trial and its parameters.
                **(
                    {"tuning": tuning_lineage(model.metadata["tuning"], spec)}
                    if "tuning" in model.metadata
                    else {}
                ),
            },
        )
    verb = "registered" if registration.created else "already registered as"
    print(f"{verb} {registration.version.name} version {registration.version.version}", flush=True)
    if model.metadata.get("tracking_run_id"):
        from flywheel.components.tracking import link_registered_version

        link_registered_version(
            model.metadata["tracking_run_id"],
            model_name=registration.version.name,
            version=registration.version.version,
            registry=registry,
            pipeline_run_id=run_id,
            scores=logged_metrics(metrics.metadata) if metrics is not None else {},
            tracking_uri=model.metadata.get("tracking_uri", ""),
        )
    registered = namedtuple("Registered", ["version", "created", "sha256"])
    return registered(
        registration.version.version, registration.created, registration.version.model_sha256
    )


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def find_champion(registry: str, model_name: str, workload: str, champion: Output[Model]):
    """Fetch the registry's current champion, the model that serves; fail, saying so, when none.

    Args:
        registry: The model registry (a folder, ``file://`` URI or ``sagemaker://`` URI, as for
            ``register_model``).
        model_name: The registered model's name; empty uses the workload's name.
        workload: The workload, whose name is the model's when ``model_name`` is empty.

    Returns:
        champion: The champion's ``model.tar.gz``; metadata: name, version, model_uri, metrics
            and the columns it was trained on.
    """
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

    The champion's registered scores came from other rows; scoring it again on these rows makes
    the comparison fair. With no champion yet the metrics are empty and ``version`` is 0.

    Args:
        registry: The model registry (a folder, ``file://`` URI or ``sagemaker://`` URI, as for
            ``register_model``).
        model_name: The registered model's name; empty uses the workload's name.
        workload: The workload the champion was trained for; its serving handlers score the rows.
        compute: Where to run batch transform: ``local``, ``sagemaker`` or ``eks-gpu``.
        compute_config: The backend's settings; ``{}`` for ``local``.
        registry_state: A digest of the registry's state, given so that a new champion misses the
            cache and is scored again; empty when caching is off.
        test: The candidate's held-out rows (from ``prepare_data``).

    Returns:
        metrics: The champion's scores on these rows; metadata: its version (0 for none) and
            model_sha256.
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
