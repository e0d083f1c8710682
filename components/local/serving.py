"""Serve a trained model the way SageMaker's framework containers do, over files.

The training script doubles as the inference script: it defines ``model_fn(model_dir)`` and may
override ``input_fn(body, content_type)``, ``predict_fn(data, model)`` and
``output_fn(prediction, accept)``. What it does not override is the inference toolkit's default
(``sagemaker-inference``): the body is decoded to a NumPy array (``text/csv``, ``application/json``,
``application/x-npy``), ``model.predict`` is called and the prediction encoded for ``accept``. The
toolkit has no JSON Lines codec, so ``application/jsonlines`` (batch transform's name for it) is
decoded and encoded here, one JSON value per line. As in the serving container, a UTF-8 body (CSV, JSON) reaches ``input_fn`` as text and any other as
bytes. Batch transform calls the handlers once per input file. Run as
``python -m components.local.serving`` so that a model is loaded in a process of its own.
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


def read_body(path: Path, content_type: str) -> str | bytes:
    """The request body as the serving container hands it to ``input_fn``."""
    body = path.read_bytes()
    return body.decode("utf-8") if content_type in content_types.UTF8_TYPES else body


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
) -> None:
    input_fn = getattr(script, "input_fn", default_input_fn)
    predict_fn = getattr(script, "predict_fn", default_predict_fn)
    output_fn = getattr(script, "output_fn", default_output_fn)
    model = script.model_fn(str(model_dir))
    output_dir.mkdir(parents=True, exist_ok=True)
    for path in inputs:
        prediction = predict_fn(input_fn(read_body(path, content_type), content_type), model)
        (output_dir / f"{path.name}.out").write_bytes(response_bytes(output_fn(prediction, accept)))
        print(f"transformed {path.name}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source-dir", type=Path, required=True)
    parser.add_argument("--entry-point", required=True)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--content-type", default="text/csv")
    parser.add_argument("--accept", default="text/csv")
    parser.add_argument("inputs", type=Path, nargs="+")
    args = parser.parse_args(argv)
    script = load_script(args.source_dir, args.entry_point)
    transform_files(
        script, args.model_dir, args.inputs, args.output_dir, args.content_type, args.accept
    )


if __name__ == "__main__":
    main()
