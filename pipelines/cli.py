"""The flywheel command: train, evaluate and retrain models on your own machine, and ship the
pipelines to Kubeflow.

Bad input ends in one line naming the option and what is allowed, with exit status 2, before
anything runs. A failed run ends with the failing step's own reason, the end of the script's
error and the step's log, with exit status 1. Ctrl-C or SIGTERM stops every process the run
started, leaves the registry whole, says so in one line and exits 130 or 143.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

# Only what --help needs is imported here; KFP, boto3 and the runners load with their command.
from flywheel.components.compute import BACKENDS
from flywheel.components.errors import FlywheelError, InvalidSpecError
from flywheel.pipelines import approval_cli
from flywheel.pipelines.defaults import COMPILED_DIR, PIPELINE_NAMES, TUNING_WORKLOAD, Home
from flywheel.pipelines.interrupts import Interrupted, interrupts_handled
from flywheel.pipelines.loop_cli import (
    add_demo_options,
    add_evaluation_options,
    add_report_options,
)
from flywheel.pipelines.requests import TrainingRequest, load_compute_config

if TYPE_CHECKING:
    from rich.console import Console

DESCRIPTION = (
    "Train, evaluate and retrain models with Kubeflow Pipelines: locally on KFP's local runner, "
    "or on a cluster."
)

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


class _DefaultsHelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless it has none worth printing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        default = action.default
        if "%(default)" in help_text or default is None or isinstance(default, bool):
            return help_text
        if default in ("", [], {}):
            return help_text
        if action.default is argparse.SUPPRESS or not action.option_strings:
            return help_text
        return f"{help_text} (default: %(default)s)"


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but an error is one line: ``flywheel: error: <option>: <problem>``."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"flywheel: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


_positive_int.__name__ = "positive integer"


def parse_assignment(text: str) -> tuple[str, str]:
    """``NAME=VALUE`` as a pair (``--hp``, ``--param``); what is allowed is decided later."""
    name, separator, value = text.partition("=")
    if not separator or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), value


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="flywheel", description=DESCRIPTION)
    parser.add_argument(
        "--home",
        default=None,
        metavar="DIR",
        help="folder for the registry, runs, history and reports "
        "(default: $FLYWHEEL_HOME, else .flywheel in the current folder)",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineParser)

    run = commands.add_parser("run", help="run a pipeline on this machine (KFP's local runner)")
    pipelines = run.add_subparsers(dest="pipeline", required=True, parser_class=_OneLineParser)
    training = pipelines.add_parser("training", help="prepare, train, evaluate, register, gate")
    _add_training_options(training)
    training.add_argument(
        "--training-batches",
        type=_positive_int,
        default=TrainingRequest().training_batches,
        help="how many leading batches train the model",
    )
    tuning = pipelines.add_parser(
        "tuning",
        help="search the workload's hyperparameters (its tuning section), then evaluate, "
        "register and gate the best trial",
    )
    _add_training_options(tuning)
    tuning.add_argument(
        "--training-batches",
        type=_positive_int,
        default=TrainingRequest().training_batches,
        help="how many leading batches train the model",
    )
    tuning.set_defaults(workload=TUNING_WORKLOAD)
    evaluation = pipelines.add_parser(
        "evaluation",
        help="score batch N with the champion; retrain if quality breaches the threshold",
    )
    add_evaluation_options(evaluation)
    _add_training_options(evaluation)
    any_pipeline = pipelines.add_parser(
        "pipeline", help="run any shipped pipeline with its own defaults, e.g. qsar-processing"
    )
    any_pipeline.add_argument("name", help=f"which pipeline: {', '.join(PIPELINE_NAMES)}")
    _add_param_option(any_pipeline)
    any_pipeline.add_argument(
        "--no-cache", action="store_true", help="run every task, ignoring the cache"
    )
    any_pipeline.add_argument(
        "-v", "--verbose", action="store_true", help="show kfp.local's full task logs"
    )
    demo = commands.add_parser("demo", help="replay a scenario on this machine")
    scenarios = demo.add_subparsers(dest="scenario", required=True, parser_class=_OneLineParser)
    add_demo_options(scenarios.add_parser("flywheel", help="train, then replay every later batch"))
    add_report_options(
        commands.add_parser("report", help="draw the evaluation history as PNG and HTML")
    )

    submit = commands.add_parser("submit", help="start a run on a Kubeflow Pipelines install")
    submit.add_argument("pipeline", help=f"which pipeline: {', '.join(PIPELINE_NAMES)}")
    submit.add_argument(
        "--host", required=True, help="KFP API endpoint, e.g. http://ml-pipeline.kubeflow:8888"
    )
    _add_param_option(submit)
    submit.add_argument(
        "--workload",
        default="",
        help="workload.yaml to run: a local one is uploaded as a code bundle (--bundle-to); "
        "builtin:<name> or s3://.../bundle-<sha256>.tar.gz are passed as they are",
    )
    submit.add_argument(
        "--bundle-to",
        default="",
        metavar="S3_PREFIX",
        help="where a local --workload is uploaded, e.g. s3://my-bucket/flywheel/bundles",
    )
    submit.add_argument(
        "--experiment", default="flywheel", help="KFP experiment to file the run under"
    )
    submit.add_argument("--run-name", default="", help="the run's display name")
    submit.add_argument(
        "--service-account", default="", help="Kubernetes service account (IRSA) for the run's pods"
    )
    submit.add_argument(
        "--namespace", default="", help="KFP profile namespace (multi-user installs)"
    )

    bundle = commands.add_parser(
        "bundle",
        help="upload a workload's code to S3 as a content-addressed bundle; prints its URI",
    )
    bundle.add_argument("--workload", required=True, help="the workload.yaml (or its folder)")
    bundle.add_argument(
        "--to", required=True, metavar="S3_PREFIX", help="e.g. s3://my-bucket/flywheel/bundles"
    )

    from flywheel.pipelines.runs_cli import add_runs_options

    add_runs_options(commands, _OneLineParser)
    approval_cli.add_approval_commands(commands, _OneLineParser)
    from flywheel.pipelines.deployments_cli import add_deployments_commands

    add_deployments_commands(commands, _OneLineParser)

    compile_command = commands.add_parser("compile", help="write compiled pipeline YAML")
    compile_command.add_argument("--output-dir", type=Path, default=COMPILED_DIR)
    compile_command.add_argument(
        "--check",
        action="store_true",
        help="fail if the committed files differ from a fresh compile",
    )
    return parser


def _add_training_options(training: argparse.ArgumentParser) -> None:
    """Options of every run that trains, or may retrain: data, workload, compute, registry."""
    defaults = TrainingRequest()
    training.add_argument(
        "--workload",
        default=defaults.workload,
        help="workload.yaml of the training script (a path, or builtin:qsar / builtin:qsar-torch)",
    )
    training.add_argument(
        "--source",
        default=defaults.source,
        help="CSV or Parquet table: a path, s3://bucket/key, or builtin:<dataset>",
    )
    training.add_argument(
        "--compute",
        default=defaults.compute,
        help=f"where training runs: {', '.join(BACKENDS)}",
    )
    training.add_argument(
        "--placement",
        default="",
        metavar="FILE",
        help="with --compute eks-gpu: the pod placement YAML (default: the placement shipped "
        "with Flywheel, one GPU); checked here, applied only on a cluster",
    )
    training.add_argument(
        "--compute-config",
        type=load_compute_config,
        default={},
        metavar="FILE",
        help="settings for --compute, as YAML or JSON (for sagemaker: role_arn, s3_prefix, "
        "image_uri or framework, instance_type, spot, ...)",
    )
    training.add_argument(
        "--hp",
        dest="hyperparameters",
        action="append",
        default=[],
        type=parse_assignment,
        metavar="NAME=VALUE",
        help="set a hyperparameter declared in the workload (repeatable)",
    )
    training.add_argument(
        "--channel",
        dest="channels",
        action="append",
        default=[],
        type=parse_assignment,
        metavar="NAME=PATH_OR_S3_URI",
        help="bring a channel as it is (a file, folder or s3:// prefix) instead of the split's "
        "(repeatable)",
    )
    training.add_argument(
        "--registry", default=None, help="model registry folder or URI (default: HOME/registry)"
    )
    training.add_argument(
        "--model-name", default="", help="registry name (default: the workload's name)"
    )
    training.add_argument(
        "--batch-count",
        type=_positive_int,
        default=defaults.batch_count,
        help="ordered batches the data is cut into",
    )
    training.add_argument(
        "--test-fraction",
        type=float,
        default=defaults.test_fraction,
        help="held-out share of the training batches, between 0 and 1",
    )
    training.add_argument("--seed", type=int, default=defaults.seed, help="split seed")
    training.add_argument(
        "--order-by", default="", help="column that orders the batches (default: file order)"
    )
    training.add_argument(
        "--margin",
        type=float,
        default=defaults.margin,
        help="how much better than the champion a candidate must be to be promoted",
    )
    training.add_argument(
        "--pipeline-root",
        type=Path,
        default=None,
        help="where run artifacts are written (default: HOME/runs)",
    )
    training.add_argument(
        "--no-cache", action="store_true", help="run every task, ignoring the cache"
    )
    training.add_argument(
        "-v", "--verbose", action="store_true", help="show kfp.local's full task logs"
    )


def _add_param_option(parser: argparse.ArgumentParser) -> None:
    """``--param NAME=VALUE``, checked against the pipeline's declared parameters and types."""
    parser.add_argument(
        "--param",
        dest="parameters",
        action="append",
        default=[],
        type=parse_assignment,
        metavar="NAME=VALUE",
        help="set a pipeline parameter, checked against its declared type (repeatable; dicts "
        "and lists as JSON)",
    )


def training_request(args: argparse.Namespace) -> TrainingRequest:
    """The training settings of a ``run`` command (evaluation retrains with the same)."""
    home = Home.resolve(args.home)
    return TrainingRequest(
        workload=args.workload,
        source=args.source,
        compute=args.compute,
        placement=args.placement,
        compute_config=args.compute_config,
        hyperparameters=dict(args.hyperparameters),
        channels=dict(getattr(args, "channels", [])),
        registry=args.registry or str(home.registry),
        model_name=args.model_name,
        batch_count=args.batch_count,
        training_batches=getattr(args, "training_batches", TrainingRequest().training_batches),
        test_fraction=args.test_fraction,
        seed=args.seed,
        order_by=args.order_by,
        margin=args.margin,
        pipeline_root=str(args.pipeline_root or home.runs),
        cache=not args.no_cache,
    )


def _run_training(args: argparse.Namespace, console: Console) -> int:
    from flywheel.pipelines.training_run import run_training, summary_table

    result = run_training(training_request(args), verbose=args.verbose, console=console)
    console.print(summary_table(result))
    return 0


def _run_tuning(args: argparse.Namespace, console: Console) -> int:
    from flywheel.pipelines.tuning_run import run_tuning, summary_table, trials_table

    report_dir = Home.resolve(args.home).report
    result = run_tuning(
        training_request(args), verbose=args.verbose, console=console, report_dir=report_dir
    )
    console.print(trials_table(result.trials, result.objective))
    console.print(summary_table(result))
    return 0


def _submit(args: argparse.Namespace, console: Console) -> int:
    from flywheel.pipelines.submit import submit  # the KFP API client is only needed here

    run = submit(
        args.pipeline,
        host=args.host,
        parameters=args.parameters,
        workload=args.workload,
        bundle_to=args.bundle_to,
        experiment=args.experiment,
        run_name=args.run_name,
        service_account=args.service_account,
        namespace=args.namespace,
    )
    if run.workload:
        console.print(f"workload: {run.workload}")
    what = f"version {run.version}" if run.version else "this checkout's spec, sent inline"
    console.print(f"started run {run.run_id} of {what}: {run.url}")
    return 0


def _bundle(args: argparse.Namespace) -> int:
    from flywheel.components.compute.sagemaker.s3 import parse_s3_uri
    from flywheel.components.data.bundles import upload_bundle  # boto3 is only needed here

    parse_s3_uri("--to", args.to, allow_bucket_only=True)
    print(upload_bundle(args.workload, args.to))
    return 0


def _compile(args: argparse.Namespace, console: Console) -> int:
    from flywheel.pipelines import compile as compiling  # the compiler is only needed here

    if args.check:
        problems = compiling.stale_files(args.output_dir)
        for problem in problems:
            console.print(f"[red]{problem.path}: {problem.problem}[/red]")
        if problems:
            console.print("run `flywheel compile` and commit the result")
            return EXIT_FAILED
        console.print(f"compiled pipelines in {args.output_dir} are up to date")
        return 0
    for path in compiling.compile_all(args.output_dir):
        console.print(f"wrote {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # argparse has already printed its one line (or --help)
        return int(stop.code or 0)
    from rich.console import Console

    console = Console(soft_wrap=True)
    home = Home.resolve(args.home)
    with interrupts_handled():
        try:
            return _dispatch(args, home, console)
        except InvalidSpecError as error:
            print(f"flywheel: error: {error}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except FlywheelError as error:
            print(f"flywheel: failed: {error}", file=sys.stderr)
            return EXIT_FAILED
        except Interrupted as stop:
            _recover_registry(args, home)
            print(
                f"flywheel: interrupted by {stop.signal_name}: the run and its processes are stopped",
                file=sys.stderr,
            )
            return stop.exit_status
        except Exception as error:
            problem = _aws_credential_problem(error)
            if problem is None:
                raise
            print(f"flywheel: error: {problem}", file=sys.stderr)
            return EXIT_BAD_INPUT


def _aws_credential_problem(error: Exception) -> InvalidSpecError | None:
    """A missing profile or key, or a config that does not parse, wherever botocore first read it.

    botocore reads the shared config for ``AWS_PROFILE`` even to load a service model (checking a
    config's instance type does), so the problem can surface before any credential check runs.
    """
    if "botocore" not in sys.modules:  # nothing read AWS's configuration: not AWS's error
        return None
    from flywheel.components.compute.sagemaker.clients import credential_problem

    return credential_problem(error)


def _dispatch(args: argparse.Namespace, home: Home, console: Console) -> int:
    if args.command in ("run", "demo"):
        from flywheel.pipelines.forked_tasks import warm_interpreter
        from flywheel.pipelines.tracking_setup import tracking_for_run

        # The tasks' warm interpreter imports the steps while this process imports the rest.
        # Its lines are plain text ("flywheel-mlops[tracking]" is not rich markup).
        with warm_interpreter(), tracking_for_run(home, partial(console.print, markup=False)):
            return _dispatch_command(args, home, console)
    return _dispatch_command(args, home, console)


def _dispatch_command(args: argparse.Namespace, home: Home, console: Console) -> int:
    from flywheel.pipelines import loop_cli

    if args.command == "run" and args.pipeline == "training":
        return _run_training(args, console)
    if args.command == "run" and args.pipeline == "tuning":
        return _run_tuning(args, console)
    if args.command == "run" and args.pipeline == "pipeline":
        return _run_pipeline(args, home, console)
    if args.command == "run":
        return loop_cli.run_evaluation_command(args, training_request(args), home, console)
    if args.command == "demo":
        return loop_cli.demo_command(args, home, console)
    if args.command == "report":
        return loop_cli.report_command(args, home, console)
    if args.command == "submit":
        return _submit(args, console)
    if args.command == "bundle":
        return _bundle(args)
    if args.command == "runs":
        from flywheel.pipelines.runs_cli import runs_command

        return runs_command(args, home, console)
    if args.command in ("approve", "reject"):
        return approval_cli.decide_command(args, home, console)
    if args.command == "registry":
        return approval_cli.show_command(args, home, console)
    if args.command == "deployments":
        from flywheel.pipelines.deployments_cli import check_command

        return check_command(args, console)
    return _compile(args, console)


def _run_pipeline(args: argparse.Namespace, home: Home, console: Console) -> int:
    from flywheel.pipelines.pipeline_run import run_named_pipeline

    result = run_named_pipeline(
        args.name,
        args.parameters,
        home=home,
        cache=not args.no_cache,
        verbose=args.verbose,
        console=console,
    )
    console.print(f"{args.name}: done; output {result.outputs or 'none'}")
    console.print(f"artifacts: {result.run_dir}\nlog: {result.log_file}")
    return 0


def _recover_registry(args: argparse.Namespace, home: Home) -> None:
    """Finish whatever registry write a killed step left half-done (a local registry only)."""
    if args.command == "demo":
        root = str((args.workdir or home.demo) / "registry")
    else:
        root = getattr(args, "registry", None) or str(home.registry)
    if "://" in root and not root.startswith("file://"):
        return
    from flywheel.components.registry import LocalModelRegistry

    registry = LocalModelRegistry(root.removeprefix("file://"))
    if registry.root.is_dir():
        for model in registry.root.iterdir():
            if model.is_dir():
                registry.recover(model.name)


if __name__ == "__main__":
    sys.exit(main())
