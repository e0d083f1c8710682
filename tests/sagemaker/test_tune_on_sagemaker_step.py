"""The tuning pipeline's SageMaker step: the trials are train_model's training job, one tuning job
is created, and the best trial's model comes back as a Model with the tuning in its metadata.

Against the job-state fake (tuning jobs stay InProgress until the test finishes them) and moto's
S3, every request through the strict validator.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from flywheel.components.compute.sagemaker import Watch
from flywheel.components.contract.workload import load_workload
from flywheel.components.steps.tune_sagemaker import tune_on_sagemaker

from .conftest import ROLE, FakeClock
from .retry_harness import BUCKET, IMAGE, Aws, aws  # noqa: F401 - the fixture

CREATE = "CreateHyperParameterTuningJob"


def _split(folder: Path) -> tuple[Path, Path]:
    rows = "compound_id,smiles,pIC50\n" + "".join(
        f"c{i},CCO,{4 + i % 5 * 0.5}\n" for i in range(20)
    )
    (folder / "train.csv").write_text(rows)
    (folder / "test.csv").write_text(rows)
    return folder / "train.csv", folder / "test.csv"


def test_one_tuning_job_runs_the_search_and_its_best_trial_model_continues(
    aws: Aws,  # noqa: F811 - the fixture
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in aws.env.items():
        monkeypatch.setenv(name, value)
    fake = aws.sagemaker
    train, test = _split(tmp_path)
    clock = FakeClock()

    def finish_once_created(_: int) -> None:
        created = fake.names(CREATE)
        if created and fake.jobs[created[0]]["status"] == "InProgress":
            fake.finish(created[0], "Completed")

    clock.on_sleep = finish_once_created
    tuned = tune_on_sagemaker(
        workload_path="builtin:qsar-tuning",
        compute_config={
            "role_arn": ROLE,
            "s3_prefix": f"s3://{BUCKET}/flywheel",
            "image_uri": IMAGE,
        },
        hyperparameters={"seed": 11},
        train_path=train,
        test_path=test,
        model_path=tmp_path / "model" / "model.tar.gz",
        run_id="run-1",
        log=lambda _: None,
        watch=Watch(clock=clock),
    )

    (name,) = fake.names(CREATE)
    request = next(params for op, params in fake.calls if op == CREATE)
    definition = request["TrainingJobDefinition"]
    searched = load_workload("builtin:qsar-tuning").tuning.tuned
    assert set(definition["StaticHyperParameters"]).isdisjoint(searched)
    assert definition["StaticHyperParameters"]["seed"] == "11"
    assert {c["ChannelName"] for c in definition["InputDataConfig"]} == {"train", "test"}
    config = request["HyperParameterTuningJobConfig"]
    assert config["ResourceLimits"] == {"MaxParallelTrainingJobs": 2, "MaxNumberOfTrainingJobs": 4}
    with tarfile.open(tmp_path / "model" / "model.tar.gz") as archive:
        assert archive.getnames() == ["model.txt"]
    tuning = tuned.metadata["tuning"]
    assert tuning["engine"] == "sagemaker" and tuning["run"] == name
    assert tuning["trial"] == tuned.result.best_training_job == tuned.metadata["job_name"]
    assert set(tuning["parameters"]) == searched
    assert tuned.metadata["hyperparameters"]["seed"] == 11
    assert [t["best"] for t in tuned.trials] == [True]
