import json
from pathlib import Path

import pytest

from flywheel.components.contract import training as contract


def test_hyperparameters_file_holds_json_strings_and_the_sdk_keys_as_sagemaker_writes_it(
    tmp_path: Path,
) -> None:
    layout = contract.layout_for(tmp_path)
    contract.write_config_files(
        layout,
        hyperparameters=contract.sdk_hyperparameters(
            {"epochs": 3, "rate": 0.1, "flag": True, "name": "x"},
            entry_point="train.py",
            submit_directory="/tmp/sourcedir.tar.gz",
        ),
        resources=contract.resource_config("host-a"),
        channels=contract.input_data_config({"train": "text/csv"}),
    )
    written = json.loads((tmp_path / "input/config/hyperparameters.json").read_text())
    assert written == {
        "epochs": "3",
        "rate": "0.1",
        "flag": "true",
        "name": '"x"',
        "sagemaker_program": '"train.py"',
        "sagemaker_submit_directory": '"/tmp/sourcedir.tar.gz"',
        "sagemaker_container_log_level": "20",
    }
    resources = json.loads((tmp_path / "input/config/resourceconfig.json").read_text())
    assert resources["current_host"] == "host-a" and resources["hosts"] == ["host-a"]
    channels = json.loads((tmp_path / "input/config/inputdataconfig.json").read_text())
    assert channels == {
        "train": {
            "ContentType": "text/csv",
            "TrainingInputMode": "File",
            "S3DistributionType": "FullyReplicated",
            "RecordWrapperType": "None",
        }
    }


def test_failure_reason_is_read_from_the_failure_file(tmp_path: Path) -> None:
    layout = contract.layout_for(tmp_path)
    assert contract.read_failure_reason(layout) is None
    layout.output_dir.mkdir(parents=True)
    layout.failure_file.write_text("out of memory\n")
    assert contract.read_failure_reason(layout) == "out of memory"
    layout.failure_file.write_text("x" * 5000)
    assert contract.read_failure_reason(layout) == "x" * 1024  # SageMaker's FailureReason length


@pytest.mark.parametrize("name", ["", "has space", "x" * 65, "-leading"])
def test_channel_names_that_break_env_vars_or_sagemaker_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="channel name"):
        contract.validate_channel_name(name)


def test_packed_archive_is_byte_identical_whatever_the_file_times_owners_and_pack_time(
    tmp_path: Path,
) -> None:
    import os
    import time

    from flywheel.components.contract.packaging import pack_folder, sha256_of_file

    def make(root: Path, mtime: float, mode: int) -> Path:
        (root / "sub").mkdir(parents=True)
        (root / "model.pkl").write_bytes(b"weights")
        (root / "sub" / "meta.json").write_text("{}")
        for path in (root / "model.pkl", root / "sub" / "meta.json", root / "sub"):
            os.utime(path, (mtime, mtime))
        (root / "model.pkl").chmod(mode)
        return root

    first = pack_folder(make(tmp_path / "a", 1_000_000, 0o600), tmp_path / "one" / "model.tar.gz")
    time.sleep(1.1)  # gzip headers carry seconds: a second later must not change a byte
    second = pack_folder(make(tmp_path / "b", 2_000_000, 0o640), tmp_path / "two" / "model.tar.gz")
    assert sha256_of_file(first) == sha256_of_file(second)
    assert first.read_bytes()[4:8] == b"\0\0\0\0"  # gzip MTIME field
