"""``flywheel report`` draws what happened: checked on the drawing's data and on the pixels."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib import image

from flywheel.components.errors import InvalidSpecError
from flywheel.components.monitoring.history import EvaluationHistory
from flywheel.components.monitoring.thresholds import parse_threshold
from flywheel.components.registry import LocalModelRegistry
from flywheel.pipelines.report import PALETTE, THRESHOLD_COLOR, collect, figure_for, write_report


def _rgb(color: str) -> np.ndarray:
    return np.array([int(color[i : i + 2], 16) for i in (1, 3, 5)]) / 255


def _pixels_near(picture: np.ndarray, color: str) -> int:
    return int((np.abs(picture[:, :, :3] - _rgb(color)).max(axis=2) < 0.06).sum())


@pytest.fixture
def replayed(tmp_path):
    return _replay(tmp_path, "qsar")


def _replay(tmp_path, model: str):
    """A history like the demo's: v1 holds on batch 3, breaches on 4, v2 (retrained on batches 0-4,
    0.45 against v1's 0.6 on its held-out rows) scores 5, and batch 4 again, in-sample."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    registry = LocalModelRegistry(tmp_path / "registry")
    for number, run, rmse, batches, compared in (
        (1, "train", 0.3, 3, {"version": None, "metrics": {}}),
        (2, "eval-4", 0.45, 5, {"version": 1, "metrics": {"rmse": 0.6, "r2": 0.1}}),
    ):
        archive = tmp_path / f"m{number}.tar.gz"
        archive.write_bytes(bytes([number]))
        registry.register(
            model,
            str(archive),
            metrics={"rmse": rmse, "r2": 0.5},
            hyperparameters={},
            lineage={
                "run": {"id": run},
                "data": {"training_batches": batches},
                "compared_with": compared,
            },
        )
        registry.promote(model, number)
    history = EvaluationHistory(tmp_path / "history")
    for batch, version, rmse, run, retrain in (
        (3, 1, 0.7, "eval-3", False),
        (4, 1, 1.2, "eval-4", True),
        (5, 2, 0.8, "eval-5", False),
        (4, 2, 0.5, "eval-4b", False),
    ):
        key = f"v{version}:b{batch}"
        history.append(
            model,
            "evaluation",
            key,
            {
                "batch": batch,
                "model_version": version,
                "metrics": {"rmse": rmse, "r2": 1 - rmse},
                "run_id": run,
            },
        )
        history.append(
            model,
            "decision",
            key,
            {
                "batch": batch,
                "retrain": retrain,
                "run_id": run,
                "reason": "r",
                "threshold": "rmse above 1",
            },
        )
    return tmp_path


def _drawn(replayed) -> list:
    records = EvaluationHistory(replayed / "history").records("qsar")
    versions = LocalModelRegistry(replayed / "registry").versions("qsar")
    report = collect(records, versions, parse_threshold("rmse above 1", "regression"), "qsar")
    return figure_for(report).axes


def _lines(panel, gid: str) -> list:
    return [line for line in panel.get_lines() if line.get_gid() == gid]


def test_report_has_a_panel_per_metric_and_one_segment_per_champion_version(replayed) -> None:
    rmse, r2, band = _drawn(replayed)
    assert (rmse.get_ylabel(), r2.get_ylabel()) == ("rmse", "r2")
    for panel in (rmse, r2):
        (first,) = _lines(panel, "segment-v1")
        assert list(first.get_xdata()) == [3, 4]
        # v2 scored batch 4 (again) and 5: its own segment, never joined to v1's points
        (second,) = _lines(panel, "segment-v2")
        assert list(second.get_xdata()) == [4, 5]
    assert [text.get_text() for text in band.texts] == ["v1", "v2"]


def test_report_draws_the_training_baseline_and_the_threshold(replayed) -> None:
    rmse, r2, _ = _drawn(replayed)
    (baseline,) = _lines(rmse, "baseline")
    assert list(baseline.get_ydata()) == [0.3, 0.3]  # v1's held-out rmse at training
    assert list(_lines(r2, "baseline")[0].get_ydata()) == [0.5, 0.5]
    assert list(_lines(rmse, "threshold")[0].get_ydata()) == [1, 1]
    assert _lines(r2, "threshold") == []


def test_each_retrain_shows_candidate_against_old_champion_on_the_same_rows(replayed) -> None:
    rmse, r2, _ = _drawn(replayed)
    (comparison,) = _lines(rmse, "retrain-v2-vs-v1")
    assert list(comparison.get_xdata()) == [4.5, 4.5]
    assert list(comparison.get_ydata()) == [0.6, 0.45]  # old champion, then candidate
    assert list(_lines(r2, "retrain-v2-vs-v1")[0].get_ydata()) == [0.1, 0.5]


def test_a_batch_the_model_was_trained_on_is_marked_in_sample(replayed) -> None:
    rmse, _, _ = _drawn(replayed)
    (marked,) = [line for line in rmse.get_lines() if str(line.get_gid()).startswith("in-sample")]
    assert (list(marked.get_xdata()), list(marked.get_ydata())) == ([4], [0.5])


def test_report_writes_png_and_page_with_every_metric(replayed) -> None:
    png, page = write_report(
        registry_uri=str(replayed / "registry"),
        history_root=str(replayed / "history"),
        model_name="qsar",
        task="regression",
        output_dir=replayed / "report",
    )
    picture = image.imread(png)
    assert _pixels_near(picture, THRESHOLD_COLOR) > 500  # the dashed threshold line
    assert _pixels_near(picture, PALETTE[0]) > 1000  # version 1: its line and its champion band
    assert _pixels_near(picture, PALETTE[1]) > 1000  # version 2, champion after the retrain
    assert _pixels_near(picture, PALETTE[2]) == 0  # no third version was ever drawn
    text = page.read_text()
    assert "data:image/png;base64," in text and text.count("<tr>") == 5
    assert "<th>rmse</th><th>r2</th>" in text and "in-sample" in text
    assert "v2 0.4500 vs v1 0.6000 (promoted)" in text


def test_report_refuses_an_empty_history(tmp_path) -> None:
    with pytest.raises(InvalidSpecError, match="no evaluations of qsar"):
        write_report(
            registry_uri=str(tmp_path),
            history_root=str(tmp_path),
            model_name="qsar",
            task="regression",
            output_dir=tmp_path,
        )


def test_report_right_after_the_demo_draws_the_demos_history(tmp_path, capsys) -> None:
    from flywheel.pipelines.cli import main

    _replay(tmp_path / "home" / "demo", "qsar-pic50")
    assert main(["--home", str(tmp_path / "home"), "report"]) == 0
    said = capsys.readouterr().out
    assert "drawing the demo's" in said
    assert (tmp_path / "home" / "report" / "qsar-pic50-quality.png").is_file()
