"""A placement is checked before anything compiles; each bad value is refused naming its field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flywheel.components.compute.eks import DEFAULT_PLACEMENT_FILE, Placement, load_placement
from flywheel.components.errors import InvalidSpecError
from flywheel.pipelines.cli import main

GOOD = {
    "gpus": 2,
    "cpu": {"request": "6", "limit": "7500m"},
    "memory": {"request": "24Gi", "limit": "26Gi"},
    "node": {"nodepool": "gpu"},
    "shm_size": "8Gi",
}


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        ({"gpus": 0, "gpu_type": "nvidia.com/gpu"}, "placement.gpus", "is 0 but gpu_type"),
        (
            {"node": {"nodegroup": "gpu nodes"}},
            "placement.node.nodegroup",
            "not a valid label value",
        ),
        (
            {"node": {"instance_type": "g5." + "x" * 70}},
            "placement.node.instance_type",
            "label value",
        ),
        ({"memory": {"limit": "26GB"}}, "placement.memory.limit", "not a memory quantity"),
        ({"memory": {"limit": "1.5Gi"}}, "placement.memory.limit", "not a memory quantity"),
        ({"memory": {"request": "512K"}}, "placement.memory.request", "not a memory quantity"),
        ({"shm_size": "32Gi"}, "placement.shm_size", "larger than memory.limit 26Gi"),
        ({"memory": {"request": "24Gi"}}, "placement.shm_size", "needs memory.limit"),
        ({"memory": {"request": "30Gi", "limit": "26Gi"}}, "placement.memory.request", "above"),
        ({"cpu": {"request": "two"}}, "placement.cpu.request", "not a CPU quantity"),
        ({"node": {"nodegroup": "gpu", "nodepool": "gpu"}}, "placement.node", "exactly one"),
        ({"node": {"zone": "a"}}, "placement.node.zone", "unknown setting"),
        ({"gpu": 1}, "placement.gpu", "unknown setting"),
        ({"gpu_type": "gpu"}, "placement.gpu_type", "extended resource name"),
        ({"image_pull_policy": "Sometimes"}, "placement.image_pull_policy", "not one of"),
        ({"labels": {"team": "ml platform"}}, "placement.labels.team", "not a valid label value"),
        ({"cache": {"mount_path": "/cache"}}, "placement.cache", "either size"),
        (
            {"cache": {"mount_path": "cache", "size": "10Gi"}},
            "placement.cache.mount_path",
            "absolute",
        ),
        ({"timeout_seconds": 0}, "placement.timeout_seconds", "whole number >= 1"),
    ],
)
def test_bad_placement_is_refused_naming_the_field(change, field, problem) -> None:
    with pytest.raises(InvalidSpecError) as refused:
        Placement.from_mapping({**GOOD, **change})
    assert refused.value.field == field
    assert problem in refused.value.problem


def test_placement_survives_the_trip_through_a_kfp_dict_parameter() -> None:
    placement = load_placement(DEFAULT_PLACEMENT_FILE)
    # KFP passes dict parameters as protobuf Structs: every number arrives as a float.
    as_kfp_passes_it = {
        key: float(value) if isinstance(value, int) else value
        for key, value in placement.to_mapping().items()
    }
    assert Placement.from_mapping(as_kfp_passes_it) == placement


def test_yaml_numbers_become_the_strings_kubernetes_wants(tmp_path: Path) -> None:
    path = tmp_path / "placement.yaml"
    path.write_text("gpus: 1\ncpu: {request: 4, limit: 4.5}\nlabels: {cost-center: 4711}\n")
    placement = load_placement(path)
    assert placement.cpu.request == "4" and placement.cpu.limit == "4.5"
    assert placement.labels == {"cost-center": "4711"}
    assert placement.accelerator == "nvidia.com/gpu"


def test_cli_refuses_a_bad_placement_file_before_anything_runs(tmp_path: Path, capsys) -> None:
    placement = tmp_path / "placement.yaml"
    placement.write_text(yaml.safe_dump({**GOOD, "shm_size": "64Gi"}))
    status = main(
        [
            "run",
            "training",
            "--compute",
            "eks-gpu",
            "--placement",
            str(placement),
            "--registry",
            str(tmp_path / "registry"),
            "--pipeline-root",
            str(tmp_path / "runs"),
        ]
    )
    error = capsys.readouterr().err.strip()
    assert status == 2
    assert error == "flywheel: error: placement.shm_size: 64Gi is larger than memory.limit 26Gi"
    assert not (tmp_path / "registry").exists() and not (tmp_path / "runs").exists()


def test_placement_file_is_refused_with_other_compute(tmp_path: Path, capsys) -> None:
    status = main(
        [
            "run",
            "training",
            "--placement",
            str(DEFAULT_PLACEMENT_FILE),
            "--registry",
            str(tmp_path / "registry"),
            "--pipeline-root",
            str(tmp_path / "runs"),
        ]
    )
    assert status == 2
    assert "--placement: applies only to --compute eks-gpu" in capsys.readouterr().err
