"""Evaluation reports: turn a script's ``evaluation.json`` into KFP metrics and a gate value.

Public KFP component (``from flywheel.components import read_evaluation_report``), the equivalent
of SageMaker Pipelines' ``PropertyFile`` + ``JsonGet``: its output (one number) feeds a ``dsl.If``.
It is a plain return value rather than a named one because kfp.local resolves a condition's task
output only under KFP's default name, ``Output``.
"""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from flywheel.components.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def read_evaluation_report(
    report: Input[Dataset],
    json_path: str,
    metrics: Output[Metrics],
    file_name: str = "evaluation.json",
    metric_name: str = "",
) -> float:
    """Read the number at ``json_path`` of an evaluation report and log the report as metrics.

    Every number in the report is logged as a KFP metric under its dotted path (a trailing
    ``.value`` dropped), so the Kubeflow UI shows and compares them; a missing path fails the step
    naming the path and the keys the report has.

    Args:
        report: The processing step's outputs; ``file_name`` is found at its top or, if only one
            file has that name, anywhere below it.
        json_path: Dotted path of the value that drives the condition, such as
            ``regression_metrics.mse.value``.
        file_name: The report's file name.
        metric_name: Also log the value under this name (e.g. the workload's objective, ``mse``).

    Returns:
        metrics: Every number of the report, plus ``metric_name`` (when given) set to the value;
            metadata ``report`` (the file read) and ``json_path``.
        Output: The number at ``json_path``, for a ``dsl.If`` condition
            (``task.outputs["Output"]``).
    """
    import json
    from pathlib import Path

    from flywheel.components.monitoring import reports
    from flywheel.components.steps.runtime import reported_step

    with reported_step("read-evaluation-report"):
        path = reports.find_report(Path(report.path), file_name)
        document = reports.load_report(path)
        value = reports.value_at(document, json_path)
        logged = reports.flat_metrics(document)
        if metric_name:
            logged[metric_name] = value
    for name, number in logged.items():
        metrics.log_metric(name, number)
    metrics.metadata["report"] = str(path.relative_to(report.path))
    metrics.metadata["json_path"] = json_path
    Path(metrics.path).write_text(json.dumps(logged, indent=2))
    print(f"{json_path} = {value}", flush=True)
    return value
