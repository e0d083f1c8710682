"""Batch-transform inputs are cut to fit SageMaker's payload limit and joined back in order.

Scoring files hold records only (``text/csv`` without a header), so every part is whole records.
"""

from __future__ import annotations

from flywheel.components.compute.sagemaker.sharding import join_predictions, shard_record_files


def test_a_file_over_the_payload_limit_is_cut_into_parts_of_whole_records(tmp_path):
    rows = [f"C{'C' * (i % 7)}O,{i}\n" for i in range(200)]
    source = tmp_path / "in" / "rows.csv"
    source.parent.mkdir()
    source.write_text("".join(rows))

    sharded = shard_record_files(source.parent, tmp_path / "parts", max_bytes=500, instances=1)

    names = sharded.parts["rows.csv"]
    assert len(names) > 1
    bodies = [(sharded.folder / name).read_text() for name in names]
    assert all(len(body.encode()) <= 500 for body in bodies)
    assert [line for b in bodies for line in b.splitlines(keepends=True)] == rows


def test_small_input_still_spreads_over_every_instance(tmp_path):
    source = tmp_path / "rows.csv"
    source.write_text("CCO\nCCN\nCCC\nCCCl\n")

    sharded = shard_record_files(source, tmp_path / "parts", max_bytes=6_000_000, instances=3)

    assert len(sharded.parts["rows.csv"]) == 3


def test_predictions_are_joined_back_per_file_in_row_order(tmp_path):
    source = tmp_path / "rows.csv"
    source.write_text("A\nB\nC\nD\nE\n")
    sharded = shard_record_files(source, tmp_path / "parts", max_bytes=0, instances=2)
    downloaded = tmp_path / "downloaded"
    downloaded.mkdir()
    for name in sharded.parts["rows.csv"]:
        rows = (sharded.folder / name).read_text().splitlines()
        # SageMaker's .out files need not end with a newline.
        (downloaded / f"{name}.out").write_text("\n".join(f"p-{row}" for row in rows))

    (joined,) = join_predictions(downloaded, sharded, tmp_path / "out")

    assert joined.read_text().splitlines() == ["p-A", "p-B", "p-C", "p-D", "p-E"]


def test_the_first_record_is_never_taken_for_a_header(tmp_path):
    source = tmp_path / "rows.csv"
    source.write_text("CCO,1\nCCN,2\nCCC,3\n")

    sharded = shard_record_files(source, tmp_path / "parts", max_bytes=0, instances=2)

    bodies = [(sharded.folder / name).read_text() for name in sharded.parts["rows.csv"]]
    assert "".join(bodies) == "CCO,1\nCCN,2\nCCC,3\n"
