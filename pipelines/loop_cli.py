"""CLI commands of the quality loop: ``run evaluation``, ``demo flywheel`` and ``report``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from flywheel.pipelines.defaults import DEFAULT_THRESHOLD, DEFAULT_WORKLOAD, Home

if TYPE_CHECKING:  # the commands import their runners when they run, so --help stays fast
    from rich.console import Console

    from flywheel.pipelines.requests import TrainingRequest


def add_evaluation_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--batch", type=int, required=True, help="which ordered batch to score (0-based)"
    )
    parser.add_argument(
        "--threshold",
        default=DEFAULT_THRESHOLD,
        help="retrain when '<metric> above|below <number>', e.g. 'r2 below 0.6'",
    )
    parser.add_argument(
        "--history", default=None, help="evaluation history folder (default: HOME/history)"
    )
    parser.add_argument(
        "--rows-per-shard",
        type=int,
        default=5000,
        help="batch rows per scoring shard (shards run in a ParallelFor)",
    )
    parser.add_argument(
        "--cloudwatch-namespace", default="", help="publish metrics to this CloudWatch namespace"
    )
    parser.add_argument("--region", default="", help="AWS region for CloudWatch and SNS")
    parser.add_argument(
        "--aws-endpoint-url", default="", help="AWS endpoint override (a local stand-in)"
    )
    parser.add_argument("--sns-topic-arn", default="", help="notify this SNS topic of the outcome")
    parser.add_argument(
        "--webhook-url", default="", help="notify this Slack-compatible webhook of the outcome"
    )


def run_evaluation_command(
    args: argparse.Namespace, training: TrainingRequest, home: Home, console: Console
) -> int:
    from flywheel.pipelines.evaluation_run import (
        EvaluationRequest,
        evaluation_table,
        run_evaluation,
    )

    aws = {"region": args.region, "endpoint_url": args.aws_endpoint_url}
    cloudwatch = (
        {"namespace": args.cloudwatch_namespace, **aws} if args.cloudwatch_namespace else {}
    )
    notify = {
        key: value
        for key, value in {
            "sns_topic_arn": args.sns_topic_arn,
            "webhook_url": args.webhook_url,
            **(aws if args.sns_topic_arn else {}),
        }.items()
        if value
    }
    request = EvaluationRequest(
        batch=args.batch,
        threshold=args.threshold,
        history=args.history or str(home.history),
        rows_per_shard=args.rows_per_shard,
        cloudwatch=cloudwatch,
        notify=notify,
        training=training,
    )
    console.print(evaluation_table(run_evaluation(request, verbose=args.verbose, console=console)))
    return 0


def add_demo_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where the demo keeps its own registry, history, runs and report, reset each time "
        "(default: HOME/demo)",
    )
    parser.add_argument("--threshold", default=DEFAULT_THRESHOLD, help="retrain when this holds")


def demo_command(args: argparse.Namespace, home: Home, console: Console) -> int:
    from flywheel.pipelines.demo import replay_flywheel

    _, png = replay_flywheel(args.workdir or home.demo, threshold=args.threshold, console=console)
    console.print(f"report: {png} and {png.with_suffix('.html')}")
    return 0


def add_report_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--registry", default=None, help="model registry folder (default: HOME/registry)"
    )
    parser.add_argument(
        "--history", default=None, help="evaluation history folder (default: HOME/history)"
    )
    parser.add_argument(
        "--workload", default=DEFAULT_WORKLOAD, help="workload.yaml (names the model and task)"
    )
    parser.add_argument(
        "--model-name", default="", help="registry name (default: the workload's name)"
    )
    parser.add_argument(
        "--threshold", default=None, help="line to draw (default: the last one evaluated)"
    )
    parser.add_argument(
        "--output-dir", type=Path, default=None, help="where to write (default: HOME/report)"
    )


def report_command(args: argparse.Namespace, home: Home, console: Console) -> int:
    from flywheel.components.contract.workload import load_workload
    from flywheel.components.monitoring.history import EvaluationHistory
    from flywheel.pipelines.report import write_report

    workload = load_workload(args.workload)
    model_name = args.model_name or workload.name
    registry, history = args.registry or str(home.registry), args.history or str(home.history)
    demo_history = home.demo / "history"
    if (
        args.registry is None
        and args.history is None
        and not EvaluationHistory(history).records(model_name)
        and EvaluationHistory(demo_history).records(model_name)
    ):
        # Right after `flywheel demo flywheel`, the only history is the demo's: draw that one.
        registry, history = str(home.demo / "registry"), str(demo_history)
        console.print(f"no evaluations in {home.history}; drawing the demo's ({home.demo})")
    png, page = write_report(
        registry_uri=registry,
        history_root=history,
        model_name=model_name,
        task=workload.task,
        output_dir=args.output_dir or home.report,
        threshold=args.threshold,
    )
    console.print(f"wrote {png} and {page}")
    return 0
