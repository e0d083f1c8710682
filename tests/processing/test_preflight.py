"""A pipeline's processing tasks are checked before any task runs: one line naming task and field."""

import pytest
from kfp import dsl

from flywheel.components import run_processing
from flywheel.components.errors import InvalidSpecError
from flywheel.pipelines.catalog import PIPELINES
from flywheel.pipelines.preflight import check_processing_tasks


def _pipeline(**arguments):
    @dsl.pipeline(name="preflight")
    def pipeline(code: str = "."):
        run_processing(source_dir=code, entry_point="x.py", **arguments).set_display_name("clean")

    return pipeline


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            {"inputs": {"raw": {"source": "s3://b/raw", "local_path": "/data/raw"}}},
            "clean: processing.inputs[0].local_path: /data/raw is not a folder under "
            "/opt/ml/processing",
        ),
        (
            {
                "inputs": {"a": "s3://b/a", "b": "s3://b/b"},
                "local_paths": {"b": "/opt/ml/processing/input/a"},
            },
            "clean: processing.inputs[1].local_path: /opt/ml/processing/input/a is also inputs[0]'s path",
        ),
        (
            {"inputs": {f"in{index}": f"s3://b/{index}" for index in range(9)}},
            "clean: processing.inputs: 9 inputs; at most 8 are allowed",
        ),
        (
            {"inputs": {"raw": {"source": "s3://b/raw", "distribution": "ShardedByKey"}}},
            "clean: processing.inputs[0].distribution: 'ShardedByKey' is not one of "
            "['FullyReplicated', 'ShardedByS3Key']",
        ),
        (
            {"inputs": {"raw": {"source": "s3://b/raw", "mode": "Pipe"}}},
            "clean: processing.inputs.raw.mode: unknown key",
        ),
        (
            {"instance_count": 2, "host_index": 2},
            "clean: processing.host_index: 2 is not a host of 2",
        ),
    ],
)
def test_bad_processing_constants_are_refused_before_any_task_runs(arguments, message) -> None:
    with pytest.raises(InvalidSpecError) as refused:
        check_processing_tasks(_pipeline(**arguments))
    assert str(refused.value).startswith(message)


def test_two_inputs_of_one_name_are_refused_naming_them() -> None:
    # An artifact input and a parameter input cannot share the name the script sees.
    @dsl.pipeline(name="preflight-names")
    def pipeline(code: str = "."):
        made = run_processing(source_dir=code, entry_point="a.py")
        run_processing(
            source_dir=code,
            entry_point="b.py",
            inputs={"data": "s3://b/data"},
            data=made.outputs["outputs"],
        ).set_display_name("second")

    with pytest.raises(
        InvalidSpecError, match=r"^second: processing.inputs\[1\].name: 'data' is also inputs\[0\]"
    ):
        check_processing_tasks(pipeline)


def test_every_shipped_pipeline_passes_the_preflight() -> None:
    for pipeline in PIPELINES.values():
        check_processing_tasks(pipeline)


def test_values_known_only_at_run_time_are_left_to_the_task() -> None:
    @dsl.pipeline(name="preflight-runtime")
    def pipeline(code: str = ".", paths: dict = {}):  # noqa: B006
        run_processing(source_dir=code, entry_point="x.py", local_paths=paths)

    check_processing_tasks(pipeline)
