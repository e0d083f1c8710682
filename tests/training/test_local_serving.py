"""Local serving calls the script's handlers as SageMaker batch transform does: per file, per
line (``SingleRecord``) or per run of lines up to the payload limit (``MultiRecord``)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from flywheel.components.compute.local import serving


def recording_script(bodies: list[str]) -> ModuleType:
    """A script whose handlers note each request body and answer how many lines it held."""
    script = ModuleType("recording")
    script.model_fn = lambda model_dir: None
    script.input_fn = lambda body, content_type: bodies.append(body) or body
    script.predict_fn = lambda body, model: len(body.splitlines())
    script.output_fn = lambda count, accept: str(count)
    return script


def transform(tmp_path: Path, text: str, split_type: str, batch_strategy: str) -> list[str]:
    """The request bodies the handlers saw; the response file is ``tmp_path/out/rows.csv.out``."""
    (tmp_path / "rows.csv").write_text(text)
    bodies: list[str] = []
    serving.transform_files(
        recording_script(bodies),
        tmp_path,
        [tmp_path / "rows.csv"],
        tmp_path / "out",
        "text/csv",
        "text/csv",
        split_type,
        batch_strategy,
    )
    return bodies


def test_single_record_calls_the_handlers_once_per_non_empty_line(tmp_path: Path) -> None:
    bodies = transform(tmp_path, "1,2\n\n3,4\n5,6\n", "Line", "SingleRecord")
    assert bodies == ["1,2", "3,4", "5,6"]
    # AssembleWith Line: every response is followed by a newline.
    assert (tmp_path / "out" / "rows.csv.out").read_text() == "1\n1\n1\n"


@pytest.mark.parametrize("batch_strategy", ["MultiRecord", "SingleRecord"])
def test_split_type_none_sends_each_file_whole_whatever_the_strategy(
    tmp_path: Path, batch_strategy: str
) -> None:
    assert transform(tmp_path, "1,2\n3,4\n", "None", batch_strategy) == ["1,2\n3,4\n"]
    assert (tmp_path / "out" / "rows.csv.out").read_text() == "2"


def test_multi_record_groups_lines_up_to_the_payload_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(serving, "MAX_PAYLOAD_BYTES", 12)
    records = ["1,2", "3,4", "5,6", "7,8", "10,20,30", "9,9"]
    bodies = transform(tmp_path, "\n".join(records) + "\n", "Line", "MultiRecord")
    # Three 3-byte records joined by newlines are 11 bytes; a fourth would make 15.
    assert bodies == ["1,2\n3,4\n5,6", "7,8\n10,20,30", "9,9"]
    assert all(len(body.encode()) <= 12 for body in bodies)
    assert (tmp_path / "out" / "rows.csv.out").read_text() == "3\n2\n1\n"


def test_a_record_over_the_payload_limit_fails_the_transform(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(serving, "MAX_PAYLOAD_BYTES", 4)
    with pytest.raises(SystemExit, match=r"record 2 of rows\.csv is 5 bytes, over MaxPayloadInMB"):
        transform(tmp_path, "1,2\n10,20\n", "Line", "SingleRecord")
