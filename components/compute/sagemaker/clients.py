"""boto3 clients for one region, all with adaptive retries, so throttling slows us down instead of failing the step.

A credential or profile problem (``AWS_PROFILE`` naming no profile, a key without its secret, a
config file that does not parse, credentials AWS rejects) is refused in one line that names it
(:func:`credential_problem`), wherever botocore first reads the configuration.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import boto3
from botocore import exceptions as aws

from flywheel.components.compute.aws import RETRIES
from flywheel.components.errors import InvalidSpecError

CREDENTIALS_FIELD = "AWS credentials"
_NONE_FOUND = (
    "none found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, "
    "or give the pod an IAM role (IRSA)"
)
# What AWS answers for a key it does not know, a wrong secret, or an expired session.
_REJECTED_CODES = frozenset(
    {
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
    }
)


@dataclass(frozen=True)
class AwsClients:
    """The three services a SageMaker job touches. Built once per step and passed in."""

    sagemaker: Any
    s3: Any
    logs: Any
    region: str

    @classmethod
    def connect(cls, region: str | None, endpoint_url: str | None = None) -> AwsClients:
        """Clients for ``region``; ``endpoint_url`` points every service at one server (moto, a VPC endpoint)."""
        session = session_for(region)
        check_credentials(session)
        resolved = session.region_name or "us-east-1"

        def client(service: str) -> Any:
            return session.client(
                service, region_name=resolved, endpoint_url=endpoint_url, config=RETRIES
            )

        return cls(
            sagemaker=client("sagemaker"), s3=client("s3"), logs=client("logs"), region=resolved
        )


def session_for(region: str | None = None) -> boto3.session.Session:
    """A boto3 session; a profile that does not exist or a config that does not parse, in one line.

    Making the session already reads the shared config for the profile ``AWS_PROFILE`` names.
    """
    try:
        return boto3.session.Session(region_name=region)
    except aws.BotoCoreError as error:
        raise _as_one_line(error) from None


def check_credentials(session: boto3.session.Session | None = None) -> None:
    """Refuse to start without usable AWS credentials, in one line, instead of failing mid-run.

    Resolving credentials reads the environment, the shared files and the pod's web identity token
    (IRSA) without calling AWS; only on EC2 does it ask the instance metadata service. A profile
    that assumes a role resolves only at the first call: the permissions check's
    ``sts:GetCallerIdentity`` then says what is wrong the same way.
    """
    try:
        credentials = (session or session_for()).get_credentials()
    except aws.BotoCoreError as error:
        raise _as_one_line(error) from None
    if credentials is None:
        raise InvalidSpecError(CREDENTIALS_FIELD, _NONE_FOUND)


def _as_one_line(error: Exception) -> Exception:
    return credential_problem(error) or error


def credential_problem(error: BaseException) -> InvalidSpecError | None:
    """``error`` as one line naming the credential or profile problem; None for any other error."""
    problem = _describe(error)
    return None if problem is None else InvalidSpecError(CREDENTIALS_FIELD, problem)


def _describe(error: BaseException) -> str | None:
    if isinstance(error, aws.ProfileNotFound):
        profile = error.kwargs.get("profile", "")
        named_by = next(
            (
                f"{name}={profile}"
                for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE")
                if os.environ.get(name) == profile
            ),
            f"profile {profile!r}",
        )
        return f"{named_by} names no profile in {_config_files()}"
    if isinstance(error, aws.PartialCredentialsError):
        missing = error.kwargs.get("cred_var", "")
        provider = error.kwargs.get("provider", "")
        if provider == "env":
            return f"AWS_ACCESS_KEY_ID is set but {missing} is not: set both, or neither"
        return f"partial credentials from {provider}: {missing} is missing"
    if isinstance(error, aws.NoCredentialsError):
        return _NONE_FOUND
    if isinstance(error, aws.ConfigParseError):
        return f"{error.kwargs.get('path', 'the AWS config file')} does not parse as an AWS config file"
    if isinstance(error, aws.SSOTokenLoadError):
        return f"{_one_line(error)} (run `aws sso login` with this profile)"
    if isinstance(
        error,
        aws.InvalidConfigError
        | aws.ConfigNotFound
        | aws.CredentialRetrievalError
        | aws.UnknownCredentialError
        | aws.InfiniteLoopConfigError
        | aws.RefreshWithMFAUnsupportedError
        | aws.TokenRetrievalError
        | aws.SSOError,
    ):
        return _one_line(error)
    if isinstance(error, aws.ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        if code in _REJECTED_CODES:
            message = error.response.get("Error", {}).get("Message", "")
            return _one_line(f"rejected by AWS ({code}): {message}")
    return None


def _config_files() -> str:
    config = os.environ.get("AWS_CONFIG_FILE", "~/.aws/config")
    shared = os.environ.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials")
    return f"{config} or {shared}"


def _one_line(text: object) -> str:
    return " ".join(str(text).split()).rstrip(": ")


def console_url(region: str, kind_path: str, name: str) -> str:
    """The SageMaker console page of a job, model or endpoint, for log lines people click."""
    return f"https://{region}.console.aws.amazon.com/sagemaker/home?region={region}#/{kind_path}/{name}"
