"""An abalone-like dataset, made here, as the public abalone ``preprocessing.py`` reads it.

UCI's abalone file is what SageMaker's examples download (``abalone-dataset.csv``): headerless,
nine columns, ``sex`` (M, F or I) then seven measurements, then ``rings``. These rows are not that
data; they only have its shape and rough proportions (the sizes grow together, and an older
abalone is a larger one), so that a regressor on them learns something. Seeded: the same rows on
every machine.
"""

from __future__ import annotations

import random
from pathlib import Path

FILE_NAME = "abalone-dataset.csv"
COLUMNS = (
    "sex",
    "length",
    "diameter",
    "height",
    "whole_weight",
    "shucked_weight",
    "viscera_weight",
    "shell_weight",
    "rings",
)
SEXES = "MFI"


def abalone_rows(rows: int = 200, seed: int = 20240620) -> list[tuple[str, ...]]:
    """``rows`` records of :data:`COLUMNS`, each sex in turn so all three always appear."""
    rng = random.Random(seed)
    records = []
    for index in range(rows):
        sex = SEXES[index % len(SEXES)]
        # Infants are smaller, as in the real data.
        length = rng.uniform(0.1, 0.5) if sex == "I" else rng.uniform(0.3, 0.8)
        whole = 6 * length**3 * rng.uniform(0.85, 1.15)
        rings = max(1, min(29, round(2 + 16 * length + rng.gauss(0, 1.5))))
        values = (
            length,
            length * rng.uniform(0.75, 0.85),
            length * rng.uniform(0.3, 0.38),
            whole,
            whole * rng.uniform(0.38, 0.46),
            whole * rng.uniform(0.18, 0.24),
            whole * rng.uniform(0.26, 0.34),
        )
        records.append((sex, *(f"{value:.4f}" for value in values), str(rings)))
    return records


def write_abalone_csv(folder: Path, rows: int = 200, seed: int = 20240620) -> Path:
    """``folder/abalone-dataset.csv``: headerless, no index, as the script reads it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / FILE_NAME
    path.write_text("".join(",".join(row) + "\n" for row in abalone_rows(rows, seed)))
    return path
