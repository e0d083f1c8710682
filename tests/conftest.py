"""Suite-wide: every AWS client any test creates, in this process or a child, is strict.

See ``tests/strict_aws/sitecustomize.py``: requests are checked against botocore's service model
the way the real service checks them, so a lenient fake (moto, Stubber) cannot hide a request
that AWS would refuse.
"""

import importlib.util
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

_STRICT = Path(__file__).parent / "strict_aws"
# Child processes run it at start-up, from the front of their PYTHONPATH.
os.environ["PYTHONPATH"] = os.pathsep.join(
    part for part in (str(_STRICT), os.environ.get("PYTHONPATH", "")) if part
)
# This process started before that, and may already have another sitecustomize: load ours by path.
_spec = importlib.util.spec_from_file_location("flywheel_strict_aws", _STRICT / "sitecustomize.py")
_spec.loader.exec_module(importlib.util.module_from_spec(_spec))


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A moto server on a free port of 127.0.0.1 for the whole session; yields its endpoint URL."""
    # The server's access log is noise, and werkzeug would bind it to whichever test's stderr
    # was open first; the tests read stderr for the one line a user sees.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
