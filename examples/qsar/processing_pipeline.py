"""Compose your own pipeline: preprocess -> train -> evaluate -> condition -> register.

The flow of AWS's MLOps examples (SageMaker Pipelines' "abalone" template, the Step Functions Data
Science SDK sample) written as a KFP pipeline from Flywheel's public components alone:

1. ``run_processing`` runs ``preprocess.py`` (a SageMaker Processing script) on the raw table;
2. ``prepare_data`` splits the table it wrote;
3. ``train_model`` trains ``train.py`` on the split;
4. ``run_processing`` runs ``evaluate.py``, which writes ``evaluation.json``;
5. ``read_evaluation_report`` reads ``regression_metrics.rmse.value`` from it, as a
   ``PropertyFile`` and ``JsonGet`` would;
6. ``dsl.If`` registers the model only if that RMSE is at most ``max_rmse``.

Every step runs on ``compute`` (``local``, ``sagemaker`` or ``eks-gpu``). Run it with
``flywheel run pipeline qsar-processing``; ``flywheel compile`` and ``flywheel submit`` treat it as
they treat Flywheel's own pipelines.
"""

from kfp import dsl

from flywheel.components import (
    prepare_data,
    read_evaluation_report,
    register_model,
    run_processing,
    train_model,
)

WORKLOAD = "builtin:qsar"
SOURCE = "builtin:chembl-CHEMBL2321810"


@dsl.pipeline(
    name="qsar-processing",
    description="Preprocess with your script, train, evaluate with your script, register if good.",
)
def preprocess_train_evaluate(
    workload: str = WORKLOAD,
    source: str = SOURCE,
    code: str = WORKLOAD,
    compute: str = "local",
    compute_config: dict = {},  # noqa: B006 - KFP pipeline defaults are compiled, never mutated
    hyperparameters: dict = {},  # noqa: B006
    registry: str = ".flywheel/registry",
    model_name: str = "qsar-pic50-composed",
    min_pic50: float = 3.0,
    max_rmse: float = 1.2,
) -> float:
    preprocessed = run_processing(
        source_dir=code,
        entry_point="preprocess.py",
        inputs={"data": source},
        output_names=["data"],
        arguments=["--min-pic50", min_pic50],
        compute=compute,
        compute_config=compute_config,
    ).set_display_name("preprocess")
    prepared = prepare_data(
        source=source,
        workload=workload,
        batch_count=1,
        training_batches=1,
        test_fraction=0.2,
        seed=7,
        order_by="",
        source_fingerprint="",
        table=preprocessed.outputs["outputs"],
    ).set_display_name("split")
    trained = train_model(
        workload=workload,
        compute=compute,
        compute_config=compute_config,
        hyperparameters=hyperparameters,
        code_fingerprint="",
        train=prepared.outputs["train"],
        test=prepared.outputs["test"],
    ).set_display_name("train")
    evaluated = run_processing(
        source_dir=code,
        entry_point="evaluate.py",
        output_names=["evaluation"],
        local_paths={
            "data": "/opt/ml/processing/test",
            "evaluation": "/opt/ml/processing/evaluation",
        },
        compute=compute,
        compute_config=compute_config,
        data=prepared.outputs["test"],
        model=trained.outputs["model"],
    ).set_display_name("evaluate")
    report = read_evaluation_report(
        report=evaluated.outputs["outputs"],
        json_path="regression_metrics.rmse.value",
        metric_name="rmse",
    ).set_display_name("evaluation report")
    with dsl.If(report.outputs["Output"] <= max_rmse, name="good-enough"):
        register_model(
            registry=registry,
            model_name=model_name,
            workload=workload,
            run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            registry_state="",
            training_batches=1,
            model=trained.outputs["model"],
            metrics=report.outputs["metrics"],
            train=prepared.outputs["train"],
            test=prepared.outputs["test"],
        ).set_display_name("register")
    return report.outputs["Output"]
