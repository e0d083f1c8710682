"""The tuning report: the objective by trial, the best so far, the winner marked."""

from __future__ import annotations

from pathlib import Path

from flywheel.pipelines.report import best_so_far, tuning_figure, write_tuning_report

TRIALS = [  # as record_trials leaves them: best objective first
    {
        "number": 2,
        "state": "COMPLETE",
        "hyperparameters": {"n": 90},
        "objective": 0.4,
        "best": True,
    },
    {
        "number": 0,
        "state": "COMPLETE",
        "hyperparameters": {"n": 10},
        "objective": 0.7,
        "best": False,
    },
    {
        "number": 3,
        "state": "COMPLETE",
        "hyperparameters": {"n": 40},
        "objective": 0.5,
        "best": False,
    },
    {"number": 1, "state": "FAIL", "hyperparameters": {"n": 20}, "objective": None, "best": False},
]


def test_best_so_far_follows_the_trials_in_the_order_they_were_numbered() -> None:
    assert best_so_far(TRIALS, maximize=False) == [
        (0, 0.7, 0.7),
        (1, None, 0.7),  # a failed trial changes nothing
        (2, 0.4, 0.4),
        (3, 0.5, 0.4),
    ]
    assert [b for _, _, b in best_so_far(TRIALS, maximize=True)] == [0.7, 0.7, 0.7, 0.7]


def test_the_plot_draws_each_trial_the_best_so_far_and_marks_the_winner() -> None:
    panel = tuning_figure(TRIALS, "test_rmse", maximize=False).axes[0]
    lines = {line.get_gid(): line for line in panel.get_lines()}
    assert list(lines["trials"].get_xdata()) == [0, 2, 3]
    assert list(lines["best-so-far"].get_ydata()) == [0.7, 0.7, 0.4, 0.4]
    assert list(lines["best"].get_xdata()) == [2]
    assert panel.get_ylabel() == "test_rmse"


def test_the_report_is_a_png_and_a_page_with_the_trial_table(tmp_path: Path) -> None:
    png, page = write_tuning_report(
        TRIALS, model_name="qsar-pic50", objective="test_rmse", maximize=False, output_dir=tmp_path
    )
    assert png.read_bytes().startswith(b"\x89PNG")
    text = page.read_text()
    assert text.count("<tr>") == 5 and "<td>best</td><td>2</td>" in text
