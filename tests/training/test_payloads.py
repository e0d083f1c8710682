"""Request files and responses as batch transform writes them, for each SplitType."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.components.data import payloads

ROWS = [{"x1": "1", "x2": "2.5"}, {"x1": "3", "x2": "4"}]


def test_json_requests_are_one_array_per_line_when_split_by_line(tmp_path: Path) -> None:
    whole = payloads.write_request(tmp_path / "a", ["x1", "x2"], ROWS, "application/json")
    lines = payloads.write_request(tmp_path / "b", ["x1", "x2"], ROWS, "application/json", "Line")
    assert whole.read_text() == "[[1, 2.5], [3, 4]]"
    assert lines.read_text() == "[1, 2.5]\n[3, 4]\n"


@pytest.mark.parametrize(
    ("accept", "text", "expected"),
    [
        ("application/json", "[0.5]\n[1.5]\n", ["0.5", "1.5"]),
        ("application/json", "[[0.5]]\n2\n", ["0.5", "2"]),
        ("application/json", '["pos", 0.9]\n["neg", 0.2]\n', ["pos,0.9", "neg,0.2"]),
        ("application/jsonlines", "0.5\n\n1.5\n\n", ["0.5", "1.5"]),
        ("text/csv", "0.5\n\n1.5\n\n", ["0.5", "1.5"]),
    ],
)
def test_single_record_responses_are_one_prediction_each(
    tmp_path: Path, accept: str, text: str, expected: list[str]
) -> None:
    path = tmp_path / "rows.out"
    path.write_text(text)
    assert payloads.read_response(path, accept, "Line", "SingleRecord") == expected


def test_multi_record_json_responses_are_a_list_of_predictions_a_line(tmp_path: Path) -> None:
    path = tmp_path / "rows.out"
    path.write_text("[0.5, 1.5]\n[2.5]\n")
    assert payloads.read_response(path, "application/json", "Line", "MultiRecord") == [
        "0.5",
        "1.5",
        "2.5",
    ]


def test_whole_file_json_responses_of_joined_parts_read_in_order(tmp_path: Path) -> None:
    # The SageMaker backend joins the parts' responses of one file with newlines.
    path = tmp_path / "rows.out"
    path.write_text("[0.5, 1.5]\n[\n  2.5\n]\n")
    assert payloads.read_response(path, "application/json") == ["0.5", "1.5", "2.5"]
