"""Which KFP releases take our Pipeline and PipelineVersion resources, against their real CRDs.

``spec.versionName`` first appears in KFP 2.17's CRD; 2.14.0, 2.15.0 and 2.16.1 ship one identical
CRD without it (tests/deploy/kfp-crds/2.14.0-2.16.1/, with its origin). The chart's default is 2.17;
``kfp.version`` (Helm) or the ``kfp-before-2.17`` component (kustomize) emit what the older ones take.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from deploy_checks import KFP_CRDS, MANIFESTS, helm_template, kustomize, schemas_of

OLD_CRDS = Path(__file__).parent / "kfp-crds" / "2.14.0-2.16.1"
RELEASES = {"2.14.0": OLD_CRDS, "2.15.0": OLD_CRDS, "2.16.1": OLD_CRDS, "2.17.0": KFP_CRDS}


def _schemas(release: str) -> dict[tuple[str, str], dict[str, Any]]:
    folder = RELEASES[release]
    if not folder.is_dir():
        pytest.skip(f"KFP {release}'s CRDs are not in {folder}")
    return schemas_of(tuple(sorted(folder.glob("*.yaml"))))


def _kfp_objects(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = [doc for doc in docs if doc["apiVersion"].startswith("pipelines.kubeflow.org/")]
    assert {doc["kind"] for doc in found} == {"Pipeline", "PipelineVersion"}
    return found


def _validate(docs: list[dict[str, Any]], release: str) -> None:
    schemas = _schemas(release)
    for doc in _kfp_objects(docs):
        jsonschema.validate(doc, schemas[(doc["apiVersion"], doc["kind"])])


@pytest.mark.parametrize("release", RELEASES)
def test_chart_emits_what_each_kfp_release_accepts_when_told_its_version(release: str) -> None:
    minor = release.rsplit(".", 1)[0]
    _validate(helm_template("--set", f"kfp.version={minor}"), release)


@pytest.mark.parametrize("release", ["2.14.0", "2.15.0", "2.16.1"])
def test_default_output_needs_kfp_2_17_and_older_releases_refuse_it(release: str) -> None:
    docs = helm_template()
    _validate(docs, "2.17.0")
    with pytest.raises(jsonschema.ValidationError, match="versionName"):
        _validate(docs, release)


def test_overlays_emit_kfp_2_17_resources() -> None:
    _validate(kustomize(MANIFESTS / "overlays" / "prod"), "2.17.0")


@pytest.mark.parametrize("release", ["2.14.0", "2.15.0", "2.16.1"])
def test_before_2_17_component_makes_an_overlay_fit_older_kfp(tmp_path: Path, release: str) -> None:
    manifests = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, manifests)
    overlay = manifests / "overlays" / "prod" / "kustomization.yaml"
    text = overlay.read_text()
    overlay.write_text(
        text.replace(
            "  - ../../components/kfp\n",
            "  - ../../components/kfp\n  - ../../components/kfp-before-2.17\n",
        )
    )
    docs = kustomize(overlay.parent)
    _validate(docs, release)
    names = {doc["metadata"]["name"] for doc in docs if doc["kind"] == "PipelineVersion"}
    assert names == {
        doc["metadata"]["name"]
        for doc in kustomize(MANIFESTS / "overlays" / "prod")
        if doc["kind"] == "PipelineVersion"
    }
