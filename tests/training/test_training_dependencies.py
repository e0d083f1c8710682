"""``dependencies``: folders shipped with the training code, as the SDK's ``Estimator(dependencies=
[...])`` ships them, importable by the script and by its serving handlers."""

from pathlib import Path

import pytest

from flywheel.components.contract.workload import load_workload
from flywheel.components.errors import InvalidSpecError

from ..conftest import TrainOnSplit

TRAIN = """\
import json, os, pathlib
from helpers import model_value

if __name__ == "__main__":
    pathlib.Path(os.environ["SM_MODEL_DIR"], "model.json").write_text(json.dumps(model_value()))
    print("trained with helpers", flush=True)

def model_fn(model_dir):
    from helpers import model_value
    return model_value()

def transform_fn(model, body, content_type, accept):
    return "".join(f"{model}\\n" for line in body.splitlines() if line.strip())
"""
WORKLOAD = """\
name: with-dependencies
entry_point: train.py
source_dir: code
dependencies: [lib/helpers]
data: {id_column: id, feature_columns: [x], label_column: y}
serving: {split_type: Line}
objective: {metric: rmse}
"""


def _workload(root: Path) -> Path:
    (root / "code").mkdir()
    (root / "code" / "train.py").write_text(TRAIN)
    (root / "lib" / "helpers").mkdir(parents=True)
    (root / "lib" / "helpers" / "__init__.py").write_text("def model_value():\n    return 4.5\n")
    (root / "workload.yaml").write_text(WORKLOAD)
    (root / "data.csv").write_text("id,x,y\n" + "".join(f"r{i},{i},{i / 2}\n" for i in range(20)))
    return root / "workload.yaml"


def test_the_training_script_imports_its_dependency_and_serving_gets_it_too(
    train_on_split: TrainOnSplit, tmp_path: Path
) -> None:
    from flywheel.components.steps.evaluate import evaluate_model

    workload = _workload(tmp_path)
    assert load_workload(workload).serving_dependencies == ((tmp_path / "lib" / "helpers"),)
    lines: list[str] = []
    trained = train_on_split(workload, tmp_path / "data.csv", log=lines.append)
    assert "trained with helpers" in lines
    scored = evaluate_model(
        workload_path=str(workload),
        compute="local",
        model_path=trained.model,
        test_path=trained.test,
        log=lambda _: None,
    )
    assert scored.rows == 4 and scored.metrics["rmse"] >= 0


def test_a_missing_dependency_folder_is_refused_naming_it(tmp_path: Path) -> None:
    workload = _workload(tmp_path)
    workload.write_text(WORKLOAD.replace("lib/helpers", "lib/nope"))
    with pytest.raises(InvalidSpecError, match=r"^dependencies\[0\]: .*lib/nope is not a folder"):
        load_workload(workload)
