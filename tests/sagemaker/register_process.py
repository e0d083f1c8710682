"""One registration in a process of its own, started on a signal, for the registry's race tests.

Usage: ``python register_process.py <endpoint_url> <model> <ready file> <go file> <result file>
[--name N] [--slow-create S] [--stale-after S] [--poll S]``.

The process builds its own clients, writes ``<ready file>``, and registers the moment ``<go file>``
appears, so two of them look at the registry together. ``--slow-create`` holds the
CreateModelPackage request back for S seconds (a botocore hook, here, not in product code): the
caller has looked and found no package, and another caller has time to look too. The result,
``{"version", "created", "arn"}``, goes to ``<result file>``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from flywheel.components.compute.sagemaker.clients import AwsClients
from flywheel.components.compute.sagemaker.registry import SageMakerModelRegistry
from flywheel.components.compute.sagemaker.s3 import S3Uri

BUCKET = "flywheel-registry"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("endpoint_url", "model", "ready", "go", "result"):
        parser.add_argument(name)
    parser.add_argument("--name", default="race")
    parser.add_argument("--slow-create", type=float, default=0.0)
    parser.add_argument("--stale-after", type=float)
    parser.add_argument("--poll", type=float)
    arguments = parser.parse_args()

    clients = AwsClients.connect("us-east-1", arguments.endpoint_url)
    if arguments.slow_create:
        clients.sagemaker.meta.events.register(
            "before-call.sagemaker.CreateModelPackage",
            lambda **_: time.sleep(arguments.slow_create),
        )
    timing = {
        option: getattr(arguments, option)
        for option in ("stale_after", "poll")
        if getattr(arguments, option) is not None
    }
    extra = {}
    if timing:
        from flywheel.components.compute.sagemaker.claims import ClaimTiming

        extra["timing"] = ClaimTiming(**timing)
    registry = SageMakerModelRegistry(clients, S3Uri(BUCKET, "models"), image=IMAGE, **extra)
    Path(arguments.ready).touch()
    go = Path(arguments.go)
    while not go.exists():
        time.sleep(0.005)
    registration = registry.register(
        arguments.name, arguments.model, metrics={"rmse": 0.5}, hyperparameters={}, lineage={}
    )
    Path(arguments.result).write_text(
        json.dumps(
            {
                "version": registration.version.version,
                "created": registration.created,
                "arn": registration.version.lineage["model_package_arn"],
            }
        )
    )


if __name__ == "__main__":
    main()
