"""``flywheel report`` draws what happened: checked on the pixels, not only on the file."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib import image

from flywheel.components.errors import InvalidSpecError
from flywheel.components.history import EvaluationHistory
from flywheel.components.registry import LocalModelRegistry
from flywheel.pipelines.report import PALETTE, THRESHOLD_COLOR, write_report


def _rgb(color: str) -> np.ndarray:
    return np.array([int(color[i : i + 2], 16) for i in (1, 3, 5)]) / 255


def _pixels_near(picture: np.ndarray, color: str) -> int:
    return int((np.abs(picture[:, :, :3] - _rgb(color)).max(axis=2) < 0.06).sum())


@pytest.fixture
def replayed(tmp_path):
    """A history like the demo's: v1 holds on batch 3, breaches on 4, v2 (retrained) scores 5."""
    registry = LocalModelRegistry(tmp_path / "registry")
    for number, run in ((1, "train"), (2, "eval-4")):
        archive = tmp_path / f"m{number}.tar.gz"
        archive.write_bytes(bytes([number]))
        registry.register(
            "qsar", str(archive), metrics={}, hyperparameters={}, lineage={"run": {"id": run}}
        )
        registry.promote("qsar", number)
    history = EvaluationHistory(tmp_path / "history")
    for batch, version, rmse, run, retrain in (
        (3, 1, 0.7, "eval-3", False),
        (4, 1, 1.2, "eval-4", True),
        (5, 2, 0.8, "eval-5", False),
    ):
        key = f"v{version}:b{batch}"
        history.append(
            "qsar",
            "evaluation",
            key,
            {"batch": batch, "model_version": version, "metrics": {"rmse": rmse}, "run_id": run},
        )
        history.append(
            "qsar",
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


def test_report_draws_metric_threshold_retrain_and_champions(replayed) -> None:
    png, page = write_report(
        registry_uri=str(replayed / "registry"),
        history_root=str(replayed / "history"),
        model_name="qsar",
        task="regression",
        output_dir=replayed / "report",
    )
    picture = image.imread(png)
    assert picture.shape[:2] == (672, 1200)
    assert _pixels_near(picture, THRESHOLD_COLOR) > 500  # the dashed threshold line across the plot
    assert _pixels_near(picture, PALETTE[0]) > 2000  # version 1: its points and its champion band
    assert _pixels_near(picture, PALETTE[1]) > 1000  # version 2, champion after the retrain
    assert _pixels_near(picture, PALETTE[2]) == 0  # no third version was ever drawn
    assert (picture[:, :, :3] < 0.9).any(axis=2).mean() > 0.05
    text = page.read_text()
    assert "data:image/png;base64," in text and text.count("<tr>") == 4 and "<td>v2</td>" in text


def test_report_refuses_an_empty_history(tmp_path) -> None:
    with pytest.raises(InvalidSpecError, match="no evaluations of qsar"):
        write_report(
            registry_uri=str(tmp_path),
            history_root=str(tmp_path),
            model_name="qsar",
            task="regression",
            output_dir=tmp_path,
        )
