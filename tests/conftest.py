"""Suite-wide: every AWS client any test creates, in this process or a child, is strict.

See ``tests/strict_aws/sitecustomize.py``: requests are checked against botocore's service model
the way the real service checks them, so a lenient fake (moto, Stubber) cannot hide a request
that AWS would refuse.
"""

import os
import sys
from pathlib import Path

_STRICT = str(Path(__file__).parent / "strict_aws")
os.environ["PYTHONPATH"] = os.pathsep.join(
    part for part in (_STRICT, os.environ.get("PYTHONPATH", "")) if part
)
sys.path.insert(0, _STRICT)
import sitecustomize  # noqa: E402,F401 - applies the strict client patch in this process
