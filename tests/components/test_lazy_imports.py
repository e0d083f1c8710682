"""Importing Flywheel's internals never imports KFP: the CLI's fast start depends on it.

``flywheel.components`` loads a component (and with it KFP) only when one is asked for; the
internal modules the CLI and the steps import must not pull KFP in on their own.

Every kfp.local task is a fresh process that pays its imports again, so the training pipeline's
steps keep pyarrow (which imports numpy), its compute kernels and pandas off their import path:
a step imports them when it reads a table, and building Arrow text from Python rows never
imports pandas.
"""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

COMPILED = Path(__file__).resolve().parents[2] / "components" / "compiled"
INTERNAL_MODULES = [
    "flywheel.components",
    "flywheel.components.contract.workload",
    "flywheel.components.images",
    "flywheel.components.errors",
    "flywheel.pipelines.defaults",
]
# mlflow too: the train step imports it only to record a run, in a thread while the job runs;
# and optuna, which the train step imports only for a tuning trial handed its study.
HEAVY_MODULES = ("numpy", "pyarrow", "pyarrow.compute", "pandas", "mlflow", "optuna")
# The training pipeline's components whose steps need no table to be imported.
LIGHT_COMPONENTS = [
    "plan_training",
    "train_model",
    "evaluate_model",
    "score_champion",
    "register_model",
    "decide_promotion",
    "promote_model",
]


def _imports_kfp(statement: str) -> bool:
    probe = f"{statement}\nimport sys\nprint('kfp' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    return result.stdout.strip().splitlines()[-1] == "True"


def _heavy_modules_after(statement: str) -> list[str]:
    """The heavy modules loaded by ``statement`` in a task-like process (``_KFP_RUNTIME`` set)."""
    probe = f"{statement}\nimport sys\nprint([m for m in {HEAVY_MODULES!r} if m in sys.modules])"
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "_KFP_RUNTIME": "true"},
    )
    return ast.literal_eval(result.stdout.strip().splitlines()[-1])


def _task_imports(component: str) -> str:
    """What the component's task process imports before its step runs: kfp's executor, then the
    imports of the component's embedded source, module level and function body alike."""
    spec = yaml.safe_load((COMPILED / f"{component}.yaml").read_text())
    (executor,) = spec["deploymentSpec"]["executors"].values()
    source = executor["container"]["command"][-1]
    imports = [
        ast.unparse(node)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import | ast.ImportFrom)
    ]
    return "\n".join(["import kfp.dsl.executor_main", *imports])


@pytest.mark.parametrize("module", INTERNAL_MODULES)
def test_importing_an_internal_module_does_not_import_kfp(module: str) -> None:
    assert not _imports_kfp(f"import {module}")


def test_asking_for_a_component_imports_kfp() -> None:
    # The probe itself works: a public component does bring KFP.
    assert _imports_kfp("from flywheel.components import train_model")


@pytest.mark.parametrize("component", LIGHT_COMPONENTS)
def test_a_training_task_imports_no_pyarrow_numpy_or_pandas_before_its_step_runs(
    component: str,
) -> None:
    assert "flywheel.components.steps" in _task_imports(component)
    assert _heavy_modules_after(_task_imports(component)) == []


def test_the_probe_sees_a_step_that_does_import_pyarrow_compute() -> None:
    # prepare-data computes on every batch, so its step imports the kernels up front.
    assert "pyarrow.compute" in _heavy_modules_after(_task_imports("prepare_data"))


def test_reading_and_checking_rows_does_not_import_pandas(tmp_path: Path) -> None:
    table = tmp_path / "rows.csv"
    table.write_text("id,x,y\na,1,2.5\nb,3,4.5\n")
    statement = f"""
from pathlib import Path
from flywheel.components.contract.workload import DataColumns
from flywheel.components.data import batches, rows
header, found = rows.read_table({str(table)!r})
batches.check_table("rows.csv", header, found, DataColumns(features=("x",), label="y", id="id"))
written = rows.write_table(Path({str(tmp_path / "out.csv")!r}), header, found)
assert rows.read_table(str(written)) == (header, found)
"""
    assert "pandas" not in _heavy_modules_after(statement)


def test_loading_the_builtin_dataset_does_not_import_pandas() -> None:
    # The CLI's preflight and prepare-data both load it.
    pytest.importorskip("rdkit")
    statement = (
        "from flywheel.components.data import tables\n"
        "assert tables.open_table('builtin:chembl-CHEMBL2321810').read().num_rows > 0"
    )
    assert "pandas" not in _heavy_modules_after(statement)


@pytest.mark.parametrize(
    "rows",
    [
        [{"a": "1", "b": "x"}, {"a": "", "b": "ünï"}],
        [{"a": None, "b": "y"}, {"b": "z"}, {"a": "2", "b": None, "c": "left out"}],
        [],
        [{"a": 1, "b": "not text: pyarrow's converter refuses it"}],
    ],
)
def test_text_table_is_the_table_from_pylist_builds(rows: list[dict]) -> None:
    import pyarrow as pa

    from flywheel.components.data.rows import text_table

    schema = pa.schema([("a", pa.string()), ("b", pa.string())])
    try:
        expected = pa.Table.from_pylist(rows, schema=schema)
    except pa.ArrowException as error:
        with pytest.raises(type(error)):
            text_table(["a", "b"], rows)
        return
    built = text_table(["a", "b"], rows)
    built.validate(full=True)
    assert built.equals(expected)
    assert built.schema == expected.schema
