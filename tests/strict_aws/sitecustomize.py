"""Every boto3/botocore client in the test process and its subprocesses checks its requests
against the service model (lengths, patterns, enums, list and map sizes) before sending.

moto and botocore's Stubber check only types and required members, so a request the real service
would refuse passes them. ``tests/conftest.py`` puts this folder first on ``PYTHONPATH``, so
Python runs this file at start-up in every process the tests start (kfp.local tasks, launched
steps), and imports it into the test process itself.

botocore is patched when it is first imported, not here: a process that never talks to AWS (say,
``flywheel --help``) must not load it, and a test asserts exactly that.
"""

import importlib.abc
import importlib.machinery
import sys

_SESSION = "botocore.session"


def _make_strict(session_module) -> None:
    original = session_module.Session.create_client
    if getattr(original, "__name__", "") == "_strict_create_client":
        return

    def _strict_create_client(self, *args, **kwargs):
        from flywheel.components.compute.sagemaker.validation import enforce_on

        return enforce_on(original(self, *args, **kwargs))

    session_module.Session.create_client = _strict_create_client


class _StrictOnImport(importlib.abc.MetaPathFinder):
    """Finds ``botocore.session`` as usual, and makes it strict once it has run."""

    def find_spec(self, name, path, target=None):
        if name != _SESSION:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module) -> None:
            run(module)
            _make_strict(module)

        spec.loader.exec_module = exec_module
        return spec


if _SESSION in sys.modules:
    _make_strict(sys.modules[_SESSION])
elif not any(isinstance(finder, _StrictOnImport) for finder in sys.meta_path):
    sys.meta_path.insert(0, _StrictOnImport())
