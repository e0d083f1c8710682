"""The PyTorch inference toolkit's defaults (aws/sagemaker-pytorch-inference-toolkit).

``src/sagemaker_pytorch_serving_container/default_pytorch_inference_handler.py``:
``default_model_fn`` loads TorchScript (``torch.jit.load``) from ``model.pt``, else from the only
``.pt``/``.pth`` file of the model folder, onto the GPU when there is one; ``default_input_fn``
decodes with sagemaker-inference's decoder and makes a tensor on that device (float32 for JSON and
CSV); ``default_predict_fn`` calls ``model.eval()`` and ``model(tensor)`` under ``torch.no_grad()``;
``default_output_fn`` turns a tensor into a list and encodes it for the first type of ``accept``
it supports. The toolkit imports the script only from ``<model_dir>/code`` (``serving.py`` chooses
where user code comes from).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from sagemaker_inference import content_types, decoder, encoder

from flywheel.components.compute.local.handlers import generic

CONTAINER = "PyTorch container"
# The toolkit vendors sagemaker-inference, whose transformer refuses transform_fn beside the others.
TRANSFORM_FN_CONFLICT = generic.TRANSFORM_FN_CONFLICT
DEFAULT_MODEL_FILENAME = "model.pt"


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_model_fn(model_dir: str) -> Any:
    folder = Path(model_dir)
    path = folder / DEFAULT_MODEL_FILENAME
    if not path.exists():
        found = sorted(p.name for p in folder.iterdir() if p.suffix in (".pt", ".pth"))
        if len(found) != 1:
            raise SystemExit(
                f"model: the {CONTAINER}'s default model_fn needs exactly one .pth or .pt file "
                f"in the model, found {found}; define model_fn in the serving script"
            )
        path = folder / found[0]
    try:
        model = torch.jit.load(str(path), map_location=_device())
    except RuntimeError as error:
        raise SystemExit(
            f"model: failed to load {path.name}; the {CONTAINER}'s default model_fn loads "
            f"TorchScript only (torch.jit.save), else define model_fn ({error})"
        ) from None
    return model.to(_device())


def default_input_fn(body: str | bytes, content_type: str) -> torch.Tensor:
    array = decoder.decode(body, content_type)
    if content_type in content_types.UTF8_TYPES:
        return torch.FloatTensor(array).to(_device())
    return torch.from_numpy(array).to(_device())


def default_predict_fn(data: torch.Tensor, model: Any) -> Any:
    with torch.no_grad():
        model = model.to(_device())
        model.eval()
        return model(data.to(_device()))


def default_output_fn(prediction: Any, accept: str) -> str | bytes:
    if isinstance(prediction, torch.Tensor):
        prediction = prediction.detach().cpu().numpy().tolist()
    for content_type in accept.replace(" ", "").split(","):
        if content_type in encoder.SUPPORTED_CONTENT_TYPES:
            encoded = encoder.encode(prediction, content_type)
            return encoded.encode("utf-8") if content_type == content_types.CSV else encoded
    raise SystemExit(
        f"serving.accept: the {CONTAINER} encodes {sorted(encoder.SUPPORTED_CONTENT_TYPES)} "
        f"by default, not {accept!r}; define output_fn in the script for other types"
    )
