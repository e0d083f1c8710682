"""``flywheel runs list`` and ``flywheel runs compare``: tracked runs as a table, best first.

Both read the MLflow store the runs were tracked in: ``--tracking-uri``, else
``$MLFLOW_TRACKING_URI``, else the SQLite store in Flywheel's home. ``--plot`` draws the compared
runs' learning curves, one panel per shared metric, one colour per run.
"""

from __future__ import annotations

import argparse
import math
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
# Learning-curve panels per row of the plot: wide enough to read, few enough to fit a screen.
_PANELS_PER_ROW = 3


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
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        if args.runs_command == "list":  # nothing tracked yet; reading must not create the store
            console.print(f"no tracked runs in {uri}")
            return 0
        raise InvalidSpecError("RUN", f"nothing is tracked in {uri} yet")
    store = RunStore(uri)
    if args.runs_command == "list":
        runs = store.runs(args.workload)
        if not runs:
            console.print(f"no tracked runs in {uri}")
            return 0
        show(compare(runs), console, title=f"{_runs(len(runs))} in {uri}")
        return 0
    comparison = compare([store.find(reference) for reference in args.runs])
    show(comparison, console, title=f"{_runs(len(comparison.runs))} compared")
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
    table.add_column("run", no_wrap=True)
    for name in comparison.differing:
        table.add_column(name, justify="right")
    for metric in comparison.metrics:
        marker = " *" if metric == comparison.objective else ""
        table.add_column(metric + marker, justify="right")
    table.add_column("registered", no_wrap=True)
    for run in comparison.runs:
        table.add_row(
            run.name,
            *(_cell(run.hyperparameters.get(name, "")) for name in comparison.differing),
            *(_metric(run.metrics.get(metric)) for metric in comparison.metrics),
            run.version or "-",
        )
    console.print(table)


def curve_metrics(curves: Sequence[dict[str, list[tuple[int, float]]]]) -> list[str]:
    """The metrics worth a panel: those some run logged at more than one step (its final values
    are in the table); all of them when none was (one point per run is still a comparison)."""
    metrics = sorted({metric for series in curves for metric in series})
    stepped = [m for m in metrics if any(len(series.get(m, [])) > 1 for series in curves)]
    return stepped or metrics


def figure_for(
    curves: Sequence[tuple[str, dict[str, list[tuple[int, float]]]]],
) -> Figure:
    """One panel per metric, three to a row; each run one colour, the same in every panel, named
    in one legend below."""
    from matplotlib.figure import Figure

    metrics = curve_metrics([series for _, series in curves])
    columns = min(len(metrics), _PANELS_PER_ROW) or 1
    rows = max(math.ceil(len(metrics) / columns), 1)
    figure = Figure(figsize=(5.2 * columns, 3.6 * rows + 0.4 * len(curves)), layout="constrained")
    panels = figure.subplots(rows, columns, squeeze=False).ravel()
    for panel, metric in zip(panels, metrics, strict=False):
        for index, (label, series) in enumerate(curves):
            points = series.get(metric, [])
            if points:
                steps, values = zip(*points, strict=True)
                panel.plot(
                    steps, values, marker="o", markersize=3, color=f"C{index % 10}", label=label
                )
        panel.set_title(metric)
        panel.set_xlabel("step")
        panel.grid(alpha=0.3)
    for unused in panels[len(metrics) :]:
        unused.set_visible(False)
    handles, labels = panels[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=1)
    return figure


def _label(run: TrackedRun, differing: Sequence[str]) -> str:
    """The run's name and the parameters that set it apart."""
    values = ", ".join(f"{name}={run.hyperparameters.get(name, '')}" for name in differing)
    return f"{run.name} ({values})" if values else run.name


def write_plot(comparison: Comparison, store: RunStore, target: Path) -> None:
    """The compared runs' learning curves for the metrics they share, as a PNG."""
    curves = [
        (
            _label(run, comparison.differing),
            {metric: store.series(run, metric) for metric in comparison.metrics},
        )
        for run in comparison.runs
    ]
    target.parent.mkdir(parents=True, exist_ok=True)
    figure_for(curves).savefig(target, dpi=110)


def _runs(count: int) -> str:
    return f"{count} run{'' if count == 1 else 's'}"
