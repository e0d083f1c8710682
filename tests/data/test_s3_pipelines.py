"""The pipelines end to end through kfp.local with their data and code in S3 (a moto server).

Every task is its own process and reaches S3 as a pod would: default credential chain, endpoint
from AWS_ENDPOINT_URL. Bad S3 inputs stop at the command line with one line naming the URI.
"""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flywheel.components.data import batches as data
from flywheel.components.data import tables
from flywheel.components.data.bundles import upload_bundle
from flywheel.components.registry import LocalModelRegistry
from flywheel.pipelines.cli import main
from flywheel.pipelines.evaluation_run import EvaluationRequest, run_evaluation
from flywheel.pipelines.training_run import TrainingRequest, run_training

from .conftest import BUCKET

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
QSAR_WORKLOAD = REPO / "examples" / "qsar" / "workload.yaml"
FAST = {"n_estimators": "25", "n_bits": "1024"}
SOURCE = f"s3://{BUCKET}/assays/chembl.parquet"
MODEL = "qsar-pic50"


def _put_parquet(s3, key: str, table: pa.Table) -> None:
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=200)
    s3.put_object(Bucket=BUCKET, Key=key, Body=sink.getvalue())


@pytest.fixture
def chembl_in_s3(s3) -> pa.Table:
    """The built-in ChEMBL assay as typed Parquet in S3, the way a team would keep it."""
    table = tables.open_table("builtin:chembl-CHEMBL2321810").read()
    table = table.set_column(2, "pIC50", table.column("pIC50").cast(pa.float64()))
    _put_parquet(s3, SOURCE.removeprefix(f"s3://{BUCKET}/"), table)
    return table


def _request(root: Path, bundle: str, **overrides) -> TrainingRequest:
    fields = {
        "workload": bundle,
        "source": SOURCE,
        "hyperparameters": FAST,
        "registry": str(root / "registry"),
        "pipeline_root": str(root / "runs"),
    }
    return TrainingRequest(**{**fields, **overrides})


def test_training_and_evaluation_read_parquet_and_code_from_s3(
    s3, chembl_in_s3, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("FLYWHEEL_BUNDLE_CACHE", str(tmp_path / "bundles"))
    bundle = upload_bundle(QSAR_WORKLOAD, f"s3://{BUCKET}/bundles")
    etag = s3.head_object(Bucket=BUCKET, Key="assays/chembl.parquet")["ETag"].strip('"')

    trained = run_training(_request(tmp_path, bundle))
    lineage = trained.version.lineage
    assert trained.promoted and trained.version.stage == "champion"
    for side in ("train", "test"):
        assert lineage["data"][side]["source"] == SOURCE
        assert f"etag={etag}" in lineage["data"][side]["source_fingerprint"]
        assert len(lineage["data"][side]["sha256"]) == 64
    assert lineage["code"]["workload"] == bundle and len(lineage["code"]["sha256"]) == 64
    bounds = data.batch_bounds(len(chembl_in_s3), 8)
    assert lineage["data"]["train"]["rows"] + lineage["data"]["test"]["rows"] == bounds[2][1]

    evaluated = run_evaluation(
        EvaluationRequest(
            batch=3,
            threshold="rmse above 0.01",  # always breached: the retrained version registers too
            history=str(tmp_path / "history"),
            training=_request(tmp_path, bundle),
        )
    )
    (scored,) = evaluated.run.run_dir.glob("prepare-batch*/labelled_batch")
    start, end = bounds[3]
    ids = chembl_in_s3.column("compound_id").to_pylist()[start:end]
    assert tables.open_table(str(scored)).read().column("compound_id").to_pylist() == ids
    assert evaluated.evaluation["batch"] == 3 and "rmse" in evaluated.evaluation["metrics"]
    assert evaluated.new_versions
    retrained = LocalModelRegistry(tmp_path / "registry").get(MODEL, evaluated.new_versions[-1])
    assert retrained.lineage["data"]["train"]["source"] == SOURCE
    assert retrained.lineage["code"]["workload"] == bundle


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("s3://no-such-bucket-here/assay.parquet", "no such bucket 'no-such-bucket-here'"),
        (f"s3://{BUCKET}/assays/missing.parquet", "no such key 'assays/missing.parquet'"),
        (f"s3://{BUCKET}/assays/corrupt.parquet", "is not a readable Parquet file"),
        (f"s3://{BUCKET}/assays/unlabelled.csv", "lacks column(s) pIC50"),
        (f"s3://{BUCKET}/assays/denied.csv", "access denied"),
    ],
)
def test_bad_s3_sources_stop_in_one_line_and_register_nothing(
    s3, without_read_access, tmp_path: Path, capsys, source, problem
) -> None:
    s3.put_object(Bucket=BUCKET, Key="assays/corrupt.parquet", Body=b"PAR1" + b"\0" * 64)
    s3.put_object(Bucket=BUCKET, Key="assays/unlabelled.csv", Body=b"compound_id,smiles\n1,CCO\n")
    s3.put_object(Bucket=BUCKET, Key="assays/denied.csv", Body=b"compound_id,smiles,pIC50\n")
    if "denied" in source:
        without_read_access()
    registry, runs = tmp_path / "registry", tmp_path / "runs"
    arguments = ["--source", source, "--registry", str(registry), "--pipeline-root", str(runs)]
    status = main(["run", "training", *arguments])
    error = capsys.readouterr().err.strip()
    assert status == 2 and len(error.splitlines()) == 1
    assert f"source: {source}" in error and problem in error
    assert not registry.exists() and not runs.exists()
