"""One task per host: ``run_sharded_processing`` in a pipeline, each host its own task (its own
pod on EKS), its own shard, and the hosts' outputs merged as SageMaker uploads them."""

import json
from pathlib import Path

import pytest
import yaml
from kfp import compiler, dsl, local

from flywheel.components import run_sharded_processing
from flywheel.components.errors import InvalidSpecError

PROBE = Path(__file__).parent / "scripts" / "probe"
PARTS = [f"part-{index}.csv" for index in range(6)]


def _sharded_pipeline(data: Path):
    @dsl.pipeline(name="sharded-probe")
    def sharded_probe(compute: str = "eks-gpu", compute_config: dict = {"gpus": 0}):  # noqa: B006
        run_sharded_processing(
            2,
            source_dir=str(PROBE),
            entry_point="probe.py",
            inputs={"data": {"source": str(data), "distribution": "ShardedByS3Key"}},
            output_names=["report"],
            compute=compute,
            compute_config=compute_config,
        )

    return sharded_probe


def test_each_host_is_a_task_of_its_own_in_the_compiled_pipeline(tmp_path: Path) -> None:
    target = tmp_path / "sharded.yaml"
    compiler.Compiler().compile(_sharded_pipeline(tmp_path), str(target))
    ir = yaml.safe_load(target.read_text())
    loop = ir["root"]["dag"]["tasks"]["for-loop-2"]
    assert loop["parameterIterator"]["items"]["raw"] == "[0, 1]"
    assert "merge-outputs" in ir["root"]["dag"]["tasks"]


@pytest.mark.e2e
def test_two_host_tasks_over_six_objects_each_see_their_three_and_both_outputs_are_merged(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for index, name in enumerate(PARTS):
        (data / name).write_text(f"{index}\n")
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(tmp_path / "runs"),
        enable_caching=False,
        raise_on_error=True,
    )
    _sharded_pipeline(data)()

    (merged,) = (tmp_path / "runs").glob("sharded-probe-*/merge-outputs/outputs")
    reports = {p.stem: json.loads(p.read_text()) for p in (merged / "report").glob("*.json")}
    assert sorted(reports) == ["algo-1", "algo-2"]
    seen = {host: set(report["inputs"]["data"]) for host, report in reports.items()}
    assert len(seen["algo-1"]) == len(seen["algo-2"]) == 3
    assert seen["algo-1"] | seen["algo-2"] == set(PARTS)
    for host, report in reports.items():
        assert report["resource_config"] == {"current_host": host, "hosts": ["algo-1", "algo-2"]}


def test_a_host_count_unknown_when_the_pipeline_is_defined_is_refused() -> None:
    with pytest.raises(InvalidSpecError, match="instance_count: must be a whole number >= 1"):
        run_sharded_processing(0, source_dir=".", entry_point="x.py")


def test_processing_outputs_reach_training_as_channels_of_their_own(tmp_path: Path) -> None:
    from flywheel.components.contract.workload import load_workload
    from flywheel.components.steps.train import lay_out_channels

    outputs = tmp_path / "outputs"
    for name in ("train", "test"):
        (outputs / name).mkdir(parents=True)
        (outputs / name / f"{name}.csv").write_text("5.1,0.2\n")
    channels = lay_out_channels(
        load_workload("builtin:qsar"), {"train": outputs, "test": outputs}, tmp_path / "laid"
    )
    assert channels == {"train": str(outputs / "train"), "test": str(outputs / "test")}
