"""Pieces the component tests build pipelines from."""

from flywheel.components import prepare_data


def prepare_task(workload):
    """The public ``prepare_data`` task, called inside a pipeline under construction."""
    return prepare_data(
        source="builtin:chembl-CHEMBL2321810",
        workload=workload,
        batch_count=2,
        training_batches=1,
        test_fraction=0.2,
        seed=7,
        order_by="",
        source_fingerprint="",
    )
