"""SageMaker training scripts run unchanged through ``flywheel run training`` and the EKS path.

Two kinds of script, run by the same two tests:

- our own, in the folders beside this file, written as SageMaker's example scripts are
  (argparse hyperparameters, ``SM_*`` variables, label-first headerless CSV, hard-coded ``/opt/ml``
  paths, ``requirements.txt``, PyTorch);
- public scripts from aws/amazon-sagemaker-examples (and, for ``requirements.txt``, the PyTorch
  training toolkit's own test resources), byte for byte. Their code is not committed here:
  ``public/`` holds only our workload and data for each, and the tests read the scripts from
  clones in the folder ``SAGEMAKER_PUBLIC_CHECKOUTS`` names, checking every file's SHA-256
  against the pinned commit's bytes first. Without the clones those cases are skipped, saying so.

Every run overrides one hyperparameter with a value that is neither the workload's default nor
the script's own, and checks that the script did what that value says (the trees, leaves,
epochs... in what it logged or in the model it saved) and that the registry recorded it.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import pytest

from flywheel.components.compute.local.opt_ml import private_mounts_available
from flywheel.components.contract.packaging import unpack_archive
from flywheel.components.contract.workload import load_workload
from flywheel.components.registry import LocalModelRegistry

from .public_clones import (
    EXAMPLES,
    PYTORCH_TOOLKIT,
    UpstreamFile,
    public_checkouts,
    write_upstream,
)

HERE = Path(__file__).parent
# The suite-wide ``train_on_split`` fixture (tests/conftest.py).
TrainOnSplit = Callable[..., Any]
# What a run shows: from the unpacked model folder and the training job's metrics.
Observer = Callable[[Path, Mapping[str, float]], float]
# Channels a case brings as they are (--channel), made from its data file in a scratch folder.
ChannelMaker = Callable[[Path, Path], dict[str, str]]


def reported(metric: str) -> Observer:
    """The value the script logged, as the workload's ``metric_definitions`` read it."""
    return lambda _model_dir, metrics: metrics[metric]


def trees_in_forest(model_dir: Path, _metrics: Mapping[str, float]) -> float:
    return len(joblib.load(model_dir / "model.joblib").estimators_)


def leaves_in_tree(model_dir: Path, _metrics: Mapping[str, float]) -> float:
    return joblib.load(model_dir / "model.joblib").get_n_leaves()


def xgboost_booster(model_dir: Path) -> Any:
    """The Booster an XGBoost script-mode script pickled as ``xgboost-model``."""
    import pickle

    with (model_dir / "xgboost-model").open("rb") as handle:
        return pickle.load(handle)


def boosted_rounds(model_dir: Path, _metrics: Mapping[str, float]) -> float:
    return xgboost_booster(model_dir).num_boosted_rounds()


def deepest_tree(model_dir: Path, _metrics: Mapping[str, float]) -> float:
    """The depth of the booster's deepest leaf: ``max_depth`` when the data lets trees grow.

    A text dump indents each node by one tab a level.
    """
    dump = xgboost_booster(model_dir).get_dump()
    return max(line.count("\t") for tree in dump for line in tree.splitlines())


def numpy_channels(source: Path, root: Path) -> dict[str, str]:
    """``x_train.npy``/``y_train.npy`` and ``x_test.npy``/``y_test.npy``: 80/20 of ``source``."""
    import numpy as np

    with source.open(newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    features = np.array([[float(value) for value in row[1:-1]] for row in rows])
    labels = np.array([float(row[-1]) for row in rows])
    cut = len(rows) * 4 // 5
    channels = {}
    for split, part in (("train", slice(None, cut)), ("test", slice(cut, None))):
        folder = root / split
        folder.mkdir(parents=True)
        np.save(folder / f"x_{split}.npy", features[part])
        np.save(folder / f"y_{split}.npy", labels[part])
        channels[split] = str(folder)
    return channels


@dataclass(frozen=True)
class Case:
    folder: str
    data: str
    hyperparameter: str
    value: int
    observe: Observer
    requires: tuple[str, ...] = ()
    upstream: tuple[UpstreamFile, ...] = ()
    channels: ChannelMaker | None = None

    @property
    def id(self) -> str:
        return self.folder.replace("public/", "public-")


OWN_CASES = [
    Case("iris_tree", "iris_tree/iris.csv", "max_leaf_nodes", 3, reported("leaves")),
    Case("forest_regressor", "forest_regressor/diabetes.csv", "n-estimators", 7, reported("trees")),
    Case("opt_ml_paths", "opt_ml_paths/diabetes.csv", "n_estimators", 6, reported("stages")),
    Case(
        "pytorch_mlp",
        "pytorch_mlp/diabetes.csv",
        "epochs",
        4,
        reported("epochs_run"),
        requires=("torch",),
    ),
    Case(
        "requirements_knn", "requirements_knn/diabetes.csv", "n-neighbors", 3, reported("neighbors")
    ),
    Case(
        "xgboost_model_fn_only",
        "forest_regressor/diabetes.csv",
        "num_round",
        5,
        reported("rounds"),
        requires=("xgboost",),
    ),
    Case(
        "pair_with_transform_fn",
        "forest_regressor/diabetes.csv",
        "n-estimators",
        7,
        reported("trees"),
    ),
]

PUBLIC_CASES = [
    Case(
        "public/scikit_learn_iris",
        "iris_tree/iris.csv",
        "max_leaf_nodes",
        3,
        leaves_in_tree,
        upstream=(
            UpstreamFile(
                EXAMPLES,
                "scikit_learn_iris.py",
                " archived/scikit_learn_iris/scikit_learn_iris.py",
                "1e0a82f114d1cfcd0d151f987c6a5744b1c8376f9fd4f5e8929417da94fbb8e5",
            ),
        ),
    ),
    Case(
        "public/scikitlearn_without_dependencies",
        "forest_regressor/diabetes.csv",
        "n-estimators",
        7,
        trees_in_forest,
        upstream=(
            UpstreamFile(
                EXAMPLES,
                "train_deploy_scikitlearn_without_dependencies.py",
                " archived/sagemaker-script-mode/scikitlearn_script/"
                "train_deploy_scikitlearn_without_dependencies.py",
                "e4ef2f562e05c0c9afb488d7abfac33d9cf3cc9107b60a8b4d49e8dba48ca55a",
            ),
        ),
    ),
    Case(
        "public/sklearn_end2end",
        "forest_regressor/diabetes.csv",
        "n-estimators",
        7,
        trees_in_forest,
        upstream=(
            UpstreamFile(
                EXAMPLES,
                "script.py",
                " archived/Sklearn_on_SageMaker_end2end.ipynb",
                "7c642bedc90e50f89074868c6381b919a7fdeffd716ec5ba0da4f2bde8127d26",
                notebook_cell=11,
            ),
        ),
    ),
    Case(
        "public/pytorch_without_dependencies",
        "public/pytorch_without_dependencies/diabetes8.csv",
        "epochs",
        4,
        reported("epochs_run"),
        requires=("torch",),
        upstream=(
            UpstreamFile(
                EXAMPLES,
                "train_deploy_pytorch_without_dependencies.py",
                " archived/sagemaker-script-mode/pytorch_script/"
                "train_deploy_pytorch_without_dependencies.py",
                "4e502fdcb7af92b3e7f97cc6235fc97ae6644cc9e6a802266b5804973067c978",
            ),
            UpstreamFile(
                EXAMPLES,
                "pytorch_model_def.py",
                " archived/sagemaker-script-mode/pytorch_script/pytorch_model_def.py",
                "578c00c9a72276f02a85c1ade50ae3d15ca4011e912402b455564a6d31aaa6c6",
            ),
        ),
        channels=numpy_channels,
    ),
    Case(
        "public/xgboost_with_dependencies",
        "forest_regressor/diabetes.csv",
        "max_depth",
        3,
        deepest_tree,
        requires=("xgboost",),
        upstream=(
            UpstreamFile(
                EXAMPLES,
                "xgboost_script/train_deploy_xgboost_with_dependencies.py",
                " archived/sagemaker-script-mode/xgboost_script/"
                "train_deploy_xgboost_with_dependencies.py",
                "17d129430ba17722b3381b36108d481939c9f91e38a31e0ac715534bd57948ba",
            ),
            UpstreamFile(
                EXAMPLES,
                "my_custom_library/__init__.py",
                " archived/sagemaker-script-mode/my_custom_library/__init__.py",
                "b061cce6ba2d4e8ac4cbfd381aec3d76bfb11199230ac52516e45f2e76052b89",
            ),
            UpstreamFile(
                EXAMPLES,
                "my_custom_library/cross_validation_xgboost.py",
                " archived/sagemaker-script-mode/my_custom_library/cross_validation_xgboost.py",
                "3d9ccedeb51c9da00fa0ffa3d0fe8bb78266ffe2acd121f52ecb2be89f6e0e6c",
            ),
        ),
    ),
    Case(
        "public/abalone_transform_fn",
        "forest_regressor/diabetes.csv",
        "num_round",
        7,
        boosted_rounds,
        requires=("xgboost",),
        upstream=(
            UpstreamFile(
                EXAMPLES,
                "code/abalone.py",
                "   ml_ops/sm-pipelines_local_mode.ipynb",
                "c4393340345314cc6d0738bc9d550d8ca1429340cea37faa10cd4da34e8df4c8",
                notebook_cell=23,
            ),
            UpstreamFile(
                EXAMPLES,
                "code/inference.py",
                "   ml_ops/sm-pipelines_local_mode.ipynb",
                "b89b66da932e10a961a80a566a54bdd93455b4eed6afd0686379e4af7d5fc62d",
                notebook_cell=34,
            ),
        ),
    ),
]


def stage_upstream(case_folder: Path, files: tuple[UpstreamFile, ...], tmp_path: Path) -> Path:
    """A copy of our ``case_folder`` with the public files in it, after their bytes are checked."""
    public_checkouts()  # skips, saying why, before anything is copied
    folder = shutil.copytree(case_folder, tmp_path / "workload")
    # Files staged into subfolders keep upstream's layout (source_dir, dependencies).
    for upstream in files:
        (folder / upstream.name).parent.mkdir(parents=True, exist_ok=True)
    return write_upstream(files, folder) / "workload.yaml"


def staged(case: Case, tmp_path: Path) -> Path:
    """The case's workload folder, with the public files copied in after their bytes are checked.

    Skips what this machine cannot run, saying why.
    """
    for module in case.requires:
        pytest.importorskip(module, reason=f"needs {module}: pip install 'flywheel-mlops[gpu]'")
    if case.folder == "opt_ml_paths" and not private_mounts_available():
        pytest.skip("hard-coded /opt/ml paths need a private mount namespace (unshare)")
    if not case.upstream:
        return HERE / case.folder / "workload.yaml"
    return stage_upstream(HERE / case.folder, case.upstream, tmp_path)


def observed(case: Case, model_archive: Path, metrics: Mapping[str, float]) -> float:
    model_dir = unpack_archive(model_archive, model_archive.parent / f"{model_archive.name}.d")
    return case.observe(model_dir, metrics)


@pytest.mark.parametrize("case", OWN_CASES + PUBLIC_CASES, ids=lambda case: case.id)
def test_script_runs_unchanged_through_flywheel_run_training(
    run_training: Callable[..., int], tmp_path: Path, case: Case
) -> None:
    workload_path = staged(case, tmp_path)
    workload = load_workload(workload_path)
    assert case.value != workload.hyperparameters[case.hyperparameter].default
    channels = case.channels(HERE / case.data, tmp_path / "channels") if case.channels else {}
    status = run_training(
        workload_path,
        HERE / case.data,
        "--hp",
        f"{case.hyperparameter}={case.value}",
        *(f"--channel={name}={path}" for name, path in channels.items()),
    )
    assert status == 0
    (version,) = LocalModelRegistry(tmp_path / "registry").versions(workload.name)
    assert version.hyperparameters[case.hyperparameter] == case.value
    archive = shutil.copy(version.model_uri, tmp_path / "model.tar.gz")
    assert observed(case, Path(archive), version.lineage["training"]["metrics"]) == case.value
    assert workload.objective_metric in version.metrics


@pytest.mark.parametrize("case", OWN_CASES + PUBLIC_CASES, ids=lambda case: case.id)
def test_script_runs_unchanged_on_the_eks_path_on_the_cpu(
    train_on_split: TrainOnSplit, tmp_path: Path, case: Case
) -> None:
    workload_path = staged(case, tmp_path)
    trained = train_on_split(
        workload_path,
        HERE / case.data,
        compute="eks-gpu",
        compute_config={"gpus": 0},
        hyperparameters={case.hyperparameter: str(case.value)},
        channels=case.channels(HERE / case.data, tmp_path / "channels") if case.channels else None,
    )
    assert observed(case, trained.model, trained.metrics) == case.value


# The PyTorch training toolkit's own requirements.txt test: entry.py imports pyfiglet, which
# only its requirements.txt brings.
REQUIREMENTS_SCRIPT = (
    UpstreamFile(
        PYTORCH_TOOLKIT,
        "entry.py",
        "test/resources/requirements/entry.py",
        "2f70e9a10b43812bb06e45f7f76ced73e983da3e22dd7520916b48a607a73546",
    ),
    UpstreamFile(
        PYTORCH_TOOLKIT,
        "requirements.txt",
        "test/resources/requirements/requirements.txt",
        "72836e5eb8906b17d9e9551b0b8543edf295e905f7f48391a62d0b5867ee3cf1",
    ),
)


@pytest.mark.parametrize(
    ("compute", "compute_config"),
    [("local", {}), ("eks-gpu", {"gpus": 0})],
    ids=["local", "eks-path"],
)
def test_public_script_gets_its_requirements_installed_before_it_starts(
    train_on_split: TrainOnSplit,
    tmp_path: Path,
    compute: str,
    compute_config: dict,
) -> None:
    workload_path = stage_upstream(
        HERE / "public/requirements_entry", REQUIREMENTS_SCRIPT, tmp_path
    )
    assert importlib.util.find_spec("pyfiglet") is None, "pyfiglet is installed: nothing to prove"
    lines: list[str] = []
    train_on_split(
        workload_path,
        HERE / "iris_tree/iris.csv",
        compute=compute,
        compute_config=compute_config,
        hyperparameters={},
        log=lines.append,
    )
    # The job installed pyfiglet for itself alone: Flywheel's environment still lacks it.
    assert importlib.util.find_spec("pyfiglet") is None
    # The banner the script printed, rendered by a pyfiglet of the test's own.
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--target", str(site), "pyfiglet"],
        check=True,
    )
    banner = subprocess.run(
        [
            sys.executable,
            "-c",
            "from pyfiglet import Figlet; print(Figlet().renderText('hello, world!').strip())",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(site)},
    ).stdout.splitlines()
    logged = "\n".join(lines)
    assert all(line.rstrip() in logged for line in banner if line.strip())
