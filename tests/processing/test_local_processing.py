"""SageMaker Processing's container contract on the local backend, pinned with our own scripts.

Each script in ``scripts/`` is written as for SageMaker Processing: it reads and writes the
literal ``/opt/ml/...`` paths, and the tests look only at what it reports and leaves behind.
"""

import dataclasses
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from flywheel.components.compute.eks import EksGpuBackend, Placement
from flywheel.components.compute.local import LocalBackend
from flywheel.components.compute.local import processing as local_processing
from flywheel.components.contract.processing import (
    ProcessingInput,
    ProcessingJobSpec,
    ProcessingOutput,
    ProcessingResult,
)
from flywheel.components.errors import InvalidSpecError, JobFailedError

SCRIPTS = Path(__file__).parent / "scripts"
Process = Callable[..., ProcessingResult]
PARTS = [f"part-{index}.csv" for index in range(6)]


def _spec(script: str, entry_point: str, **fields) -> ProcessingJobSpec:
    return ProcessingJobSpec(
        **{"job_name": "proc-test", "source_dir": str(SCRIPTS / script), "entry_point": entry_point}
        | fields
    )


def _parts(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(PARTS):
        (folder / name).write_text(f"{index}\n")
    return folder


def _reports(folder: Path) -> dict[str, dict]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}


def test_script_sees_container_arguments_environment_and_config_files_as_on_sagemaker(
    process: Process, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    (data / "nested").mkdir(parents=True)
    (data / "a.csv").write_text("1\n")
    (data / "nested" / "b.csv").write_text("2\n")
    model = tmp_path / "model.tar.gz"
    model.write_bytes(b"not really a model")
    arguments = ("--rows", "6", "--label", "two words")
    spec = _spec(
        "probe",
        "probe.py",
        inputs=(
            ProcessingInput("data", str(data)),
            ProcessingInput("model", str(model), local_path="/opt/ml/processing/model"),
        ),
        outputs=(ProcessingOutput("report", destination=str(tmp_path / "report")),),
        arguments=arguments,
        environment={"SPLIT": "0.7"},
    )

    result = process(spec)

    assert result == ProcessingResult("proc-test", {"report": str(tmp_path / "report")})
    report = _reports(tmp_path / "report")["algo-1"]
    assert report["script"] == "probe.py"
    assert report["argv"] == list(arguments)
    # runproc.sh changes into the unpacked code before it starts the script.
    assert report["cwd"] == "/opt/ml/processing/input/code"
    assert report["environment"]["SPLIT"] == "0.7"
    assert report["output_exists"] is True
    assert report["resource_config"] == {"current_host": "algo-1", "hosts": ["algo-1"]}
    assert report["inputs"]["data"] == ["a.csv", "nested/b.csv"]
    assert report["inputs"]["model"] == ["model.tar.gz"]
    assert {"probe.py", "sourcedir.tar.gz"} <= set(report["inputs"]["code"])
    assert report["inputs"]["entrypoint"] == ["runproc.sh"]
    job = report["job_config"]
    assert job["ProcessingJobName"] == "proc-test"
    assert job["AppSpecification"]["ContainerEntrypoint"] == [
        "/bin/bash",
        "/opt/ml/processing/input/entrypoint/runproc.sh",
    ]
    assert job["AppSpecification"]["ContainerArguments"] == list(arguments)
    assert job["Environment"] == {"SPLIT": "0.7"}
    # The SDK sends the user's inputs first, then the code, then runproc.sh.
    assert [i["InputName"] for i in job["ProcessingInputs"]] == [
        "data",
        "model",
        "code",
        "entrypoint",
    ]
    data_input = job["ProcessingInputs"][0]["S3Input"]
    assert data_input["S3Uri"] == data.resolve().as_uri()
    assert data_input["LocalPath"] == "/opt/ml/processing/input/data"
    assert data_input["S3DataDistributionType"] == "FullyReplicated"
    assert job["ProcessingInputs"][1]["S3Input"]["LocalPath"] == "/opt/ml/processing/model"
    [output] = job["ProcessingOutputConfig"]["Outputs"]
    assert output["OutputName"] == "report"
    assert output["S3Output"]["LocalPath"] == "/opt/ml/processing/output/report"
    assert job["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 1
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 86400}


def test_container_entrypoint_replaces_runproc_and_starts_in_the_root_folder(
    process: Process, tmp_path: Path
) -> None:
    spec = _spec(
        "noop",
        "",
        container_entrypoint=("/bin/sh", "-c"),
        arguments=("pwd > /opt/ml/processing/output/where/cwd.txt",),
        outputs=(ProcessingOutput("where", destination=str(tmp_path / "where")),),
    )

    process(spec)

    assert (tmp_path / "where" / "cwd.txt").read_text() == "/\n"


def test_sharded_input_gives_each_worker_its_own_objects(process: Process, tmp_path: Path) -> None:
    spec = _spec(
        "probe",
        "probe.py",
        inputs=(
            ProcessingInput("data", str(_parts(tmp_path / "data")), distribution="ShardedByS3Key"),
        ),
        outputs=(ProcessingOutput("report", destination=str(tmp_path / "report")),),
        instance_count=2,
    )
    lines: list[str] = []

    process(spec, lines.append)

    reports = _reports(tmp_path / "report")
    assert sorted(reports) == ["algo-1", "algo-2"]  # both workers' outputs were collected
    seen = {host: set(report["inputs"]["data"]) for host, report in reports.items()}
    assert len(seen["algo-1"]) == len(seen["algo-2"]) == 3
    assert seen["algo-1"].isdisjoint(seen["algo-2"])
    assert seen["algo-1"] | seen["algo-2"] == set(PARTS)
    for host, report in reports.items():
        assert report["resource_config"] == {"current_host": host, "hosts": ["algo-1", "algo-2"]}
    assert "[proc-test algo-1] probe on algo-1 saw 6 files" in lines
    assert "[proc-test algo-2] probe on algo-2 saw 6 files" in lines


def test_fully_replicated_input_gives_every_worker_all_objects(
    process: Process, tmp_path: Path
) -> None:
    spec = _spec(
        "probe",
        "probe.py",
        inputs=(ProcessingInput("data", str(_parts(tmp_path / "data"))),),
        outputs=(ProcessingOutput("report", destination=str(tmp_path / "report")),),
        instance_count=2,
    )

    process(spec)

    reports = _reports(tmp_path / "report")
    assert {host: r["inputs"]["data"] for host, r in reports.items()} == {
        "algo-1": PARTS,
        "algo-2": PARTS,
    }


def test_output_without_destination_lands_under_the_processors_output_root(
    process: Process, tmp_path: Path
) -> None:
    spec = _spec("probe", "probe.py", outputs=(ProcessingOutput("report"),))

    result = process(spec)

    folder = tmp_path / "outputs" / "proc-test" / "report"
    assert result.outputs == {"report": str(folder)}
    assert sorted(_reports(folder)) == ["algo-1"]


def test_what_a_host_leaves_running_ends_with_its_entrypoint(
    process: Process, tmp_path: Path
) -> None:
    pid_file = tmp_path / "background.pid"
    spec = _spec(
        "noop",
        "",
        container_entrypoint=("/bin/sh", "-c"),
        arguments=(f"sleep 300 & echo $! > {pid_file}",),
    )

    process(spec)

    assert not _alive(int(pid_file.read_text()))


def _importable_in_flywheel_env(module: str) -> bool:
    probe = [sys.executable, "-c", f"import {module}"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


def test_requirements_install_for_the_job_only(process: Process, tmp_path: Path) -> None:
    assert importlib.util.find_spec("pyfiglet") is None, "pyfiglet is installed: nothing to prove"
    spec = _spec(
        "banner",
        "banner.py",
        outputs=(ProcessingOutput("banner", destination=str(tmp_path / "banner")),),
    )

    process(spec)

    assert (tmp_path / "banner" / "banner.txt").read_text().strip()
    installed_at = Path((tmp_path / "banner" / "pyfiglet_path.txt").read_text())
    assert not installed_at.is_relative_to(sys.prefix)
    assert not _importable_in_flywheel_env("pyfiglet")


def test_failed_requirements_install_is_reported_with_pips_own_error(
    process: Process, tmp_path: Path
) -> None:
    lines: list[str] = []
    with pytest.raises(JobFailedError) as failure:
        process(_spec("bad_requirements", "never_runs.py"), lines.append)

    assert failure.value.reason.startswith("installing requirements.txt failed: ERROR: ")
    assert "flywheel-no-such-package-anywhere" in failure.value.reason
    assert not any("the script ran" in line for line in lines)


def test_failure_reason_is_the_exit_message_and_a_failing_host_stops_the_others(
    process: Process,
) -> None:
    lines: list[str] = []
    started = time.monotonic()
    with pytest.raises(JobFailedError) as failure:
        process(_spec("exit_message", "fail.py", instance_count=2), lines.append)

    assert failure.value.reason == "column 'rings' is missing from abalone.csv"
    assert "[proc-test algo-1] exited with status 3" in lines
    # algo-2 would sleep for two minutes; the failure of algo-1 stopped it.
    assert time.monotonic() - started < 30


def test_failure_reason_is_the_scripts_last_line_without_an_exit_message(
    process: Process,
) -> None:
    with pytest.raises(JobFailedError) as failure:
        process(_spec("traceback", "fail.py"))

    assert failure.value.reason == "ValueError: row 7 has 3 columns, expected 9"


def _bad_specs(data: str) -> dict[str, tuple[dict, str]]:
    """Each case: the spec's fields, and the field the refusal must name."""
    inputs = {
        "input outside /opt/ml/processing": (
            (ProcessingInput("data", data, local_path="/opt/ml/input/data"),),
            "processing.inputs[0].local_path",
        ),
        "two inputs with one name": (
            (
                ProcessingInput("data", data),
                ProcessingInput("data", data, local_path="/opt/ml/processing/other"),
            ),
            "processing.inputs[1].name",
        ),
        "two inputs at one path": (
            (
                ProcessingInput("a", data, local_path="/opt/ml/processing/data"),
                ProcessingInput("b", data, local_path="/opt/ml/processing/data"),
            ),
            "processing.inputs[1].local_path",
        ),
        "more than 8 user inputs": (
            tuple(ProcessingInput(f"in{index}", data) for index in range(9)),
            "processing.inputs",
        ),
        "unknown distribution": (
            (ProcessingInput("data", data, distribution="ShardedByLine"),),
            "processing.inputs[0].distribution",
        ),
        "missing source": (
            (ProcessingInput("data", f"{data}/nothing-here"),),
            "processing.inputs[0].source",
        ),
    }
    cases = {name: ({"inputs": value}, field) for name, (value, field) in inputs.items()}
    cases["script not in source_dir"] = ({"entry_point": "missing.py"}, "processing.entry_point")
    cases["output outside /opt/ml/processing"] = (
        {"outputs": (ProcessingOutput("report", local_path="/tmp/report"),)},
        "processing.outputs[0].local_path",
    )
    return cases


@pytest.mark.parametrize("case", list(_bad_specs("")))
def test_bad_spec_is_refused_in_one_line_naming_the_field_before_anything_runs(
    process: Process, tmp_path: Path, case: str
) -> None:
    fields, expected_field = _bad_specs(str(_parts(tmp_path / "data")))[case]
    marker = tmp_path / "ran"
    spec = dataclasses.replace(
        _spec("noop", "noop.py", environment={"MARKER": str(marker)}), **fields
    )

    with pytest.raises(InvalidSpecError) as refusal:
        process(spec)

    assert refusal.value.field == expected_field
    assert "\n" not in str(refusal.value)
    assert not marker.exists()
    assert not (tmp_path / "outputs").exists()


def test_output_the_script_never_wrote_fails_the_job_naming_its_path(
    process: Process, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    spec = _spec(
        "noop",
        "noop.py",
        environment={"MARKER": str(marker)},
        outputs=(ProcessingOutput("report", local_path="/opt/ml/processing/reports"),),
    )

    with pytest.raises(JobFailedError) as failure:
        process(spec)

    assert marker.read_text() == "ran"
    assert failure.value.reason == (
        "output 'report': the script never wrote anything to /opt/ml/processing/reports"
    )


def test_s3_input_is_sharded_and_outputs_are_uploaded(s3, bucket: str, process: Process) -> None:
    for name in PARTS:
        s3.put_object(Bucket=bucket, Key=f"in/{name}", Body=name.encode())
    spec = _spec(
        "probe",
        "probe.py",
        inputs=(ProcessingInput("data", f"s3://{bucket}/in/", distribution="ShardedByS3Key"),),
        outputs=(ProcessingOutput("report", destination=f"s3://{bucket}/out/reports"),),
        instance_count=2,
    )

    result = process(spec)

    assert result.outputs == {"report": f"s3://{bucket}/out/reports"}
    listing = s3.list_objects_v2(Bucket=bucket, Prefix="out/reports/")["Contents"]
    keys = sorted(item["Key"] for item in listing)
    assert keys == ["out/reports/algo-1.json", "out/reports/algo-2.json"]
    reports = {
        key: json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()) for key in keys
    }
    seen = [set(report["inputs"]["data"]) for report in reports.values()]
    assert seen[0].isdisjoint(seen[1]) and seen[0] | seen[1] == set(PARTS)
    job = next(iter(reports.values()))["job_config"]
    assert job["ProcessingInputs"][0]["S3Input"]["S3Uri"] == f"s3://{bucket}/in/"
    assert job["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"] == (
        f"s3://{bucket}/out/reports"
    )


def test_empty_s3_prefix_is_refused_naming_the_input(bucket: str, process: Process) -> None:
    spec = _spec("noop", "noop.py", inputs=(ProcessingInput("data", f"s3://{bucket}/nothing/"),))

    with pytest.raises(InvalidSpecError) as refusal:
        process(spec)

    assert refusal.value.field == "processing.inputs[0].source"


def test_several_hosts_are_refused_in_one_line_where_opt_ml_cannot_be_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_processing, "private_mounts_available", lambda: False)
    processor = local_processing.LocalProcessor(ml_root=tmp_path / "opt-ml")

    with pytest.raises(JobFailedError) as failure:
        processor.process(_spec("noop", "noop.py", instance_count=2), lambda _: None)

    assert "private mount of /opt/ml" in failure.value.reason


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_sigterm_to_the_step_stops_every_host(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    spec = _spec("sleeper", "sleep.py", instance_count=2, environment={"PID_FOLDER": str(pids)})
    step = (
        "import sys\n"
        "from flywheel.components.compute.local.processing import LocalProcessor\n"
        "from flywheel.components.contract.processing import ProcessingJobSpec\n"
        f"LocalProcessor().process(ProcessingJobSpec(**{spec.__dict__!r}))\n"
    )
    with subprocess.Popen([sys.executable, "-c", step], stdout=subprocess.DEVNULL) as running:
        deadline = time.monotonic() + 60
        while len(list(pids.glob("*.pid"))) < 2:
            assert running.poll() is None and time.monotonic() < deadline, "hosts never started"
            time.sleep(0.05)
        hosts = [int(path.read_text()) for path in pids.glob("*.pid")]
        assert all(_alive(pid) for pid in hosts)
        running.send_signal(signal.SIGTERM)
        assert running.wait(15) == -signal.SIGTERM

    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in hosts) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in hosts)


@pytest.mark.parametrize(
    "backend",
    [LocalBackend(), EksGpuBackend(Placement.from_mapping({"gpus": 0}))],
    ids=["local", "eks-gpu"],
)
def test_backends_run_processing_jobs_on_local_hosts(backend, tmp_path: Path) -> None:
    spec = _spec(
        "probe",
        "probe.py",
        inputs=(
            ProcessingInput("data", str(_parts(tmp_path / "data")), distribution="ShardedByS3Key"),
        ),
        outputs=(ProcessingOutput("report", destination=str(tmp_path / "report")),),
        instance_count=2,
    )

    result = backend.process(spec, lambda _: None)

    assert result.outputs == {"report": str(tmp_path / "report")}
    assert sorted(_reports(tmp_path / "report")) == ["algo-1", "algo-2"]
    assert os.environ.get("PIP_TARGET") is None
