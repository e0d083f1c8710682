"""A processing script that reports what the container contract showed it.

Written as a SageMaker Processing script: it finds everything at /opt/ml, and writes one report
per host into every output folder that processingjobconfig.json names.
"""

import json
import os
import pathlib
import sys

CONFIG = pathlib.Path("/opt/ml/config")

if __name__ == "__main__":
    job = json.loads((CONFIG / "processingjobconfig.json").read_text())
    resources = json.loads((CONFIG / "resourceconfig.json").read_text())
    inputs = {}
    for item in job["ProcessingInputs"]:
        folder = pathlib.Path(item["S3Input"]["LocalPath"])
        inputs[item["InputName"]] = sorted(
            str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()
        )
    report = {
        "script": sys.argv[0],
        "argv": sys.argv[1:],
        "cwd": os.getcwd(),
        "environment": dict(os.environ),
        "job_config": job,
        "resource_config": resources,
        "inputs": inputs,
        "output_exists": pathlib.Path("/opt/ml/output").is_dir(),
    }
    for output in job["ProcessingOutputConfig"]["Outputs"]:
        folder = pathlib.Path(output["S3Output"]["LocalPath"])
        (folder / f"{resources['current_host']}.json").write_text(json.dumps(report, indent=2))
    print(f"probe on {resources['current_host']} saw {sum(map(len, inputs.values()))} files")
