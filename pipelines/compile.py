"""Compile every pipeline to KFP IR YAML and to KFP's Kubernetes resources, and every public
component to its own spec; check they are all fresh.

The IR YAML is for upload and for runs from the UI; the Kubernetes manifests (see
:mod:`pipelines.kubernetes_manifests`) go to ``manifests/pipelines/`` for ``kubectl apply -f`` and,
byte for byte the same, into the Helm chart's ``files/``. Each public component of
``flywheel.components`` compiles to ``components/compiled/<name>.yaml``, which
``kfp.components.load_component_from_file`` loads into a pipeline that does not import Flywheel.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfp import compiler

from flywheel import components
from flywheel.pipelines import kubernetes_manifests
from flywheel.pipelines.catalog import PIPELINES
from flywheel.pipelines.defaults import COMPILED_DIR

_REPO = Path(__file__).parent.parent
# The first folder holds the version history the others repeat.
MANIFEST_DIRS = (
    _REPO / "manifests" / "pipelines",
    _REPO / "helm" / "flywheel" / "files" / "pipelines",
)
COMPONENT_DIR = _REPO / "components" / "compiled"


@dataclass(frozen=True)
class StaleFile:
    path: Path
    problem: str


def _manifest_files(manifest_dirs: tuple[Path, ...]) -> dict[Path, str]:
    if not manifest_dirs:
        return {}
    files = kubernetes_manifests.render_all(PIPELINES, history_dir=manifest_dirs[0])
    written = {folder / name: text for folder in manifest_dirs for name, text in files.items()}
    # Only the kubectl folder is a kustomize base; the chart reads its files itself.
    kustomization = manifest_dirs[0] / kubernetes_manifests.KUSTOMIZATION
    written[kustomization] = kubernetes_manifests.kustomization(files)
    return written


def public_components() -> dict[str, object]:
    """Every KFP component ``flywheel.components`` exports, by name (the images are not components)."""
    exported = {name: getattr(components, name) for name in components.__all__}
    return {name: value for name, value in exported.items() if hasattr(value, "component_spec")}


def _write_if_changed(path: Path, text: str) -> None:
    """Replace ``path`` atomically, and only when its bytes change: a reader never sees it half
    written (a ``compile --check`` while another compile runs, as parallel tests do)."""
    if path.is_file() and path.read_text() == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(text)
    os.replace(partial, path)


def _compile_to(compiled: Any, target: Path) -> Path:
    """KFP's compile of a pipeline or component into ``target``, written only when it changed."""
    with tempfile.TemporaryDirectory() as scratch:
        fresh = Path(scratch) / target.name
        compiler.Compiler().compile(compiled, str(fresh))
        _write_if_changed(target, fresh.read_text())
    return target


def compile_components(component_dir: Path) -> list[Path]:
    """Write ``<name>.yaml`` for every public component; the bytes depend only on its code."""
    return [
        _compile_to(component, component_dir / f"{name}.yaml")
        for name, component in public_components().items()
    ]


def compile_all(
    output_dir: Path = COMPILED_DIR,
    manifest_dirs: tuple[Path, ...] = MANIFEST_DIRS,
    component_dir: Path | None = COMPONENT_DIR,
) -> list[Path]:
    """Write ``<name>.yaml`` for every pipeline; the bytes depend only on the pipeline's code.

    Each of ``manifest_dirs`` gets the same Kubernetes manifests, one file per pipeline; each
    public component's spec goes to ``component_dir`` (none when it is None).
    """
    written = [
        _compile_to(pipeline, output_dir / f"{name}.yaml") for name, pipeline in PIPELINES.items()
    ]
    if component_dir is not None:
        written.extend(compile_components(component_dir))
    for path, text in _manifest_files(manifest_dirs).items():
        _write_if_changed(path, text)
        written.append(path)
    return written


def _stale_in(folder: Path, fresh: list[Path], what: str) -> list[StaleFile]:
    """Files of ``folder`` that differ from the ``fresh`` ones of the same name, or are extra."""
    problems = []
    names = {path.name for path in fresh}
    for path in fresh:
        committed = folder / path.name
        if not committed.is_file():
            problems.append(StaleFile(committed, "missing"))
        elif committed.read_bytes() != path.read_bytes():
            problems.append(StaleFile(committed, "out of date"))
    for committed in sorted(folder.glob("*.yaml")):
        if committed.name not in names:
            problems.append(StaleFile(committed, f"no {what} compiles to it"))
    return problems


def stale_files(
    output_dir: Path = COMPILED_DIR,
    manifest_dirs: tuple[Path, ...] = MANIFEST_DIRS,
    component_dir: Path | None = COMPONENT_DIR,
) -> list[StaleFile]:
    """Compiled files that differ from what the code compiles to now, or are missing or extra."""
    with tempfile.TemporaryDirectory() as scratch:
        fresh = compile_all(Path(scratch), manifest_dirs=(), component_dir=None)
        problems = _stale_in(output_dir, fresh, "pipeline")
        if component_dir is not None:
            fresh_components = compile_components(Path(scratch) / "components")
            problems += _stale_in(component_dir, fresh_components, "component")
    expected = _manifest_files(manifest_dirs)
    for path, text in expected.items():
        if not path.is_file():
            problems.append(StaleFile(path, "missing"))
        elif path.read_text() != text:
            problems.append(StaleFile(path, "out of date"))
    for folder in manifest_dirs:
        for committed in sorted(folder.glob("*.yaml")):
            if committed not in expected:
                problems.append(StaleFile(committed, "no pipeline compiles to it"))
    return problems
