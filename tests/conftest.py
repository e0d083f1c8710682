"""Suite-wide: every AWS client any test creates, in this process or a child, is strict.

See ``tests/strict_aws/sitecustomize.py``: requests are checked against botocore's service model
the way the real service checks them, so a lenient fake (moto, Stubber) cannot hide a request
that AWS would refuse.
"""

import importlib.util
import os
from pathlib import Path

_STRICT = Path(__file__).parent / "strict_aws"
# Child processes run it at start-up, from the front of their PYTHONPATH.
os.environ["PYTHONPATH"] = os.pathsep.join(
    part for part in (str(_STRICT), os.environ.get("PYTHONPATH", "")) if part
)
# This process started before that, and may already have another sitecustomize: load ours by path.
_spec = importlib.util.spec_from_file_location("flywheel_strict_aws", _STRICT / "sitecustomize.py")
_spec.loader.exec_module(importlib.util.module_from_spec(_spec))
