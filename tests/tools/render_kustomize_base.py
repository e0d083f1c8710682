"""Write the kustomize bases' CRDs and operator from the chart: cluster-wide and namespaced.

One source for the operator's manifests: the Helm chart. Users without Helm get the same objects
as plain YAML; ``tests/deploy/test_kustomize.py`` fails when these files fall behind the chart.
Run ``python tests/tools/render_kustomize_base.py`` after changing the chart or the CRDs.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "flywheel"
# Each base and the chart values it is rendered with. The namespaced base serves the namespace the
# overlay puts it in (kustomize's namespace transformer moves its Roles too), and ships no CRD: it
# shares a cluster with the cluster-wide base, which owns the CRD, without sharing an object.
TARGETS = {
    ROOT / "manifests" / "base" / "flywheel.yaml": (),
    ROOT / "manifests" / "base-namespaced" / "flywheel.yaml": (
        "--set",
        "operator.watchNamespaces={flywheel}",
        "--set",
        "crds.install=false",
    ),
}
# The operator and what it needs; pipelines come from manifests/pipelines/, tests need Helm.
TEMPLATES = (
    "templates/operator/serviceaccount.yaml",
    "templates/operator/rbac.yaml",
    "templates/operator/service.yaml",
    "templates/operator/deployment.yaml",
    "templates/operator/poddisruptionbudget.yaml",
    "templates/networkpolicy.yaml",
)
HEADER = (
    "# Generated from helm/flywheel by tests/tools/render_kustomize_base.py; do not edit.\n"
    "# The CRDs (manifests/crds/) unless crds.install=false, then the operator with its RBAC.\n"
)


def helm_binary() -> str:
    local = ROOT / ".venv" / "bin" / "helm"
    found = str(local) if local.is_file() else shutil.which("helm")
    if found is None:
        raise FileNotFoundError(
            "helm not found; run `make test` or tests/tools/fetch_k8s_binaries.py"
        )
    return found


def render(*values: str) -> str:
    """A base's YAML: every CRD file (unless ``crds.install=false``), then the operator templates."""
    show_only = [arg for template in TEMPLATES for arg in ("--show-only", template)]
    operator = subprocess.run(
        [
            helm_binary(),
            "template",
            "flywheel",
            str(CHART),
            "--namespace",
            "flywheel",
            *values,
            *show_only,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    crds = [path.read_text() for path in sorted((ROOT / "manifests" / "crds").glob("*.yaml"))]
    if "crds.install=false" in values:
        crds = []
    return HEADER + "".join(f"---\n{crd}" for crd in crds) + operator


if __name__ == "__main__":
    for target, values in TARGETS.items():
        target.write_text(render(*values))
        print(f"wrote {target}", file=sys.stderr)
