"""Code bundles: packed reproducibly, named by their digest, fetched once per pod and verified."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flywheel.components.contract.workload import load_workload
from flywheel.components.data import bundles
from flywheel.components.errors import InvalidSpecError
from flywheel.operators.kfp_standin import KfpStandIn
from flywheel.pipelines.cli import main

from .conftest import BUCKET

REPO = Path(__file__).resolve().parents[2]
QSAR_WORKLOAD = REPO / "examples" / "qsar" / "workload.yaml"


@pytest.fixture
def bundle_cache(tmp_path: Path, monkeypatch) -> Path:
    cache = tmp_path / "pod-cache"
    monkeypatch.setenv(bundles.CACHE_VARIABLE, str(cache))
    return cache


def _workload_beside_its_code(root: Path) -> Path:
    """A workload.yaml in one folder whose script lives in a sibling folder (source_dir: ../src)."""
    (root / "src").mkdir(parents=True)
    (root / "src" / "train.py").write_text("print('loss=0.5')\n")
    (root / "config").mkdir()
    workload = root / "config" / "workload.yaml"
    workload.write_text(
        textwrap.dedent(
            """\
            name: own-model
            source_dir: ../src
            entry_point: train.py
            data: {id_column: id, feature_columns: [x], label_column: y}
            objective: {metric: rmse}
            """
        )
    )
    return workload


def test_same_files_give_the_same_bundle_bytes_and_name(tmp_path: Path) -> None:
    workload = _workload_beside_its_code(tmp_path / "code")
    first = bundles.pack_bundle(workload, _mkdir(tmp_path / "a"))
    os.utime(tmp_path / "code" / "src" / "train.py", (1, 1))
    again = bundles.pack_bundle(workload, _mkdir(tmp_path / "b"))
    assert first.name == again.name and first.read_bytes() == again.read_bytes()
    assert bundles.BUNDLE_KEY.search(first.name)
    (tmp_path / "code" / "src" / "train.py").write_text("print('loss=0.4')\n")
    assert bundles.pack_bundle(workload, _mkdir(tmp_path / "c")).name != first.name


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def test_bundle_command_uploads_under_its_digest_and_prints_the_uri(
    s3, tmp_path: Path, bundle_cache: Path, capsys
) -> None:
    workload = _workload_beside_its_code(tmp_path / "code")
    assert main(["bundle", "--workload", str(workload), "--to", f"s3://{BUCKET}/bundles"]) == 0
    uri = capsys.readouterr().out.strip()
    assert uri.startswith(f"s3://{BUCKET}/bundles/bundle-") and uri.endswith(".tar.gz")
    fetched = load_workload(uri)
    assert fetched.name == "own-model" and (fetched.source_dir / "train.py").is_file()
    assert fetched.source_dir.parent == bundle_cache


def test_a_pod_fetches_each_bundle_once(s3, tmp_path: Path, bundle_cache: Path) -> None:
    uri = bundles.upload_bundle(QSAR_WORKLOAD, f"s3://{BUCKET}/once")
    calls: list[str] = []
    s3.meta.events.register("before-call.s3", lambda model, **_: calls.append(model.name))
    first = bundles.fetch_bundle(uri, s3)
    assert bundles.fetch_bundle(uri, s3) == first
    assert calls.count("GetObject") == 1


def test_a_bundle_whose_bytes_do_not_match_its_name_is_refused(
    s3, tmp_path: Path, bundle_cache: Path
) -> None:
    uri = bundles.upload_bundle(QSAR_WORKLOAD, f"s3://{BUCKET}/tampered")
    s3.put_object(Bucket=BUCKET, Key=uri.removeprefix(f"s3://{BUCKET}/"), Body=b"other bytes")
    with pytest.raises(InvalidSpecError, match=r"its bytes have SHA-256 [0-9a-f]{64}, not the"):
        load_workload(uri)
    assert not list(bundle_cache.glob("*/workload.yaml"))


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        (f"s3://{BUCKET}/code/workload.yaml", "is not a code bundle"),
        (f"s3://{BUCKET}/code/bundle-{'0' * 64}.tar.gz", "no such key"),
    ],
)
def test_bad_bundle_references_are_refused_naming_the_uri(
    s3, bundle_cache: Path, uri, problem
) -> None:
    with pytest.raises(InvalidSpecError, match=rf"workload: {uri}.*{problem}"):
        load_workload(uri)


def test_submit_with_a_local_workload_bundles_it_and_passes_the_uri(
    s3, tmp_path: Path, capsys
) -> None:
    workload = _workload_beside_its_code(tmp_path / "code")
    with KfpStandIn() as api:
        status = main(
            [
                "submit",
                "training",
                "--host",
                api.url,
                "--run-name",
                "own-code",
                "--workload",
                str(workload),
                "--bundle-to",
                f"s3://{BUCKET}/submitted",
            ]
        )
        assert status == 0, capsys.readouterr().err
        (run,) = api.runs_named("own-code")
    uri = run["runtime_config"]["parameters"]["workload"]
    assert uri.startswith(f"s3://{BUCKET}/submitted/bundle-")
    key = uri.removeprefix(f"s3://{BUCKET}/")
    assert s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"] > 0


def test_submit_with_a_local_workload_needs_somewhere_to_upload(tmp_path: Path, capsys) -> None:
    workload = _workload_beside_its_code(tmp_path / "code")
    with KfpStandIn() as api:
        status = main(["submit", "training", "--host", api.url, "--workload", str(workload)])
        assert api.create_calls == 0
    error = capsys.readouterr().err.strip()
    assert status == 2 and "--bundle-to: a local --workload is uploaded as a code bundle" in error


def test_help_loads_neither_boto3_nor_pyarrow_nor_kfp() -> None:
    script = (
        "import sys\n"
        "from flywheel.pipelines.cli import build_parser\n"
        "build_parser().format_help()\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'boto3', 'pyarrow', 'kfp'}))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"


def test_submit_fingerprints_an_s3_source_so_new_data_misses_the_cluster_cache(s3, capsys) -> None:
    s3.put_object(Bucket=BUCKET, Key="assays/nightly.csv", Body=b"compound_id,smiles,pIC50\n")
    etag = s3.head_object(Bucket=BUCKET, Key="assays/nightly.csv")["ETag"].strip('"')
    source = f"s3://{BUCKET}/assays/nightly.csv"
    with KfpStandIn() as api:
        arguments = ["submit", "training", "--host", api.url, "--param", f"source={source}"]
        assert main([*arguments, "--run-name", "nightly"]) == 0, capsys.readouterr().err
        (run,) = api.runs_named("nightly")
    assert f"etag={etag}" in run["runtime_config"]["parameters"]["source_fingerprint"]
