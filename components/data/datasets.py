"""Built-in public datasets that ship inside PyPI packages, so nothing is downloaded at run time.

``chembl-CHEMBL2321810``: about 1,000 compounds with measured pIC50 from ChEMBL assay
CHEMBL2321810, shipped by the ``rdkit`` wheel for its Free-Wilson example.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow as pa

from flywheel.components.data.rows import text_table
from flywheel.components.errors import InvalidSpecError

CHEMBL_ASSAYS = ("CHEMBL2321810",)
COLUMNS = ["compound_id", "smiles", "pIC50"]


def _rdkit_data_dir() -> Path:
    try:
        import rdkit
    except ImportError:
        raise InvalidSpecError(
            "source", "built-in ChEMBL data needs rdkit: pip install 'flywheel-mlops[example]'"
        ) from None
    return Path(rdkit.__file__).parent / "Contrib" / "FreeWilson" / "data"


def load_chembl(assay: str) -> pa.Table:
    """Join the assay's SMILES file with its activity table on the compound id, in file order."""
    folder = _rdkit_data_dir()
    smiles_by_id: dict[str, str] = {}
    for line in (folder / f"{assay}.smi").read_text().splitlines():
        if line.strip():
            smiles, compound_id = line.split()[:2]
            smiles_by_id[compound_id] = smiles
    with (folder / f"{assay}_act.csv").open(newline="") as handle:
        rows = [
            {
                "compound_id": record["Name"],
                "smiles": smiles_by_id[record["Name"]],
                "pIC50": record["Act"],
            }
            for record in csv.DictReader(handle)
            if record["Name"] in smiles_by_id
        ]
    return text_table(COLUMNS, rows)


def load_builtin(name: str) -> pa.Table:
    """The built-in dataset ``name`` as a table of text columns, like a CSV read by Flywheel."""
    known = [f"chembl-{assay}" for assay in CHEMBL_ASSAYS]
    if name not in known:
        raise InvalidSpecError(
            "source", f"unknown built-in dataset {name!r}; known: {', '.join(known)}"
        )
    return load_chembl(name.removeprefix("chembl-"))
