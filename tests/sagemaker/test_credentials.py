"""A credential or profile problem is one line that names it, with exit status 2, before any call.

botocore raises its own exceptions for these (ProfileNotFound, PartialCredentialsError...), and
reads the profile as soon as a session or a service model is made, so the ``flywheel`` command is
run as a real process: what a person sees is its stderr and its exit status.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from flywheel.components.compute.sagemaker import AwsClients
from flywheel.components.compute.sagemaker.clients import check_credentials, credential_problem
from flywheel.components.errors import InvalidSpecError

from .conftest import ROLE

FLYWHEEL = Path(sys.executable).parent / "flywheel"


@pytest.fixture
def aws_config(monkeypatch, tmp_path) -> Path:
    """No AWS settings but this test's: empty shared files, no instance metadata, no key."""
    for name in list(os.environ):
        if name.startswith("AWS_") and name != "AWS_CA_BUNDLE":
            monkeypatch.delenv(name)
    config = tmp_path / "aws-config"
    config.write_text("[default]\nregion = us-east-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return config


def refusal() -> str:
    with pytest.raises(InvalidSpecError) as caught:
        check_credentials()
    assert caught.value.field == "AWS credentials"
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_a_profile_that_does_not_exist_is_named_with_where_it_was_looked_for(
    aws_config, monkeypatch, tmp_path
):
    monkeypatch.setenv("AWS_PROFILE", "nope")

    assert refusal() == (
        f"AWS credentials: AWS_PROFILE=nope names no profile in {aws_config} or "
        f"{tmp_path / 'aws-credentials'}"
    )
    with pytest.raises(InvalidSpecError, match="AWS_PROFILE=nope"):
        AwsClients.connect("us-east-1")  # making the session already reads the profile


def test_a_key_without_its_secret_is_named(aws_config, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")

    assert refusal() == (
        "AWS credentials: AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not: "
        "set both, or neither"
    )


def test_a_config_file_that_does_not_parse_is_named(aws_config):
    aws_config.write_text("[profile broken\nregion = us-east-1\n")

    assert refusal() == f"AWS credentials: {aws_config} does not parse as an AWS config file"


def test_a_profile_whose_source_profile_is_missing_says_so(aws_config, monkeypatch):
    aws_config.write_text(f"[profile chained]\nrole_arn = {ROLE}\nsource_profile = missing\n")
    monkeypatch.setenv("AWS_PROFILE", "chained")

    assert refusal() == (
        'AWS credentials: The source_profile "missing" referenced in the profile "chained" '
        "does not exist."
    )


def test_no_credentials_at_all_says_how_to_give_them(aws_config):
    assert refusal().startswith("AWS credentials: none found: set AWS_ACCESS_KEY_ID")


def test_working_credentials_pass(aws_config, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")

    check_credentials()


def test_only_credential_problems_are_taken_for_them():
    def client_error(code: str) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": "m"}}, "GetCallerIdentity")

    assert credential_problem(client_error("AccessDenied")) is None
    assert credential_problem(client_error("ThrottlingException")) is None
    assert credential_problem(ValueError("ProfileNotFound")) is None
    assert str(credential_problem(client_error("ExpiredToken"))) == (
        "AWS credentials: rejected by AWS (ExpiredToken): m"
    )


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("AWS_PROFILE", "nope", "AWS_PROFILE=nope names no profile in "),
        ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY is not"),
    ],
    ids=["missing-profile", "key-without-secret"],
)
def test_flywheel_refuses_a_credential_problem_in_one_line_with_exit_status_2(
    aws_config, tmp_path, variable, value, named
):
    compute_config = tmp_path / "sagemaker.yaml"
    compute_config.write_text(
        f"role_arn: {ROLE}\ns3_prefix: s3://flywheel-test/runs\nimage_uri: 'i:1'\n"
    )
    home = tmp_path / "home"
    environment = {**os.environ, variable: value, "FLYWHEEL_HOME": str(home)}

    result = subprocess.run(
        [
            str(FLYWHEEL),
            "run",
            "training",
            "--compute",
            "sagemaker",
            "--compute-config",
            str(compute_config),
        ],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    (line,) = result.stderr.splitlines()
    assert line.startswith("flywheel: error: AWS credentials: ")
    assert named in line
    assert not (home / "runs").exists()  # refused before anything ran
