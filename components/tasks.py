"""KFP v2 components of the training pipeline.

Each component only declares inputs and outputs and hands paths to a step in
``components.steps``; the runtime image has Flywheel installed, so no package is installed at
task start (``install_kfp_package=False``) and the local runner starts a task in well under a
second. Failures surface as one line naming the step (``components.runtime.reported_step``).
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output

# Built from the repository's Dockerfile; the tag moves with the package version.
RUNTIME_IMAGE = "ghcr.io/flywheel-mlops/runtime-python3.11:0.1.0"
# The same image with the ``gpu`` extra (torch with CUDA), for training pods on EKS GPU nodes.
GPU_RUNTIME_IMAGE = "ghcr.io/flywheel-mlops/runtime-python3.11-gpu:0.1.0"


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def prepare_data(
    source: str,
    workload: str,
    batch_count: int,
    training_batches: int,
    test_fraction: float,
    seed: int,
    order_by: str,
    source_fingerprint: str,
    train: Output[Dataset],
    test: Output[Dataset],
    batches: Output[Dataset],
):
    """Check the source table and write train/test splits plus ordered batches for replay.

    ``source_fingerprint`` is the source's digest, given so that changed data misses the cache.
    """
    from pathlib import Path

    from flywheel.components.runtime import reported_step
    from flywheel.components.steps.prepare import prepare_data as prepare

    with reported_step("prepare-data"):
        prepared = prepare(
            source=source,
            workload_path=workload,
            batch_count=batch_count,
            training_batches=training_batches,
            test_fraction=test_fraction,
            seed=seed,
            order_by=order_by,
            train_path=Path(train.path),
            test_path=Path(test.path),
            batches_dir=Path(batches.path),
        )
    common = {
        "source": source,
        "source_fingerprint": source_fingerprint,
        "columns": prepared.columns,
    }
    train.metadata.update({**common, "rows": prepared.train_rows, "sha256": prepared.train_sha256})
    test.metadata.update({**common, "rows": prepared.test_rows, "sha256": prepared.test_sha256})
    batches.metadata.update({**common, "batch_count": prepared.batch_count, "order_by": order_by})


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def train_model(
    workload: str,
    compute: str,
    compute_config: dict,
    hyperparameters: dict,
    code_fingerprint: str,
    train: Input[Dataset],
    test: Input[Dataset],
    model: Output[Model],
    channels: dict = {},  # noqa: B006 - KFP parameter defaults are compiled, never mutated
):
    """Run the workload's training script on ``compute`` under the SageMaker contract.

    ``code_fingerprint`` is the digest of the script folder and of any ``channels`` brought as
    they are (name to a path or ``s3://`` URI), given so that changed code or data misses the cache.
    """
    from pathlib import Path

    from flywheel.components.runtime import reported_step
    from flywheel.components.steps.train import train_model as train_step

    with reported_step("train-model"):
        trained = train_step(
            workload_path=workload,
            compute=compute,
            compute_config=compute_config,
            hyperparameters=hyperparameters,
            train_path=Path(train.path),
            test_path=Path(test.path),
            model_path=Path(model.path),
            brought_channels=channels,
        )
    model.metadata.update(
        {
            "job_name": trained.job_name,
            "compute": trained.compute,
            "hyperparameters": trained.hyperparameters,
            "metrics": trained.training_metrics,
            "code_sha256": trained.code_sha256,
            "code_fingerprint": code_fingerprint,
            "entry_point": trained.entry_point,
            "format": "model.tar.gz",
        }
    )


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def evaluate_model(
    workload: str,
    compute: str,
    compute_config: dict,
    model: Input[Model],
    test: Input[Dataset],
    metrics: Output[Metrics],
    report: Output[HTML],
):
    """Score the held-out rows through batch transform; log RMSE, MAE and R² and draw them."""
    import json
    from pathlib import Path

    from flywheel.components.runtime import reported_step
    from flywheel.components.steps.evaluate import evaluate_model as evaluate

    with reported_step("evaluate-model"):
        result = evaluate(
            workload_path=workload,
            compute=compute,
            compute_config=compute_config,
            model_path=Path(model.path),
            test_path=Path(test.path),
        )
    for name, value in result.metrics.items():
        metrics.log_metric(name, value)
    metrics.metadata["rows"] = result.rows
    # The values live in metadata; the file copy lets kfp.local's cache find the artifact on disk.
    Path(metrics.path).write_text(json.dumps(result.metrics, indent=2))
    Path(report.path).write_text(result.page)


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

    from flywheel.components.evaluation import logged_metrics
    from flywheel.components.runtime import reported_step
    from flywheel.components.steps.register import register_model as register
    from flywheel.components.workload import load_workload

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

    from flywheel.components.registry import open_registry
    from flywheel.components.runtime import reported_step
    from flywheel.components.steps.champion import find_champion
    from flywheel.components.steps.evaluate import evaluate_model as evaluate
    from flywheel.components.workload import load_workload

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
    """Compare candidate and champion on the workload's objective; True means promote.

    ``registry_state`` keys the cache to the registry's state, as for the steps before it.
    """
    from flywheel.components.evaluation import logged_metrics
    from flywheel.components.runtime import reported_step
    from flywheel.components.steps.gate import decide_promotion as decide
    from flywheel.components.workload import load_workload

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
    """Make the candidate the champion, unless another run replaced the champion meanwhile.

    ``registry_state`` keys the cache to the registry's state, as for the steps before it.
    """
    from flywheel.components.runtime import reported_step
    from flywheel.components.steps.gate import promote_model as promote
    from flywheel.components.workload import load_workload

    with reported_step("promote-model"):
        compared_with = int(champion.metadata.get("version", 0)) or None
        decision = promote(
            registry_uri=registry,
            model_name=model_name or load_workload(workload).name,
            version=version,
            compared_with=compared_with,
            reason=f"beat version {compared_with} on the same held-out rows"
            if compared_with
            else "first champion",
        )
    print(f"{'promoted' if decision.promote else 'not promoted'}: {decision.reason}", flush=True)
