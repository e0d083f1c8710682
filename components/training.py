"""Train: run a SageMaker-style training script on the chosen compute backend.

Public KFP components (``from flywheel.components import ...``). Each one only declares typed inputs
and outputs and hands paths to a plain function in ``components.steps``; failures surface as one
line naming the step.
"""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output

from flywheel.components.images import RUNTIME_IMAGE


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
    output_data: Output[Dataset],
    metrics: Output[Metrics],
    learning_curves: Output[HTML],
    channels: dict = {},  # noqa: B006 - KFP parameter defaults are compiled, never mutated
    tracking_uri: str = "",
    study: Input[Artifact] = None,
    trial_number: int = -1,
):
    """Train a model: run the workload's training script on the chosen compute.

    The script runs under SageMaker's training contract (``SM_CHANNEL_*``, ``SM_MODEL_DIR``,
    hyperparameters as arguments) on every backend, so the same script trains locally, on
    SageMaker or on EKS GPU nodes. Hyperparameters are checked against the workload before the
    job starts.

    Args:
        workload: The workload whose training script runs (``builtin:<name>``, a folder or its
            ``workload.yaml``, or an ``s3://`` code bundle).
        compute: Where to train: ``local``, ``sagemaker`` or ``eks-gpu``.
        compute_config: The backend's settings, checked before any cloud call; ``{}`` for
            ``local``.
        hyperparameters: Values for the script's declared hyperparameters, by name; ``{}``
            keeps the workload's defaults.
        code_fingerprint: The digest of the script folder and of any ``channels``, given so that
            changed code or data misses the cache.
        train: The training rows (from ``prepare_data``), laid out as the workload's channels say;
            a folder (``run_processing``'s outputs) is brought as it is: its subfolder named
            after the channel, if it has one, else the whole folder.
        test: The held-out rows (from ``prepare_data``), for scripts that read a test channel;
            a folder is brought as ``train`` is.
        channels: Extra input channels brought as they are, name to a path or ``s3://`` URI.
        tracking_uri: The MLflow tracking URI to record the run in (a server, or SageMaker's
            managed MLflow by its ARN); empty takes the task's ``MLFLOW_TRACKING_URI``, which a
            task pod on a cluster does not have: ``flywheel submit`` passes its own here.
        study: For a tuning trial (``local`` or ``eks-gpu``): its round's study, the
            ``suggest_trials`` ``study``. With a pruner (``early_stopping: Auto``, Hyperband),
            each value of the objective is reported to a private copy of it as the log shows it,
            and the job is stopped when the pruner says so; the task still succeeds. None trains
            to the end, as any training.
        trial_number: The trial's number in ``study`` (the ``suggest_trials`` item's ``number``).

    Returns:
        model: The packed model, ``model.tar.gz``; metadata: job_name, compute,
            hyperparameters, metrics the script logged, code_sha256, entry_point; for a trial
            judged by its pruner, ``pruning``: trial, pruned_at_step (null when it ran to its
            end; else the model is an empty archive) and what the pruner recorded.
        output_data: What the script wrote to ``SM_OUTPUT_DATA_DIR`` (``/opt/ml/output/data``:
            metrics files, plots), packed as SageMaker packs it, ``output.tar.gz``; on SageMaker,
            the job's ``<S3OutputPath>/<job>/output/output.tar.gz``. An empty archive when the
            script wrote nothing; metadata: job_name, compute, empty.
        metrics: The final value of each metric the script logged (the workload's
            ``metric_definitions``), for the Kubeflow UI's run comparison; the file holds
            ``{"job_name", "series"}``, each metric's ``[step, value]`` pairs in log order (up
            to the stop, and ``pruned_at_step`` logged, for a pruned trial).
        learning_curves: Each metric's values by step, one chart per metric, as an HTML page the
            Kubeflow UI shows.

    The run is also recorded in MLflow when ``tracking_uri`` (else the task's
    ``MLFLOW_TRACKING_URI``) names a store and ``mlflow`` is installed (hyperparameters, compute, code and data digests, every metric's series, links to
    these outputs); the model's metadata keeps its ``tracking_run_id``. Tracking never fails
    training: when it cannot record, one line says so.
    """
    import json
    import os
    from pathlib import Path

    from flywheel.components.steps.runtime import reported_step
    from flywheel.components.steps.train import train_model as train_step
    from flywheel.components.tracking import (
        TRACKING_URI_VARIABLE,
        TrainingRecord,
        import_in_background,
        learning_curves_html,
        track_training,
    )

    if tracking_uri:
        os.environ[TRACKING_URI_VARIABLE] = tracking_uri
    import_in_background()

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
            output_data_path=Path(output_data.path),
            study_path=Path(study.path) if study is not None else None,
            trial_number=trial_number,
        )
    Path(learning_curves.path).write_text(
        learning_curves_html(trained.job_name, trained.metric_series)
    )
    tracking_run_id = track_training(
        TrainingRecord(
            workload=trained.workload_name,
            job_name=trained.job_name,
            compute=trained.compute,
            hyperparameters=trained.hyperparameters,
            digests={
                "code_sha256": trained.code_sha256,
                "code_fingerprint": code_fingerprint,
                "train_sha256": train.metadata.get("sha256", ""),
                "test_sha256": test.metadata.get("sha256", ""),
            },
            series=trained.metric_series,
            unmatched=trained.unmatched_metrics,
            objective=trained.objective,
            objective_goal=trained.objective_goal,
            links={
                "model": model.uri,
                "output_data": output_data.uri,
                "learning_curves": learning_curves.uri,
            },
            pruned_at_step=trained.pruned_at_step,
        )
    )
    model.metadata.update(
        {
            # The MLflow run recording this training: the registry keeps it in the lineage.
            "tracking_run_id": tracking_run_id or "",
            "tracking_uri": os.environ.get(TRACKING_URI_VARIABLE, "") if tracking_run_id else "",
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
    if trained.pruning:
        model.metadata["pruning"] = trained.pruning
    output_data.metadata.update(
        {
            "job_name": trained.job_name,
            "compute": trained.compute,
            "format": "output.tar.gz",
            "empty": not trained.output_data_written,
        }
    )
    if not trained.output_data_written:
        output_data.metadata["note"] = "the script wrote nothing to SM_OUTPUT_DATA_DIR"
    for name, value in trained.training_metrics.items():
        metrics.log_metric(name, value)
    if trained.pruned_at_step is not None:
        metrics.log_metric("pruned_at_step", trained.pruned_at_step)
    Path(metrics.path).write_text(
        json.dumps({"job_name": trained.job_name, "series": trained.metric_series})
    )
