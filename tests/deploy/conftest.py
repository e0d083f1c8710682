"""Deployment tests import their helpers by file name (``deploy_checks``).

With ``--import-mode=importlib`` a test folder is not on ``sys.path``, and an installed package
named ``tests`` would shadow this repository's, so the folder is added here.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
