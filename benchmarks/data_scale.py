"""How fast does ``prepare_data`` stream a large table, and in how much memory?

Generates assay-like tables (id, SMILES, label) of 1M and 10M rows as local CSV and Parquet, then
for each runs, in a fresh process:
* ``prepare_data`` (8 ordered batches, train/test from the first 3), and
* a plain pyarrow baseline: read the whole table, write the same rows as CSV (every row once for
  the batch files, the first 3/8 once more for train and test).

Prints rows/s, peak RSS (the process's high-water mark), RSS over the Parquet file's size, and
the time over the baseline's. Targets (Parquet): at least 2M rows/s, peak RSS at most twice the
Parquet file or a bound that does not grow with rows, at most 1.5 times the baseline's time.

Run with ``.venv/bin/python benchmarks/data_scale.py [--rows 1000000 10000000]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
WORKLOAD = str(REPO / "examples" / "qsar" / "workload.yaml")
BATCH_COUNT, TRAINING_BATCHES = 8, 3
TARGET_ROWS_PER_SECOND = 2_000_000
TARGET_BASELINE_RATIO = 1.5
FRAGMENTS = np.array(["C", "CC", "O", "N", "c1ccccc1", "C(=O)", "Cl", "F", "CN", "OC"])

PEAK_RSS = (
    'int(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1)) * 1024'
)
# Each measurement runs in its own interpreter and reads its own high-water mark (VmHWM): Linux
# carries the parent's peak into a child's ru_maxrss across fork and exec, so that would mislead.
PREPARE = f"""
import json, re, sys, time
from pathlib import Path
from flywheel.components.steps.prepare import prepare_data
source, out, workload = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
start = time.perf_counter()
prepare_data(source=source, workload_path=workload, batch_count={BATCH_COUNT},
             training_batches={TRAINING_BATCHES}, test_fraction=0.2, seed=7, order_by="",
             train_path=out / "train.csv", test_path=out / "test.csv", batches_dir=out / "batches")
print(json.dumps({{"seconds": time.perf_counter() - start,
                  "rss": {PEAK_RSS}}}))
"""

BASELINE = f"""
import json, re, sys, time
from pathlib import Path
import pyarrow.csv as pa_csv, pyarrow.parquet as pq
source, out = sys.argv[1], Path(sys.argv[2])
start = time.perf_counter()
table = pq.read_table(source) if source.endswith(".parquet") else pa_csv.read_csv(source)
out.mkdir(parents=True, exist_ok=True)
pa_csv.write_csv(table, out / "all.csv")
pa_csv.write_csv(table.slice(0, table.num_rows * {TRAINING_BATCHES} // {BATCH_COUNT}), out / "seen.csv")
print(json.dumps({{"seconds": time.perf_counter() - start,
                  "rss": {PEAK_RSS}}}))
"""


def generate(rows: int, folder: Path, chunk: int = 1_000_000) -> tuple[Path, Path]:
    """An assay of ``rows`` rows as CSV and as Parquet (snappy, row groups of 1M rows)."""
    rng = np.random.default_rng(0)
    csv_path, parquet_path = folder / f"assay-{rows}.csv", folder / f"assay-{rows}.parquet"
    schema = pa.schema(
        [("compound_id", pa.string()), ("smiles", pa.string()), ("pIC50", pa.float64())]
    )
    with (
        pa_csv.CSVWriter(str(csv_path), schema) as csv_out,
        pq.ParquetWriter(str(parquet_path), schema) as parquet_out,
    ):
        for start in range(0, rows, chunk):
            size = min(chunk, rows - start)
            picks = rng.integers(0, len(FRAGMENTS), size=(size, 4))
            smiles = np.char.add(
                np.char.add(FRAGMENTS[picks[:, 0]], FRAGMENTS[picks[:, 1]]),
                np.char.add(FRAGMENTS[picks[:, 2]], FRAGMENTS[picks[:, 3]]),
            )
            table = pa.table(
                {
                    "compound_id": pa.array(
                        np.char.add("CPD", np.arange(start, start + size).astype(str))
                    ),
                    "smiles": pa.array(smiles),
                    "pIC50": pa.array(np.round(rng.normal(6.5, 1.2, size), 3)),
                },
                schema=schema,
            )
            csv_out.write_table(table)
            parquet_out.write_table(table)
    return csv_path, parquet_path


def measure(script: str, *arguments: str) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-c", script, *arguments], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument(
        "--workdir", type=Path, default=None, help="scratch folder (default: a temp dir)"
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="flywheel-data-scale-", dir=args.workdir) as scratch:
        folder = Path(scratch)
        print(
            f"{'rows':>11} {'format':>8} {'file MB':>8} {'prepare s':>9} {'rows/s':>11} "
            f"{'peak RSS MB':>11} {'RSS/parquet':>11} {'pyarrow s':>9} {'pyarrow RSS MB':>14} {'ratio':>6}"
        )
        for rows in args.rows:
            csv_path, parquet_path = generate(rows, folder)
            parquet_size = parquet_path.stat().st_size
            for source in (parquet_path, csv_path):
                prepared = measure(PREPARE, str(source), str(folder / "prepared"), WORKLOAD)
                plain = measure(BASELINE, str(source), str(folder / "plain"))
                print(
                    f"{rows:>11,} {source.suffix[1:]:>8} {source.stat().st_size / 1e6:>8.0f} "
                    f"{prepared['seconds']:>9.2f} {rows / prepared['seconds']:>11,.0f} "
                    f"{prepared['rss'] / 1e6:>11.0f} {prepared['rss'] / parquet_size:>11.2f} "
                    f"{plain['seconds']:>9.2f} {plain['rss'] / 1e6:>14.0f} "
                    f"{prepared['seconds'] / plain['seconds']:>6.2f}",
                    flush=True,
                )
            csv_path.unlink()
            parquet_path.unlink()
        print(
            f"targets (parquet): >= {TARGET_ROWS_PER_SECOND:,} rows/s, peak RSS <= 2x the Parquet "
            f"file or bounded, <= {TARGET_BASELINE_RATIO}x plain pyarrow"
        )


if __name__ == "__main__":
    main()
