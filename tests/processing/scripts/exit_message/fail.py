"""Fails on algo-1 the SageMaker way (an exit message, then a non-zero status); other hosts wait.

A host still waiting when algo-1 fails shows that the job stops the rest of the cluster.
"""

import json
import pathlib
import sys
import time

if __name__ == "__main__":
    host = json.loads(pathlib.Path("/opt/ml/config/resourceconfig.json").read_text())[
        "current_host"
    ]
    if host != "algo-1":
        time.sleep(120)
        sys.exit(0)
    print("reading the rows")
    pathlib.Path("/opt/ml/output/message").write_text("column 'rings' is missing from abalone.csv")
    print("some noise after the message")
    sys.exit(3)
