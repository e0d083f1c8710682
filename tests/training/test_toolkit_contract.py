"""A probe script sees exactly what SageMaker's training toolkit documents (ENVIRONMENT_VARIABLES.md).

The probe dumps its argv, every ``SM_*`` variable and the three config files; the assertions are
the toolkit's own documentation of each, so a difference from a SageMaker framework container fails.
"""

from __future__ import annotations

import json
import socket
import tarfile
from pathlib import Path

import pytest

from flywheel.components.compute.backend import TrainingJobSpec
from flywheel.components.compute.local import LocalBackend
from flywheel.components.compute.local.opt_ml import private_mounts_available

PROBE = """\
import json, os, sys
from pathlib import Path

config = Path(os.environ["SM_INPUT_CONFIG_DIR"])
seen = {
    "argv": sys.argv,
    "env": {k: v for k, v in os.environ.items() if k.startswith("SM_")},
    "files": {n: json.loads((config / n).read_text()) for n in os.listdir(config)},
    "cwd": os.getcwd(),
    "hard_coded": sorted(os.listdir("/opt/ml/input/data/train"))
    if os.path.isdir("/opt/ml/input/data/train") else None,
}
Path(os.environ["SM_MODEL_DIR"], "seen.json").write_text(json.dumps(seen))
"""

# Every variable of the toolkit's ENVIRONMENT_VARIABLES.md, for channel ``train`` and hyperparameter ``epochs``.
DOCUMENTED = {
    "SM_MODEL_DIR",
    "SM_CHANNELS",
    "SM_CHANNEL_TRAIN",
    "SM_HPS",
    "SM_HP_EPOCHS",
    "SM_CURRENT_HOST",
    "SM_HOSTS",
    "SM_NUM_GPUS",
    "SM_NUM_CPUS",
    "SM_LOG_LEVEL",
    "SM_NETWORK_INTERFACE_NAME",
    "SM_USER_ARGS",
    "SM_INPUT_DIR",
    "SM_INPUT_CONFIG_DIR",
    "SM_RESOURCE_CONFIG",
    "SM_INPUT_DATA_CONFIG",
    "SM_TRAINING_ENV",
    # Set by the same toolkit, and named in our README's contract table.
    "SM_OUTPUT_DIR",
    "SM_OUTPUT_DATA_DIR",
    "SM_MODULE_NAME",
    "SM_MODULE_DIR",
    "SM_USER_ENTRY_POINT",
    "SM_FRAMEWORK_PARAMS",
}


def train_script(
    root: Path,
    script: str,
    *,
    job_name: str,
    entry_point: str = "train.py",
    requirements: str = "",
    hyperparameters: dict | None = None,
    log=lambda _: None,
):
    """Run ``script`` as ``entry_point`` (with ``requirements.txt`` if given) on a one-row channel."""
    code = root / "code"
    code.mkdir()
    (code / entry_point).write_text(script)
    if requirements:
        (code / "requirements.txt").write_text(requirements)
    (root / "train.csv").write_text("x,y\n1,2\n")
    return LocalBackend().train(
        TrainingJobSpec(
            job_name=job_name,
            source_dir=str(code),
            entry_point=entry_point,
            channels={"train": str(root / "train.csv")},
            hyperparameters=hyperparameters or {},
            output_location=str(root / "out"),
        ),
        log=log,
    )


@pytest.fixture(scope="module")
def seen(tmp_path_factory: pytest.TempPathFactory) -> dict:
    result = train_script(
        tmp_path_factory.mktemp("probe"),
        PROBE,
        job_name="probe-job",
        entry_point="probe.py",
        hyperparameters={"epochs": 3, "learning-rate": 0.5, "name": "a b"},
    )
    with tarfile.open(result.model_artifact) as tar:
        return json.load(tar.extractfile("seen.json"))


def test_hyperparameters_reach_the_script_as_name_value_arguments_without_sdk_keys(
    seen: dict,
) -> None:
    assert seen["argv"][1:] == ["--epochs", "3", "--learning-rate", "0.5", "--name", "a b"]
    assert json.loads(seen["env"]["SM_USER_ARGS"]) == seen["argv"][1:]


def test_every_documented_variable_is_set(seen: dict) -> None:
    assert set(seen["env"]) >= DOCUMENTED


def test_variables_agree_with_the_config_files(seen: dict) -> None:
    env, files = seen["env"], seen["files"]
    assert json.loads(env["SM_HPS"]) == {"epochs": 3, "learning-rate": 0.5, "name": "a b"}
    assert env["SM_HP_EPOCHS"] == "3" and env["SM_HP_LEARNING-RATE"] == "0.5"
    assert json.loads(env["SM_RESOURCE_CONFIG"]) == files["resourceconfig.json"]
    assert json.loads(env["SM_INPUT_DATA_CONFIG"]) == files["inputdataconfig.json"]
    assert json.loads(env["SM_HOSTS"]) == files["resourceconfig.json"]["hosts"]
    assert env["SM_CURRENT_HOST"] == files["resourceconfig.json"]["current_host"]
    assert json.loads(env["SM_CHANNELS"]) == ["train"]
    assert env["SM_USER_ENTRY_POINT"] == "probe.py" and env["SM_MODULE_NAME"] == "probe"
    assert env["SM_MODULE_DIR"].endswith("sourcedir.tar.gz")
    training_env = json.loads(env["SM_TRAINING_ENV"])
    assert training_env["hyperparameters"] == json.loads(env["SM_HPS"])
    assert training_env["job_name"] == "probe-job"


def test_the_script_runs_in_its_code_folder_on_this_host(seen: dict) -> None:
    assert seen["cwd"] == str(Path(seen["env"]["SM_MODEL_DIR"]).parent / "code")
    assert seen["env"]["SM_CURRENT_HOST"] in (socket.gethostname(), "localhost")


def test_hyperparameters_file_holds_what_the_sdk_writes(seen: dict) -> None:
    assert seen["files"]["hyperparameters.json"] == {
        "epochs": "3",
        "learning-rate": "0.5",
        "name": '"a b"',
        "sagemaker_program": '"probe.py"',
        "sagemaker_submit_directory": json.dumps(seen["env"]["SM_MODULE_DIR"]),
        "sagemaker_container_log_level": "20",
        "sagemaker_job_name": '"probe-job"',
    }
    assert seen["files"]["inputdataconfig.json"]["train"]["TrainingInputMode"] == "File"


@pytest.mark.skipif(not private_mounts_available(), reason="no private mount namespace here")
def test_hard_coded_opt_ml_paths_are_the_jobs_own_layout(seen: dict) -> None:
    assert seen["hard_coded"] == ["train.csv"]
    assert seen["env"]["SM_MODEL_DIR"] == "/opt/ml/model"
    assert seen["env"]["SM_CHANNEL_TRAIN"] == "/opt/ml/input/data/train"
    assert not Path("/opt/ml").exists(), "the job's /opt/ml must not leak onto this machine"


def test_requirements_beside_the_script_are_installed_before_it_runs(tmp_path: Path) -> None:
    lines: list[str] = []
    train_script(
        tmp_path,
        "import six\nprint('six', six.__version__)\n",
        job_name="requirements-job",
        # ``six`` is already installed (the toolkit needs it), so pip resolves it offline.
        requirements="six\n",
        log=lines.append,
    )
    installing = next(i for i, line in enumerate(lines) if "requirements.txt" in line)
    ran = next(i for i, line in enumerate(lines) if line.startswith("six "))
    assert installing < ran


def test_without_a_mount_namespace_the_layout_is_named_by_sagemaker_base_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flywheel.components.compute.local import toolkit

    monkeypatch.setattr(toolkit, "opt_ml_prefix", lambda root, view: ())
    lines: list[str] = []
    train_script(
        tmp_path,
        "import os\nprint('model_dir=' + os.environ['SM_MODEL_DIR'])\n",
        job_name="no-namespace",
        log=lines.append,
    )
    model_dir = next(line for line in lines if line.startswith("model_dir=")).split("=", 1)[1]
    assert model_dir.endswith("/opt/ml/model") and model_dir != "/opt/ml/model"
    assert any("SAGEMAKER_BASE_DIR" in line for line in lines)


def test_a_requirements_install_that_fails_is_the_jobs_reason(tmp_path: Path) -> None:
    from flywheel.components.errors import JobFailedError

    with pytest.raises(JobFailedError, match=r"InstallRequirementsError"):
        train_script(
            tmp_path,
            "print('never runs')\n",
            job_name="bad-requirements",
            # A local path that does not exist: pip fails at once, without a network.
            requirements="./no-such-package\n",
        )
