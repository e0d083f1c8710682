"""``flywheel run pipeline NAME``: any shipped pipeline on kfp.local, with its own defaults.

The arguments are checked against the pipeline's declared parameters and types, as ``flywheel
submit`` checks them, and its processing tasks against the processing contract
(``pipelines.preflight``), before any task runs. A ``registry`` parameter left at its default points
into Flywheel's home, as ``flywheel run training`` does, so runs from any folder share one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from flywheel.components.errors import InvalidSpecError
from flywheel.pipelines.defaults import Home

if TYPE_CHECKING:
    from rich.console import Console

    from flywheel.pipelines.local_runner import LocalRun


def run_named_pipeline(
    name: str,
    parameters: Sequence[tuple[str, str]],
    *,
    home: Home,
    cache: bool = True,
    verbose: bool = False,
    console: Console | None = None,
) -> LocalRun:
    """Run the catalog's pipeline ``name`` locally; its outputs, run folder and log."""
    from flywheel.pipelines.catalog import PIPELINES
    from flywheel.pipelines.local_runner import run_locally
    from flywheel.pipelines.preflight import check_processing_tasks, check_tuning_rounds
    from flywheel.pipelines.submit import pipeline_arguments

    pipeline = PIPELINES.get(name)
    if pipeline is None:
        raise InvalidSpecError("pipeline", f"{name!r} is not one of {', '.join(PIPELINES)}")
    arguments = pipeline_arguments(pipeline, parameters)
    check_processing_tasks(pipeline)
    check_tuning_rounds(pipeline, arguments)
    declared = pipeline.pipeline_spec.root.input_definitions.parameters
    if "registry" in declared and "registry" not in arguments:
        arguments["registry"] = str(home.registry.resolve())
    return run_locally(
        pipeline,
        arguments,
        pipeline_root=home.runs,
        cache=cache,
        verbose=verbose,
        console=console,
    )
