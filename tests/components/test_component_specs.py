"""Every public component documents itself, and its compiled spec is what the code compiles to.

The docstring is the component's manual: KFP parses its Google-style ``Args:`` and ``Returns:``
into the spec's input and output descriptions, and the Kubeflow UI shows them.
"""

# No ``from __future__ import annotations``: KFP reads the components' annotations as types.
from pathlib import Path

import pytest
import yaml
from kfp import components as kfp_components
from kfp import dsl

from flywheel import components
from flywheel.pipelines.compile import COMPONENT_DIR, compile_components, public_components

IMAGES = {"RUNTIME_IMAGE", "GPU_RUNTIME_IMAGE"}
# Adds components to a pipeline (one task per host and a merge) rather than being one.
PIPELINE_BUILDERS = {"run_sharded_processing"}
PUBLIC = public_components()


def _compiled(name: str) -> Path:
    path = COMPONENT_DIR / f"{name}.yaml"
    assert path.is_file(), f"{path} is missing: run `flywheel compile`"
    return path


def _signature(spec_part) -> dict[str, tuple]:
    return {
        name: (
            io.type,
            io.is_artifact_list,
            getattr(io, "default", None),
            getattr(io, "optional", None),
        )
        for name, io in (spec_part or {}).items()
    }


def test_every_export_but_the_images_and_pipeline_builders_is_a_component() -> None:
    assert set(components.__all__) - IMAGES - PIPELINE_BUILDERS == set(PUBLIC)
    for name in IMAGES:
        assert isinstance(getattr(components, name), str)
    for name in PIPELINE_BUILDERS:
        builder = getattr(components, name)
        assert callable(builder) and not hasattr(builder, "component_spec")
        assert builder.__doc__


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_component_describes_itself_and_every_input_and_output(name: str) -> None:
    spec = PUBLIC[name].component_spec
    assert spec.description and spec.description.strip()
    undocumented = [
        f"{kind} {io_name!r}"
        for kind, part in (("input", spec.inputs), ("output", spec.outputs))
        for io_name, io in (part or {}).items()
        if not (io.description or "").strip()
    ]
    assert not undocumented, (
        f"{name}: add {', '.join(undocumented)} to the docstring "
        "(inputs under Args:, Output[...] artifacts and return values under Returns:)"
    )


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("components")
    compile_components(folder)
    return folder


def test_compiled_specs_are_exactly_what_the_code_compiles_to(fresh: Path) -> None:
    expected = {path.name: path.read_bytes() for path in fresh.glob("*.yaml")}
    committed = {path.name: path.read_bytes() for path in COMPONENT_DIR.glob("*.yaml")}
    assert sorted(committed) == sorted(expected), "run `flywheel compile`"
    stale = [name for name in expected if committed[name] != expected[name]]
    assert not stale, f"out of date: {stale}; run `flywheel compile`"


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_compiled_spec_carries_the_docstring_descriptions_the_ui_shows(name: str) -> None:
    spec = PUBLIC[name].component_spec
    expected = {
        f"{section}.{io_name}": io.description
        for section, part in (
            ("inputDefinitions", spec.inputs),
            ("outputDefinitions", spec.outputs),
        )
        for io_name, io in (part or {}).items()
    }
    ir = yaml.safe_load(_compiled(name).read_text())
    definitions = ir["components"][f"comp-{name.replace('_', '-')}"]
    compiled = {
        f"{section}.{io_name}": io.get("description")
        for section in ("inputDefinitions", "outputDefinitions")
        for kind in ("parameters", "artifacts")
        for io_name, io in definitions.get(section, {}).get(kind, {}).items()
    }
    assert compiled == expected
    assert all(compiled.values())


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_compiled_spec_loads_with_the_same_interface_as_the_python_component(name: str) -> None:
    loaded = kfp_components.load_component_from_file(str(_compiled(name)))
    spec = PUBLIC[name].component_spec
    assert loaded.name == PUBLIC[name].name
    assert _signature(loaded.component_spec.inputs) == _signature(spec.inputs)
    assert _signature(loaded.component_spec.outputs) == _signature(spec.outputs)


def test_kfp_takes_output_descriptions_from_returns_not_args() -> None:
    # Why the convention puts ``Output[...]`` artifacts under ``Returns:``: KFP 2.17 reads output
    # descriptions only from that section, and an output listed under ``Args:`` shows none.
    def documented(size: int, data: dsl.Output[dsl.Dataset], model: dsl.Output[dsl.Model]):
        """Make things.

        Args:
            size: How many.
            data: Listed with the inputs.

        Returns:
            model: Listed with the outputs.
        """

    spec = dsl.component(documented, base_image="python:3.11").component_spec
    assert spec.description == "Make things."
    assert spec.inputs["size"].description == "How many."
    assert spec.outputs["model"].description == "Listed with the outputs."
    assert spec.outputs["data"].description is None
