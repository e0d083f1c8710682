"""The dev emulator as a cluster for leader election: Leases, and writes fenced by resourceVersion.

client-go's leader election reads its Lease, then renews it with an update (PUT) carrying the
resourceVersion it read; the API server refuses that write with 409 once another replica wrote
in between. The Python client's ``replace_namespaced_lease`` is the same PUT.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from flywheel.operators.emulator import EmulatorThread

NAMESPACE = "flywheel"


@pytest.fixture
def leases() -> Iterator[Any]:
    with EmulatorThread(NAMESPACE, peering=None) as cluster:
        config = kubernetes.client.Configuration()
        config.host = cluster.url
        with kubernetes.client.ApiClient(config) as client:
            yield kubernetes.client.CoordinationV1Api(client)


def _lease(holder: str) -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "flywheel-operator"},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15},
    }


def test_a_lease_is_created_read_and_renewed_with_its_resource_version(leases: Any) -> None:
    created = leases.create_namespaced_lease(NAMESPACE, _lease("pod-a"))
    read = leases.read_namespaced_lease("flywheel-operator", NAMESPACE)
    assert read.metadata.resource_version == created.metadata.resource_version
    read.spec.lease_transitions = 1
    renewed = leases.replace_namespaced_lease("flywheel-operator", NAMESPACE, read)
    assert renewed.spec.holder_identity == "pod-a"
    assert renewed.spec.lease_transitions == 1
    assert renewed.metadata.resource_version != read.metadata.resource_version
    assert renewed.metadata.uid == created.metadata.uid


def test_a_replace_with_a_stale_resource_version_is_refused_with_409(leases: Any) -> None:
    leases.create_namespaced_lease(NAMESPACE, _lease("pod-a"))
    stale = leases.read_namespaced_lease("flywheel-operator", NAMESPACE)
    fresh = leases.read_namespaced_lease("flywheel-operator", NAMESPACE)
    fresh.spec.holder_identity = "pod-b"
    leases.replace_namespaced_lease("flywheel-operator", NAMESPACE, fresh)
    stale.spec.holder_identity = "pod-a"
    with pytest.raises(ApiException) as refused:
        leases.replace_namespaced_lease("flywheel-operator", NAMESPACE, stale)
    assert refused.value.status == 409
    holder = leases.read_namespaced_lease("flywheel-operator", NAMESPACE).spec.holder_identity
    assert holder == "pod-b"


def test_a_patch_with_a_stale_resource_version_is_refused_with_409(leases: Any) -> None:
    created = leases.create_namespaced_lease(NAMESPACE, _lease("pod-a"))
    leases.patch_namespaced_lease(
        "flywheel-operator", NAMESPACE, {"spec": {"holderIdentity": "pod-b"}}
    )
    stale = {
        "metadata": {"resourceVersion": created.metadata.resource_version},
        "spec": {"holderIdentity": "pod-a"},
    }
    with pytest.raises(ApiException) as refused:
        leases.patch_namespaced_lease("flywheel-operator", NAMESPACE, stale)
    assert refused.value.status == 409


def test_a_second_create_of_one_lease_conflicts(leases: Any) -> None:
    leases.create_namespaced_lease(NAMESPACE, _lease("pod-a"))
    with pytest.raises(ApiException) as refused:
        leases.create_namespaced_lease(NAMESPACE, _lease("pod-b"))
    assert refused.value.status == 409


def test_a_replace_of_a_missing_lease_is_404(leases: Any) -> None:
    with pytest.raises(ApiException) as missing:
        leases.replace_namespaced_lease("flywheel-operator", NAMESPACE, _lease("pod-a"))
    assert missing.value.status == 404
