"""``flywheel runs list`` and ``flywheel runs compare``: tracked runs as a table, best first.

Both read the MLflow store the runs were tracked in: ``--tracking-uri``, else
``$MLFLOW_TRACKING_URI``, else the SQLite store in Flywheel's home. ``--plot`` draws the compared
runs' learning curves, one panel per shared metric, one colour per run.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from flywheel.components.errors import InvalidSpecError
from flywheel.components.tracking import tracking_installed
from flywheel.pipelines.defaults import Home
from flywheel.pipelines.tracked_runs import Comparison, RunStore, TrackedRun, compare
from flywheel.pipelines.tracking_setup import tracking_uri_for

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from rich.console import Console

# Hyperparameter values are short; a long one is cut so the table stays readable.
_CELL = 24


def add_runs_options(commands: argparse._SubParsersAction, parser_class: type) -> None:
    runs = commands.add_parser("runs", help="list and compare tracked training runs (MLflow)")
    actions = runs.add_subparsers(dest="runs_command", required=True, parser_class=parser_class)
    listing = actions.add_parser("list", help="the tracked runs, best first by their objective")
    listing.add_argument("--workload", default=None, help="only this workload's runs (its name)")
    comparing = actions.add_parser("compare", help="runs side by side, best first")
    comparing.add_argument("runs", nargs="+", metavar="RUN", help="MLflow run ids or run names")
    comparing.add_argument(
        "--plot", type=Path, default=None, metavar="FILE.png", help="write learning curves here"
    )
    for action in (listing, comparing):
        action.add_argument(
            "--tracking-uri",
            default=None,
            help="the MLflow store (default: $MLFLOW_TRACKING_URI, else HOME/mlflow.db)",
        )


def runs_command(args: argparse.Namespace, home: Home, console: Console) -> int:
    uri = tracking_uri_for(home, args.tracking_uri)
    if not tracking_installed():
        raise InvalidSpecError(
            "runs", "mlflow is not installed (pip install 'flywheel-mlops[tracking]')"
        )
    store = RunStore(uri)
    if args.runs_command == "list":
        runs = store.runs(args.workload)
        if not runs:
            console.print(f"no tracked runs in {uri}")
            return 0
        show(compare(runs), console, title=f"{len(runs)} runs in {uri}")
        return 0
    comparison = compare([store.find(reference) for reference in args.runs])
    show(comparison, console, title=f"{len(comparison.runs)} runs compared")
    if args.plot is not None:
        write_plot(comparison, store, args.plot)
        console.print(f"learning curves: {args.plot}")
    return 0


def _cell(value: object) -> str:
    text = str(value)
    return text if len(text) <= _CELL else text[: _CELL - 1] + "…"


def _metric(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def show(comparison: Comparison, console: Console, title: str) -> None:
    """The runs, best first: name, the parameters that differ, shared metrics, version."""
    from rich.table import Table

    for warning in comparison.warnings:
        console.print(f"[yellow]warning: {warning}[/yellow]")
    if comparison.objective:
        title += f", by {comparison.objective} ({comparison.objective_goal})"
    table = Table(title=title, title_justify="left")
    table.add_column("run")
    for name in comparison.differing:
        table.add_column(name, justify="right")
    for metric in comparison.metrics:
        marker = " *" if metric == comparison.objective else ""
        table.add_column(metric + marker, justify="right")
    table.add_column("registered")
    for run in comparison.runs:
        table.add_row(
            run.name,
            *(_cell(run.hyperparameters.get(name, "")) for name in comparison.differing),
            *(_metric(run.metrics.get(metric)) for metric in comparison.metrics),
            run.version or "-",
        )
    console.print(table)


def figure_for(curves: Sequence[tuple[TrackedRun, dict[str, list[tuple[int, float]]]]]) -> Figure:
    """One panel per metric, side by side; each run one colour, the same in every panel."""
    from matplotlib.figure import Figure

    metrics = sorted({metric for _, series in curves for metric in series})
    figure = Figure(figsize=(4.2 * max(len(metrics), 1), 3.8), layout="constrained")
    panels = figure.subplots(1, max(len(metrics), 1), squeeze=False)[0]
    colours = [f"C{index % 10}" for index in range(len(curves))]
    for panel, metric in zip(panels, metrics, strict=False):
        for (run, series), colour in zip(curves, colours, strict=True):
            points = series.get(metric, [])
            if points:
                steps, values = zip(*points, strict=True)
                panel.plot(steps, values, marker="o", markersize=3, color=colour, label=run.name)
        panel.set_title(metric)
        panel.set_xlabel("step")
        panel.grid(alpha=0.3)
    handles, labels = panels[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=min(len(curves), 3))
    return figure


def write_plot(comparison: Comparison, store: RunStore, target: Path) -> None:
    """The compared runs' learning curves for the metrics they share, as a PNG."""
    curves = [
        (run, {metric: store.series(run, metric) for metric in comparison.metrics})
        for run in comparison.runs
    ]
    target.parent.mkdir(parents=True, exist_ok=True)
    figure_for(curves).savefig(target, dpi=110)
