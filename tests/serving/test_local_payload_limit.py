"""Local serving cuts requests by bytes as the SageMaker backend does: none over MaxPayloadInMB."""

from pathlib import Path

import pytest

from flywheel.components.compute.backend import PAYLOAD_MB
from flywheel.components.compute.local import serving

LIMIT = 1_000


@pytest.fixture(autouse=True)
def small_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serving, "MAX_PAYLOAD_BYTES", LIMIT)


def _uneven(path: Path) -> Path:
    # 40 long rows then 160 short ones: cutting by row count would give parts of uneven bytes.
    path.write_bytes(b"".join([b"x" * 39 + b"\n"] * 40 + [b"y" * 9 + b"\n"] * 160))
    return path


def test_the_default_limit_reads_an_mb_as_a_million_bytes() -> None:
    assert PAYLOAD_MB == 1_000_000


@pytest.mark.parametrize(
    ("split_type", "strategy"),
    [("None", "MultiRecord"), ("Line", "MultiRecord"), ("Line", "SingleRecord")],
)
def test_uneven_rows_never_make_a_request_over_the_limit(
    tmp_path: Path, split_type: str, strategy: str
) -> None:
    path = _uneven(tmp_path / "rows.csv")
    requests = serving.requests_of(path, split_type, strategy, "text/csv")
    assert max(len(request) for request in requests) <= LIMIT
    assert b"\n".join(requests).split(b"\n") == path.read_bytes().split(b"\n")[:-1]


def test_a_small_file_without_line_splitting_is_one_request(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_bytes(b"1,2\n3,4\n")
    assert serving.requests_of(path, "None", "MultiRecord", "text/csv") == [path.read_bytes()]


def test_a_large_body_that_is_not_line_records_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rows.json"
    path.write_bytes(b"[" + b",".join([b"[1.0, 2.0]"] * 200) + b"]")
    with pytest.raises(SystemExit, match=r"rows.json is \d+ bytes of application/json, over"):
        serving.requests_of(path, "None", "MultiRecord", "application/json")


def test_a_record_over_the_limit_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_bytes(b"1\n" + b"2" * (LIMIT + 1) + b"\n")
    with pytest.raises(SystemExit, match=r"record 2 of rows\.csv is 1001 bytes"):
        serving.requests_of(path, "Line", "SingleRecord", "text/csv")
