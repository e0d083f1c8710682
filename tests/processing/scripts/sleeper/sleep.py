"""Records its process id where the test can read it, then sleeps until it is stopped."""

import json
import os
import pathlib
import time

if __name__ == "__main__":
    host = json.loads(pathlib.Path("/opt/ml/config/resourceconfig.json").read_text())[
        "current_host"
    ]
    folder = pathlib.Path(os.environ["PID_FOLDER"])
    (folder / f"{host}.partial").write_text(str(os.getpid()))
    (folder / f"{host}.partial").rename(folder / f"{host}.pid")
    time.sleep(120)
