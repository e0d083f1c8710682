"""``python -m flywheel.operators``: run the retraining operator against the current kubeconfig.

``--dev`` runs it against a local world instead, for trying it as a new user would: the
Kubernetes emulator (kmock), the KFP API stand-in with a pipeline named ``flywheel-training`` (the one the sample policy names), and moto for
CloudWatch and S3, all on 127.0.0.1. It writes a kubeconfig for kubectl and prints what to do.
``--dev`` needs the dev extra: ``pip install -e '.[dev]'``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import boto3
import kopf

from flywheel.operators import leadership, metrics

SAMPLE_BUCKET = "flywheel-feature-lake"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m flywheel.operators",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--dev", action="store_true", help="run against a local emulator, KFP stand-in and moto"
    )
    parser.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="namespace to watch (repeatable); all namespaces if omitted",
    )
    parser.add_argument(
        "--kfp-host",
        default=None,
        help="KFP API endpoint (default: $KF_PIPELINES_ENDPOINT or in-cluster)",
    )
    parser.add_argument(
        "--metrics-port", type=int, default=None, help="serve Prometheus /metrics on this port"
    )
    parser.add_argument(
        "--standalone",
        action="store_true",
        help="act without leader election: only for a single replica (refused when "
        "FLYWHEEL_REPLICAS > 1)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


@contextlib.contextmanager
def _dev_world(workdir: Path) -> Iterator[dict[str, str]]:
    """Start the local stand-ins; yields the environment the operator should run with."""
    from moto.server import ThreadedMotoServer

    from flywheel.operators import dev_serving
    from flywheel.operators.emulator import EmulatorThread, write_kubeconfig
    from flywheel.operators.kfp_standin import KfpStandIn

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    try:
        with EmulatorThread() as cluster, KfpStandIn(finish_after_seconds=30) as kfp:
            kfp.add_pipeline("flywheel-training", "v1")
            kfp.add_pipeline(dev_serving.DEPLOY_PIPELINE, "v1")
            kfp.executor = dev_serving.run_deploy_task
            host, port = moto.get_host_and_port()
            # The registry reads credentials from the environment; these are moto's.
            with mock.patch.dict(
                os.environ, {"AWS_ACCESS_KEY_ID": "dev", "AWS_SECRET_ACCESS_KEY": "dev"}
            ):
                dev_serving.seed(f"http://{host}:{port}")
            # The sample policy watches this bucket; an empty one reads as "no new data yet".
            boto3.client(
                "s3",
                region_name="us-east-1",
                endpoint_url=f"http://{host}:{port}",
                aws_access_key_id="dev",
                aws_secret_access_key="dev",
            ).create_bucket(Bucket=SAMPLE_BUCKET)
            kubeconfig = write_kubeconfig(workdir / "kubeconfig", cluster.url)
            yield {
                "KUBECONFIG": str(kubeconfig),
                "KF_PIPELINES_ENDPOINT": kfp.url,
                "AWS_ENDPOINT_URL": f"http://{host}:{port}",
                "AWS_ACCESS_KEY_ID": "dev",
                "AWS_SECRET_ACCESS_KEY": "dev",
                "AWS_DEFAULT_REGION": "us-east-1",
            }
    finally:
        moto.stop()


def _dev_help(env: dict[str, str]) -> str:
    """What to do next in dev mode, with this world's addresses."""
    from flywheel.operators.dev_serving import MODEL, registry_uri

    root = Path(__file__).resolve().parent.parent
    registry = registry_uri(env["AWS_ENDPOINT_URL"])
    return f"""
Flywheel retraining operator, dev mode. In another shell:

  export KUBECONFIG={env["KUBECONFIG"]}
  export AWS_ENDPOINT_URL={env["AWS_ENDPOINT_URL"]} AWS_ACCESS_KEY_ID=dev \\
         AWS_SECRET_ACCESS_KEY=dev AWS_DEFAULT_REGION=us-east-1
  kubectl apply -f {root / "manifests/policies/retrainpolicy-sample.yaml"}
  kubectl annotate rp churn-model flywheel.dev/run-nonce="$(date +%s)" --overwrite
  kubectl get rp churn-model -o yaml      # status: conditions, triggers, active, recentRuns

  # Serving: churn-model versions 1 and 2 are registered, PendingManualApproval.
  kubectl apply -f {root / "manifests/deployments/modeldeployment-sample.yaml"}
  export FLYWHEEL_DEV_REGISTRY='{registry}'
  flywheel approve {MODEL} 1 --note "looks good" --registry "$FLYWHEEL_DEV_REGISTRY"
  kubectl get md churn-model -w           # staging deploys 1; prod waits for its soak, then you:
  kubectl annotate md churn-model flywheel.dev/approve.prod=1 --overwrite

KFP stand-in (pipeline "flywheel-training", runs succeed after 30 s; "flywheel-deployment" runs
deploy_endpoint on moto): {env["KF_PIPELINES_ENDPOINT"]}
Press Ctrl+C to stop.
"""


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.standalone and leadership.replicas_from_environment() > 1:
        parser.error(
            f"--standalone: FLYWHEEL_REPLICAS={leadership.replicas_from_environment()}, and "
            "replicas without leader election would all act; drop --standalone or run one replica"
        )
    try:
        timing = leadership.Timing.from_environment()
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # the emulator's, in --dev
    if args.kfp_host:
        os.environ["KF_PIPELINES_ENDPOINT"] = args.kfp_host
    if args.metrics_port:
        metrics.serve(args.metrics_port)
    namespaces = args.namespace
    with contextlib.ExitStack() as stack:
        if args.dev:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="flywheel-")))
            env = stack.enter_context(_dev_world(workdir))
            os.environ.update(env)
            namespaces = namespaces or ["default"]
            print(_dev_help(env), flush=True)
        # Imported here: the handlers' settings read the environment prepared above.
        import flywheel.operators.handlers  # noqa: F401 - registers the handlers with kopf

        if not args.standalone:
            _lead(namespaces, timing)
        # kopf's own peering stays off: the Lease decides which replica acts.
        kopf.run(clusterwide=not namespaces, namespaces=namespaces, standalone=True)


def _lead(namespaces: list[str], timing: leadership.Timing) -> None:
    """Stand by until this replica holds the Lease; from then on it renews it, and exits when it
    cannot (the pod restarts and stands by)."""
    import kubernetes

    from flywheel.operators.kube import client_from_environment

    elector = leadership.Elector(
        kubernetes.client.CoordinationV1Api(client_from_environment()),
        namespace=leadership.lease_namespace(namespaces),
        name=leadership.lease_name(),
        me=leadership.identity(),
        timing=timing,
    )
    leadership.install(elector)
    elector.acquire()


if __name__ == "__main__":
    main()
