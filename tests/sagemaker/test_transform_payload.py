"""Every batch-transform request fits ``MaxPayloadInMB``, read as 10^6 bytes per MB.

Parts are cut by bytes, not rows; what cannot fit (one record over the limit, a whole object sent
with ``SplitType: None``, too much in flight at once) is refused before any job starts, where
SageMaker would fail the job only after training had run.
"""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from moto.sagemaker.models import SageMakerModelBackend

from flywheel.components.compute.backend import PAYLOAD_MB, TransformJobSpec
from flywheel.components.compute.sagemaker import SageMakerBackend, SageMakerConfig, Watch
from flywheel.components.compute.sagemaker.sharding import shard_record_files
from flywheel.components.errors import InvalidSpecError

from .conftest import ROLE, FakeClock, base_config
from .moto_sagemaker import (
    PLACEHOLDER_PREDICTION,
    moto_account,
    placeholder_model_archive,
)

BUCKET = "flywheel-payload"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


def uneven_rows(count: int) -> list[bytes]:
    """``count`` rows of 40 bytes, then ``count`` of 10: an even row count per part is uneven bytes."""
    return [b"%039d\n" % i for i in range(count)] + [b"%09d\n" % i for i in range(count)]


def test_uneven_rows_are_cut_into_parts_by_bytes(tmp_path):
    rows = uneven_rows(200_000)
    assert {len(rows[0]), len(rows[-1])} == {40, 10}
    source = tmp_path / "rows.csv"
    source.write_bytes(b"".join(rows))
    limit = 6 * PAYLOAD_MB

    sharded = shard_record_files(source, tmp_path / "parts", max_bytes=limit, instances=1)

    bodies = [(sharded.folder / name).read_bytes() for name in sharded.parts["rows.csv"]]
    assert [len(body) for body in bodies] == [6_000_000, 4_000_000]
    assert b"".join(bodies) == source.read_bytes()


@pytest.mark.parametrize("instances", [1, 2, 3, 7])
def test_parts_fit_the_limit_and_keep_every_instance_busy(tmp_path, instances):
    rows = uneven_rows(3_000)
    source = tmp_path / "rows.csv"
    source.write_bytes(b"".join(rows))

    sharded = shard_record_files(source, tmp_path / "parts", max_bytes=20_000, instances=instances)

    bodies = [(sharded.folder / name).read_bytes() for name in sharded.parts["rows.csv"]]
    assert all(0 < len(body) <= 20_000 for body in bodies)
    assert len(bodies) >= max(instances, 8)  # 150,000 bytes need at least 8 parts of 20,000
    assert b"".join(bodies) == source.read_bytes()


def test_a_record_over_the_limit_is_refused(tmp_path):
    source = tmp_path / "rows.csv"
    source.write_bytes(b"1,2\n" + b"9" * 1_000_001 + b"\n3,4\n")

    with pytest.raises(InvalidSpecError) as caught:
        shard_record_files(source, tmp_path / "parts", max_bytes=PAYLOAD_MB, instances=1)

    assert caught.value.field == "compute_config.max_payload_mb"
    assert "record 2 of rows.csv is 1000002 bytes" in str(caught.value)


@pytest.mark.parametrize(
    ("concurrent", "payload", "accepted"),
    [
        (20, 6, False),
        (16, 6, True),
        (1, 100, True),
        (2, 51, False),
        (1000, 0, True),
        (0, 100, True),
    ],
)
def test_concurrent_transforms_times_payload_over_100_mb_is_refused(concurrent, payload, accepted):
    settings = {"max_concurrent_transforms": concurrent, "max_payload_mb": payload}
    if accepted:
        assert base_config(**settings).max_concurrent_transforms == concurrent
        return
    with pytest.raises(InvalidSpecError) as caught:
        base_config(**settings)
    assert caught.value.field == "compute_config.max_concurrent_transforms"
    assert "compute_config.max_payload_mb" in str(caught.value)
    assert f"{concurrent * payload} MB" in str(caught.value)


@pytest.fixture
def aws(monkeypatch):
    with moto_account(monkeypatch, BUCKET) as endpoint_url:
        yield endpoint_url


@pytest.fixture
def created(monkeypatch) -> list[str]:
    """The SageMaker resources created, in order: empty when a refusal came first."""
    names: list[str] = []
    for operation in ("create_model", "create_transform_job"):
        original = getattr(SageMakerModelBackend, operation)

        def record(self, _original=original, _operation=operation, **kwargs):
            names.append(_operation)
            return _original(self, **kwargs)

        monkeypatch.setattr(SageMakerModelBackend, operation, record)
    return names


def run_transform(aws: str, tmp_path: Path, input_location: str, **fields: str) -> None:
    config = SageMakerConfig.from_mapping(
        {
            "role_arn": ROLE,
            "s3_prefix": f"s3://{BUCKET}/runs",
            "region": "us-east-1",
            "endpoint_url": aws,
            "image_uri": IMAGE,
            "max_payload_mb": 1,
        }
    )
    model = tmp_path / "model.tar.gz"
    model.write_bytes(placeholder_model_archive())
    spec = TransformJobSpec(
        job_name="payload",
        model_artifact=str(model),
        source_dir=str(Path(__file__).resolve().parents[2] / "examples" / "qsar"),
        entry_point="train.py",
        input_location=input_location,
        output_location=str(tmp_path / "out"),
        **fields,
    )
    SageMakerBackend(config, watch=Watch(clock=FakeClock())).transform(spec, log=lambda _: None)


@pytest.mark.parametrize("split_type", ["None", "Line"])
@pytest.mark.parametrize("batch_strategy", ["MultiRecord", "SingleRecord"])
def test_every_uploaded_part_fits_max_payload_for_each_split_and_strategy(
    aws, tmp_path, created, split_type, batch_strategy
):
    # 30,000 rows of 40 bytes then 30,000 of 10: 1.5 MB, cut by rows into 1.2 MB and 0.3 MB.
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "rows.csv").write_bytes(b"".join(uneven_rows(30_000)))

    run_transform(
        aws,
        tmp_path,
        str(tmp_path / "in"),
        split_type=split_type,
        batch_strategy=batch_strategy,
    )

    s3 = boto3.client("s3", endpoint_url=aws)
    listing = s3.list_objects_v2(Bucket=BUCKET, Prefix="runs/transform-input/")["Contents"]
    assert len(listing) == 2
    assert all(item["Size"] <= PAYLOAD_MB for item in listing)
    predictions = (tmp_path / "out" / "rows.csv.out").read_text().splitlines()
    assert predictions == [PLACEHOLDER_PREDICTION] * 60_000


def test_a_record_over_the_limit_is_refused_before_any_job(aws, tmp_path, created):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "rows.csv").write_bytes(b"1,2\n" + b"7" * 1_200_000 + b"\n")

    with pytest.raises(InvalidSpecError) as caught:
        run_transform(aws, tmp_path, str(tmp_path / "in"), split_type="Line")

    assert caught.value.field == "compute_config.max_payload_mb"
    assert created == []


def test_a_whole_object_over_the_limit_is_refused_before_any_job(aws, tmp_path, created):
    # A JSON document (not line records) with SplitType None is one request: it cannot be cut.
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "rows.json").write_text("[" + ", ".join(["[1.0, 2.0]"] * 100_000) + "]")

    with pytest.raises(InvalidSpecError) as caught:
        run_transform(
            aws,
            tmp_path,
            str(tmp_path / "in"),
            content_type="application/json",
            accept="application/json",
        )

    assert caught.value.field == "compute_config.max_payload_mb"
    assert "rows.json is 1200000 bytes" in str(caught.value)
    assert created == []


def test_an_s3_object_over_the_limit_with_split_none_is_refused_before_any_job(
    aws, tmp_path, created
):
    s3 = boto3.client("s3", endpoint_url=aws)
    s3.put_object(Bucket=BUCKET, Key="batch/small.csv", Body=b"1,2\n")
    s3.put_object(Bucket=BUCKET, Key="batch/large.csv", Body=b"1,2\n" * 300_000)

    with pytest.raises(InvalidSpecError) as caught:
        run_transform(aws, tmp_path, f"s3://{BUCKET}/batch")

    assert f"s3://{BUCKET}/batch/large.csv is 1200000 bytes" in str(caught.value)
    assert created == []
