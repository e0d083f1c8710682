"""The README's "Compose your own pipeline" shows the very file the seed-flow tests run."""

from pathlib import Path

REPO = Path(__file__).parents[2]
EXAMPLE = REPO / "examples" / "qsar" / "processing_pipeline.py"


def test_the_readme_shows_the_composed_example_pipeline_as_it_is() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Compose your own pipeline", 1)[1]
    shown = section.split("```python\n", 1)[1].split("\n```", 1)[0]
    assert shown == EXAMPLE.read_text().rstrip("\n")
