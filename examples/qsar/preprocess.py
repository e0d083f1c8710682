"""QSAR preprocessing: clean a raw assay table before training, as a SageMaker Processing script.

It imports nothing from Flywheel and follows SageMaker Processing's contract, so it runs unchanged
locally, as a SageMaker Processing job and in an EKS pod:

* input:     every CSV file in /opt/ml/processing/input/data (columns compound_id, smiles, pIC50)
* output:    /opt/ml/processing/output/data/compounds.csv
* arguments: --min-pic50 (drop weaker measurements), --keep-duplicates
* failure:   /opt/ml/output/message, one line, before exiting non-zero (SageMaker's ExitMessage)

Rows whose SMILES RDKit cannot parse or whose pIC50 is missing are dropped; a compound measured
more than once (the same canonical SMILES) keeps the mean of its measurements.
"""

import argparse
import csv
from collections import defaultdict
from pathlib import Path

from rdkit import Chem, RDLogger

RDLogger.DisableLog("rdApp.*")
INPUT_DIR = Path("/opt/ml/processing/input/data")
OUTPUT_FILE = Path("/opt/ml/processing/output/data/compounds.csv")
MESSAGE_FILE = Path("/opt/ml/output/message")


def read_rows(folder: Path) -> list[dict]:
    rows = []
    for path in sorted(folder.glob("*.csv")):
        with path.open(newline="") as handle:
            rows.extend(csv.DictReader(handle))
    if not rows:
        raise ValueError(f"no CSV rows in {folder}")
    return rows


def clean(rows: list[dict], min_pic50: float, keep_duplicates: bool) -> list[dict]:
    measured: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for row in rows:
        molecule = Chem.MolFromSmiles(row.get("smiles") or "")
        value = (row.get("pIC50") or "").strip()
        if molecule is None or not value or float(value) < min_pic50:
            continue
        measured[Chem.MolToSmiles(molecule)].append((row["compound_id"], float(value)))
    cleaned = []
    for smiles, values in sorted(measured.items()):
        kept = (
            values if keep_duplicates else [(values[0][0], sum(v for _, v in values) / len(values))]
        )
        cleaned += [{"compound_id": cid, "smiles": smiles, "pIC50": f"{v:.4f}"} for cid, v in kept]
    return cleaned


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--min-pic50", type=float, default=0.0)
    parser.add_argument("--keep-duplicates", action="store_true")
    args = parser.parse_args()
    rows = read_rows(INPUT_DIR)
    cleaned = clean(rows, args.min_pic50, args.keep_duplicates)
    OUTPUT_FILE.parent.mkdir(parents=True, exist_ok=True)
    with OUTPUT_FILE.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["compound_id", "smiles", "pIC50"])
        writer.writeheader()
        writer.writerows(cleaned)
    print(f"kept {len(cleaned)} of {len(rows)} rows", flush=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as error:
        MESSAGE_FILE.parent.mkdir(parents=True, exist_ok=True)
        MESSAGE_FILE.write_text(f"{type(error).__name__}: {error}")
        raise
