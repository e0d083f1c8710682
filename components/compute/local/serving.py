"""Serve a trained model the way SageMaker's framework containers do, over files.

The training script doubles as the inference script: it defines ``model_fn(model_dir)`` and may
override ``input_fn(body, content_type)``, ``predict_fn(data, model)`` and
``output_fn(prediction, accept)``. What it does not override is the inference toolkit's default
(``sagemaker-inference``): the body is decoded to a NumPy array (``text/csv``, ``application/json``,
``application/x-npy``), ``model.predict`` is called and the prediction encoded for ``accept``. The
toolkit has no JSON Lines codec, so ``application/jsonlines`` (batch transform's name for it) is
decoded and encoded here, one JSON value per line. As in the serving container, a UTF-8 body (CSV,
JSON) reaches ``input_fn`` as text and any other as bytes. As batch transform does, the handlers
are called once per input file (``SplitType: None``, whatever ``BatchStrategy`` says), or per
non-empty line (``Line`` with ``SingleRecord``), or per run of lines joined with newlines up to
``MaxPayloadInMB`` (``Line`` with ``MultiRecord``); with ``Line`` every response is followed by a
newline (``AssembleWith: Line``). Run as
``python -m components.compute.local.serving`` so that a model is loaded in a process of its own.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from sagemaker_inference import content_types, decoder, encoder

JSONLINES = "application/jsonlines"
# SageMaker's default MaxPayloadInMB (6, counted in mebibytes): the largest request ``MultiRecord``
# builds, and the largest record either strategy sends.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024


def decode_jsonlines(body: str | bytes) -> Any:
    """One JSON value per line (an array of feature values) as a 2-D array, one row per line."""
    import numpy as np

    text = body.decode("utf-8") if isinstance(body, bytes) else body
    return np.array([json.loads(line) for line in text.splitlines() if line.strip()])


def encode_jsonlines(prediction: Any) -> str:
    """One JSON value per line: each row of the prediction (a value, or a list for a 2-D one)."""
    rows = prediction.tolist() if hasattr(prediction, "tolist") else list(prediction)
    return "".join(json.dumps(row) + "\n" for row in rows)


def default_input_fn(body: str | bytes, content_type: str) -> Any:
    if content_type == JSONLINES:
        return decode_jsonlines(body)
    return decoder.decode(body, content_type)


def default_predict_fn(data: Any, model: Any) -> Any:
    return model.predict(data)


def default_output_fn(prediction: Any, accept: str) -> str | bytes:
    if accept == JSONLINES:
        return encode_jsonlines(prediction)
    return encoder.encode(prediction, accept)


def as_body(payload: bytes, content_type: str) -> str | bytes:
    """A request payload as the serving container hands it to ``input_fn``."""
    return payload.decode("utf-8") if content_type in content_types.UTF8_TYPES else payload


def requests_of(path: Path, split_type: str, batch_strategy: str) -> list[bytes]:
    """The requests batch transform makes of one input file.

    A record larger than ``MAX_PAYLOAD_BYTES`` is refused, as SageMaker fails such a job.
    """
    body = path.read_bytes()
    if split_type != "Line":
        return [body]
    # Cut at newline characters, as SageMaker does; blank lines make no request.
    records = [line for line in body.split(b"\n") if line.strip()]
    for number, record in enumerate(records, start=1):
        if len(record) > MAX_PAYLOAD_BYTES:
            raise SystemExit(
                f"serving.split_type: record {number} of {path.name} is {len(record)} bytes, "
                f"over MaxPayloadInMB ({MAX_PAYLOAD_BYTES} bytes)"
            )
    if batch_strategy == "SingleRecord":
        return records
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


def response_bytes(response: Any) -> bytes:
    """An ``output_fn`` result as written to ``<input>.out``: text, bytes or ``(body, type)``."""
    if isinstance(response, tuple):
        response = response[0]
    return response.encode("utf-8") if isinstance(response, str) else bytes(response)


def load_script(source_dir: Path, entry_point: str) -> ModuleType:
    sys.path.insert(0, str(source_dir))
    spec = importlib.util.spec_from_file_location("user_inference_script", source_dir / entry_point)
    if spec is None or spec.loader is None:
        raise SystemExit(f"entry_point: cannot import {entry_point} from {source_dir}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "model_fn"):
        raise SystemExit(
            f"entry_point: {entry_point} defines no model_fn(model_dir), needed to serve it"
        )
    return module


def transform_files(
    script: ModuleType,
    model_dir: Path,
    inputs: list[Path],
    output_dir: Path,
    content_type: str,
    accept: str,
    split_type: str = "None",
    batch_strategy: str = "MultiRecord",
) -> None:
    input_fn = getattr(script, "input_fn", default_input_fn)
    predict_fn = getattr(script, "predict_fn", default_predict_fn)
    output_fn = getattr(script, "output_fn", default_output_fn)
    model = script.model_fn(str(model_dir))
    output_dir.mkdir(parents=True, exist_ok=True)
    assembly = b"\n" if split_type == "Line" else b""
    for path in inputs:
        requests = requests_of(path, split_type, batch_strategy)
        with (output_dir / f"{path.name}.out").open("wb") as out:
            for payload in requests:
                data = input_fn(as_body(payload, content_type), content_type)
                out.write(response_bytes(output_fn(predict_fn(data, model), accept)) + assembly)
        print(f"transformed {path.name} in {len(requests)} request(s)", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source-dir", type=Path, required=True)
    parser.add_argument("--entry-point", required=True)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--content-type", default="text/csv")
    parser.add_argument("--accept", default="text/csv")
    parser.add_argument("--split-type", default="None")
    parser.add_argument("--batch-strategy", default="MultiRecord")
    parser.add_argument("inputs", type=Path, nargs="+")
    args = parser.parse_args(argv)
    script = load_script(args.source_dir, args.entry_point)
    transform_files(
        script,
        args.model_dir,
        args.inputs,
        args.output_dir,
        args.content_type,
        args.accept,
        args.split_type,
        args.batch_strategy,
    )


if __name__ == "__main__":
    main()
