"""Does nothing; a marker file (outside /opt/ml) proves whether it ran."""

import os
import pathlib

if __name__ == "__main__":
    if "MARKER" in os.environ:
        pathlib.Path(os.environ["MARKER"]).write_text("ran")
