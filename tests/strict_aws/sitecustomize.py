"""Every boto3/botocore client in the test process and its subprocesses checks its requests
against the service model (lengths, patterns, enums, list and map sizes) before sending.

moto and botocore's Stubber check only types and required members, so a request the real service
would refuse passes them. ``tests/conftest.py`` puts this folder first on ``PYTHONPATH``, so
Python runs this file at start-up in every process the tests start (kfp.local tasks, launched
steps), and imports it into the test process itself.
"""

import botocore.session

_create_client = botocore.session.Session.create_client


def _strict_create_client(self, *args, **kwargs):
    from flywheel.components.sagemaker.validation import enforce_on

    return enforce_on(_create_client(self, *args, **kwargs))


if getattr(botocore.session.Session.create_client, "__name__", "") != "_strict_create_client":
    botocore.session.Session.create_client = _strict_create_client
