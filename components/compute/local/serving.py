"""Serve a trained model the way SageMaker's framework containers do, over files.

The serving script defines ``model_fn(model_dir)`` and may override ``input_fn(body,
content_type)``, ``predict_fn(data, model)`` and ``output_fn(prediction, accept)``, or define
``transform_fn(model, body, content_type, accept)`` alone; what it leaves out is the default of the
workload's framework's container (``handlers/``). The script is imported from where that container
imports it: the PyTorch toolkit only from ``<model_dir>/code`` (it never reads
``SAGEMAKER_SUBMIT_DIRECTORY``), the others from the submit directory (``--source-dir``, what the
scikit-learn and XGBoost containers unpack into ``/opt/ml/code``). As in the serving container, a
UTF-8 body (CSV, JSON) reaches the handlers as text and any other as bytes. As batch transform
does, the handlers are called once per input file (``SplitType: None``, whatever ``BatchStrategy``
says), or per non-empty line (``Line`` with ``SingleRecord``), or per run of lines joined with
newlines up to ``MaxPayloadInMB`` (``Line`` with ``MultiRecord``); with ``Line`` every response is
followed by a newline (``AssembleWith: Line``). Run as ``python -m
flywheel.components.compute.local.serving`` so that a model is loaded in a process of its own.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from sagemaker_inference import content_types

from flywheel.components.compute.backend import (
    DEFAULT_MAX_PAYLOAD_MB,
    is_line_record,
    payload_limit,
)
from flywheel.components.compute.local import handlers

# SageMaker's default MaxPayloadInMB, in bytes as every backend reads it (``payload_limit``): the
# largest request either split type makes.
MAX_PAYLOAD_BYTES = payload_limit(DEFAULT_MAX_PAYLOAD_MB)
# Where the PyTorch toolkit imports the script from, inside the model (``/opt/ml/model/code``).
MODEL_CODE_DIR = "code"


def as_body(payload: bytes, content_type: str) -> str | bytes:
    """A request payload as the serving container hands it to ``input_fn``."""
    return payload.decode("utf-8") if content_type in content_types.UTF8_TYPES else payload


def _records(path: Path, body: bytes) -> list[bytes]:
    """The non-empty lines of a body, each refused when larger than the payload limit."""
    records = [line for line in body.split(b"\n") if line.strip()]
    for number, record in enumerate(records, start=1):
        if len(record) > MAX_PAYLOAD_BYTES:
            raise SystemExit(
                f"serving.split_type: record {number} of {path.name} is {len(record)} bytes, "
                f"over MaxPayloadInMB ({MAX_PAYLOAD_BYTES} bytes)"
            )
    return records


def _joined_within_limit(records: list[bytes]) -> list[bytes]:
    """Consecutive records joined by newlines into requests of at most ``MAX_PAYLOAD_BYTES``."""
    batches: list[list[bytes]] = []
    size = 0
    for record in records:
        # Joined with newlines: a record adds its length and, after the first, one byte.
        if batches and size + 1 + len(record) <= MAX_PAYLOAD_BYTES:
            batches[-1].append(record)
            size += 1 + len(record)
        else:
            batches.append([record])
            size = len(record)
    return [b"\n".join(batch) for batch in batches]


def requests_of(path: Path, split_type: str, batch_strategy: str, content_type: str) -> list[bytes]:
    """The requests batch transform makes of one input file, none over the payload limit.

    ``Line`` cuts at newlines: one record per request (``SingleRecord``) or as many as fit
    (``MultiRecord``). ``None`` sends the file whole when it fits; a larger file of line records
    is cut at record boundaries, as the SageMaker backend cuts it into parts, and any other larger
    file is refused, as SageMaker fails such a job. A record over the limit is refused too.
    """
    body = path.read_bytes()
    if split_type != "Line":
        if len(body) <= MAX_PAYLOAD_BYTES:
            return [body]
        if not is_line_record(content_type, split_type):
            raise SystemExit(
                f"serving.split_type: {path.name} is {len(body)} bytes of {content_type}, over "
                f"MaxPayloadInMB ({MAX_PAYLOAD_BYTES} bytes), and cannot be cut into records"
            )
        return _joined_within_limit(_records(path, body))
    records = _records(path, body)
    if batch_strategy == "SingleRecord":
        return records
    return _joined_within_limit(records)


def response_bytes(response: Any) -> bytes:
    """An ``output_fn`` result as written to ``<input>.out``: text, bytes or ``(body, type)``."""
    if isinstance(response, tuple):
        response = response[0]
    return response.encode("utf-8") if isinstance(response, str) else bytes(response)


def code_dir_for(framework: str | None, source_dir: Path, model_dir: Path) -> Path:
    """Where ``framework``'s container imports the serving script from."""
    return model_dir / MODEL_CODE_DIR if framework == "pytorch" else source_dir


def load_script(
    code_dir: Path, entry_point: str, framework: str | None = None
) -> ModuleType | None:
    """The serving script, imported from ``code_dir`` under its module name, as the containers do.

    None when the PyTorch toolkit finds no such module: it then serves with its defaults alone.
    """
    path = code_dir / entry_point
    if not path.is_file():
        if framework == "pytorch":
            return None
        raise SystemExit(f"entry_point: cannot import {entry_point} from {code_dir}")
    sys.path.insert(0, str(code_dir))
    if framework == "xgboost":
        handlers.provide_xgboost_container_package()
    name = entry_point.removesuffix(".py")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"entry_point: cannot import {entry_point} from {code_dir}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def transform_files(
    script: ModuleType | None,
    model_dir: Path,
    inputs: list[Path],
    output_dir: Path,
    content_type: str,
    accept: str,
    split_type: str = "None",
    batch_strategy: str = "MultiRecord",
    framework: str | None = None,
    entry_point: str = "the serving script",
) -> None:
    """Serve every input file with ``script``'s handlers over ``framework``'s container defaults."""
    chosen = handlers.handlers_of(script, handlers.defaults_for(framework), entry_point)
    model = chosen.model_fn(str(model_dir))
    output_dir.mkdir(parents=True, exist_ok=True)
    for path in inputs:
        requests = requests_of(path, split_type, batch_strategy, content_type)
        with (output_dir / f"{path.name}.out").open("wb") as out:
            for payload in requests:
                body = as_body(payload, content_type)
                response = response_bytes(chosen.transform_fn(model, body, content_type, accept))
                if split_type == "Line":
                    response += b"\n"  # AssembleWith: Line, after every response
                elif len(requests) > 1 and not response.endswith(b"\n"):
                    response += b"\n"  # a file cut into parts: responses never run together
                out.write(response)
        print(f"transformed {path.name} in {len(requests)} request(s)", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source-dir", type=Path, required=True)
    parser.add_argument("--entry-point", required=True)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--framework", default=None)
    parser.add_argument("--content-type", default="text/csv")
    parser.add_argument("--accept", default="text/csv")
    parser.add_argument("--split-type", default="None")
    parser.add_argument("--batch-strategy", default="MultiRecord")
    parser.add_argument("inputs", type=Path, nargs="+")
    args = parser.parse_args(argv)
    # A missing framework package is named before the script's own import of it can fail.
    handlers.defaults_for(args.framework)
    code_dir = code_dir_for(args.framework, args.source_dir, args.model_dir)
    script = load_script(code_dir, args.entry_point, args.framework)
    transform_files(
        script,
        args.model_dir,
        args.inputs,
        args.output_dir,
        args.content_type,
        args.accept,
        args.split_type,
        args.batch_strategy,
        framework=args.framework,
        entry_point=args.entry_point,
    )


if __name__ == "__main__":
    main()
