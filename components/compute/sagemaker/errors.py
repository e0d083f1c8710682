"""How AWS errors are told apart: "not found" and "throttled" are expected, everything else is not."""

from __future__ import annotations

import re

from botocore.exceptions import ClientError

THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "ProvisionedThroughputExceededException",
    }
)
# SageMaker says "not found" with a ValidationException, in a few wordings.
_NOT_FOUND = re.compile(r"not found|could not find|does not exist", re.IGNORECASE)
_ALREADY_EXISTS = re.compile(r"already exist|must be unique|in use", re.IGNORECASE)


def error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def _message(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Message", "")


def is_throttling(error: ClientError) -> bool:
    return error_code(error) in THROTTLING_CODES


def is_not_found(error: ClientError) -> bool:
    code = error_code(error)
    return code in {"ResourceNotFound", "ResourceNotFoundException"} or (
        code == "ValidationException" and bool(_NOT_FOUND.search(_message(error)))
    )


def is_already_exists(error: ClientError) -> bool:
    code = error_code(error)
    return code == "ResourceInUse" or (
        code == "ValidationException" and bool(_ALREADY_EXISTS.search(_message(error)))
    )
