"""The ``flywheel`` command refuses bad input in one line, before anything runs or is written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flywheel.pipelines.cli import main

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--hp", "n_estimators=many"], "hyperparameters.n_estimators: expected int, got 'many'"),
        (
            ["--hp", "depth=3"],
            "hyperparameters.depth: unknown hyperparameter; did you mean max_depth?",
        ),
        (["--hp", "depth"], "argument --hp: expected NAME=VALUE, got 'depth'"),
        (["--source", "missing.csv"], "source: missing.csv does not exist"),
        (
            ["--batch-count", "three"],
            "argument --batch-count: invalid positive integer value: 'three'",
        ),
        (["--test-fraction", "1.5"], "--test-fraction: must be between 0 and 1"),
        (["--compute", "mainframe"], "compute: 'mainframe' is not one of local"),
        (["--workload", "nowhere/workload.yaml"], "workload: nowhere/workload.yaml does not exist"),
    ],
)
def test_bad_input_is_one_line_naming_the_field_and_nothing_is_written(
    tmp_path: Path, capsys, arguments, message
) -> None:
    registry = tmp_path / "registry"
    status = main(
        [
            "run",
            "training",
            "--registry",
            str(registry),
            "--pipeline-root",
            str(tmp_path / "runs"),
            *arguments,
        ]
    )
    error = capsys.readouterr().err.strip()
    assert status == 2
    assert len(error.splitlines()) == 1 and message in error
    assert not registry.exists() and not (tmp_path / "runs").exists()


def test_malformed_data_file_is_refused_with_its_columns(tmp_path: Path, capsys) -> None:
    table = tmp_path / "assay.csv"
    table.write_text("name,activity\nx,1\n")
    status = main(["run", "training", "--source", str(table), "--registry", str(tmp_path / "r")])
    assert status == 2
    assert (
        "lacks column(s) compound_id, smiles, pIC50; it has name, activity"
        in capsys.readouterr().err
    )


def test_committed_compiled_pipelines_are_fresh() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "flywheel.pipelines.cli", "compile", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compile_check_catches_a_stale_file(tmp_path: Path, capsys) -> None:
    assert main(["compile", "--output-dir", str(tmp_path)]) == 0
    training = tmp_path / "training.yaml"
    text = training.read_text()
    assert "flywheel-training" in text
    training.write_text(text.replace("flywheel-training", "renamed", 1))
    assert main(["compile", "--check", "--output-dir", str(tmp_path)]) == 1
    assert "out of date" in capsys.readouterr().out


def _help(*command: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "flywheel.pipelines.cli", *command, "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    return " ".join(result.stdout.split())  # argparse wraps lines; compare as flowing text


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        (
            ("run", "training"),
            [
                "--batch-count BATCH_COUNT ordered batches the data is cut into (default: 8)",
                "(default: 3)",
                "(default: builtin:qsar)",
                "(default: 0.0)",
                "(default: local)",
                "(default: HOME/registry)",
            ],
        ),
        (("run", "evaluation"), ["(default: rmse above 1.0)", "(default: 5000)"]),
        (("demo", "flywheel"), ["(default: rmse above 1.0)", "(default: HOME/demo)"]),
        (("report",), ["(default: builtin:qsar)", "(default: HOME/report)"]),
        (("submit",), ["(default: flywheel)"]),
    ],
)
def test_help_shows_every_default_in_plain_words(
    command: tuple[str, ...], shown: list[str]
) -> None:
    text = _help(*command)
    for fragment in shown:
        assert fragment in text
    assert "``" not in text and "embedded default" not in text


def test_help_starts_without_importing_kfp_boto3_or_kubernetes() -> None:
    probe = (
        "import sys\n"
        "from flywheel.pipelines.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'kfp', 'boto3', 'botocore', 'kubernetes', 'matplotlib', 'pyarrow', 'yaml'})\n"
        "print('HEAVY', heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert "HEAVY []" in result.stdout


def test_cli_lists_the_pipelines_the_catalog_builds() -> None:
    from flywheel.pipelines.catalog import PIPELINES
    from flywheel.pipelines.defaults import PIPELINE_NAMES

    assert tuple(PIPELINES) == PIPELINE_NAMES
