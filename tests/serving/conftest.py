"""Serve a packed model through the local transformer, as batch scoring does, and read the scores."""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from flywheel.components.compute.backend import TransformJobSpec
from flywheel.components.compute.local.transform import LocalTransformer


def pack_model(folder: Path, archive: Path) -> Path:
    """``folder``'s files as ``model.tar.gz``, at the archive's root as SageMaker packs a model."""
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=path.name)
    return archive


@pytest.fixture
def serve(tmp_path: Path) -> Callable[..., str]:
    """``serve(model_folder, source_dir, entry_point, body, **spec fields)``: the ``.out`` text."""

    def run(model: Path, source_dir: Path, entry_point: str, body: str | bytes, **fields) -> str:
        request = tmp_path / "input" / "request"
        request.parent.mkdir(exist_ok=True)
        if isinstance(body, str):
            request.write_text(body)
        else:
            request.write_bytes(body)
        output = tmp_path / "output"
        LocalTransformer().transform(
            TransformJobSpec(
                job_name="serving-test",
                model_artifact=str(pack_model(model, tmp_path / "model.tar.gz")),
                source_dir=str(source_dir),
                entry_point=entry_point,
                input_location=str(request.parent),
                output_location=str(output),
                **fields,
            ),
            log=lambda _: None,
        )
        return (output / "request.out").read_text()

    return run
