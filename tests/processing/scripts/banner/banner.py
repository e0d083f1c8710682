"""Needs pyfiglet, which only its requirements.txt brings; writes the banner and where pyfiglet was."""

import pathlib

import pyfiglet

if __name__ == "__main__":
    out = pathlib.Path("/opt/ml/processing/output/banner")
    (out / "banner.txt").write_text(pyfiglet.Figlet().renderText("flywheel"))
    (out / "pyfiglet_path.txt").write_text(pyfiglet.__file__)
