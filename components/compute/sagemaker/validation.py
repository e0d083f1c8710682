"""Check AWS requests the way the service will, from botocore's copy of its service model.

botocore checks only types and required members before sending; the service also enforces
lengths, patterns, enums and list and map sizes, and refuses the call (often minutes into a
pipeline). Every such rule is in the service model that ships with botocore, so nothing here types
a limit by hand: :func:`check_value` checks one value against a named shape (a config field, before
any call), :func:`check_request` a whole request, and :func:`enforce_on` hooks the same check into
a client's event system so every call it makes is checked (the test suite does this to every
client it creates).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

import botocore.session
import regex
from botocore.exceptions import ParamValidationError
from botocore.model import OperationModel, ServiceModel, Shape

from flywheel.components.errors import InvalidSpecError

_NUMBERS = frozenset({"integer", "long", "float", "double"})


@functools.cache
def service_model(service: str) -> ServiceModel:
    return botocore.session.get_session().get_service_model(service)


@functools.cache
def _pattern(source: str) -> regex.Pattern:
    # Service patterns are Java regexes the service matches against the whole value; some carry
    # their own anchors, one even a quantified ``${1,256}``, which Python refuses.
    body = regex.sub(r"\$(\{\d+,\d+\})?$", "", source.removeprefix("^"))
    return regex.compile(body)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _size_problems(shape: Shape, size: int, unit: str) -> Iterator[str]:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and size < low:
        yield f"has {size} {unit}; at least {low} allowed"
    if high is not None and size > high:
        yield f"has {size} {unit}; at most {high} allowed"


def _string_problems(shape: Shape, value: str) -> Iterator[str]:
    if shape.enum and value not in shape.enum:
        yield f"{_shown(value)} is not one of {', '.join(shape.enum)}"
        return
    yield from _size_problems(shape, len(value), "characters")
    pattern = shape.metadata.get("pattern")
    if pattern and not _pattern(pattern).fullmatch(value):
        yield f"{_shown(value)} does not match the pattern {pattern}"


def problems(shape: Shape, value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every ``(path, message)`` where ``value`` breaks ``shape``'s rules, walking nested members."""
    kind = shape.type_name
    if kind == "structure" and isinstance(value, Mapping):
        members = shape.members
        for name in shape.required_members:
            if name not in value and not members[name].metadata.get("idempotencyToken"):
                yield f"{path}.{name}", "is required"
        for name, item in value.items():
            if name in members:
                yield from problems(members[name], item, f"{path}.{name}")
    elif kind == "list" and isinstance(value, list | tuple):
        for message in _size_problems(shape, len(value), "items"):
            yield path, message
        for index, item in enumerate(value):
            yield from problems(shape.member, item, f"{path}[{index}]")
    elif kind == "map" and isinstance(value, Mapping):
        for message in _size_problems(shape, len(value), "entries"):
            yield path, message
        for key, item in value.items():
            for message in _string_problems(shape.key, key):
                yield f"{path} key {_shown(key)}", message
            yield from problems(shape.value, item, f"{path}[{key!r}]")
    elif kind == "string" and isinstance(value, str):
        for message in _string_problems(shape, value):
            yield path, message
    elif kind in _NUMBERS and isinstance(value, int | float) and not isinstance(value, bool):
        low, high = shape.metadata.get("min"), shape.metadata.get("max")
        if (low is not None and value < low) or (high is not None and value > high):
            yield path, f"{value} is outside {low}-{high}"


def check_value(service: str, shape_name: str, value: Any, field: str) -> Any:
    """``value`` if it meets ``service``'s ``shape_name``; else one error naming ``field``."""
    shape = service_model(service).shape_for(shape_name)
    for path, message in problems(shape, value, field):
        raise InvalidSpecError(path, f"{message} (SageMaker's {shape_name})")
    return value


def fits(service: str, shape_name: str, value: Any) -> bool:
    """Whether ``value`` meets ``service``'s ``shape_name``: for data that may be left out instead."""
    shape = service_model(service).shape_for(shape_name)
    return next(problems(shape, value, shape_name), None) is None


def check_request(service: str, operation: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """``params`` if the service would accept them for ``operation``; else an error naming the field."""
    model = service_model(service).operation_model(operation)
    for path, message in problems(model.input_shape, params, operation):
        raise InvalidSpecError(path, message)
    return params


def _refuse_invalid(params: Mapping[str, Any], model: OperationModel, **_: Any) -> None:
    if model.input_shape is None:
        return
    found = [
        f"{path}: {message}" for path, message in problems(model.input_shape, params, model.name)
    ]
    if found:
        raise ParamValidationError(report="\n".join(found))


def enforce_on(client: Any) -> Any:
    """Make ``client`` refuse, before sending, any request its service would refuse."""
    client.meta.events.register(
        "before-parameter-build", _refuse_invalid, unique_id="flywheel-strict-validation"
    )
    return client
