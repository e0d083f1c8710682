"""Processing: run your own preprocessing or evaluation script under SageMaker Processing's contract.

Public KFP components (``from flywheel.components import run_processing``). The script runs
unchanged locally, as a SageMaker Processing job and in an EKS pod: inputs at
``/opt/ml/processing/input/<name>``, outputs collected from their folders, arguments as argv.
``run_sharded_processing`` runs one task per host (one pod each on EKS) and ``merge_outputs``
joins their outputs.
"""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output, PipelineTask

from flywheel.components.errors import InvalidSpecError
from flywheel.components.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def run_processing(
    source_dir: str,
    entry_point: str,
    outputs: Output[Dataset],
    compute: str = "local",
    compute_config: dict = {},  # noqa: B006 - KFP defaults are compiled, never mutated
    inputs: dict = {},  # noqa: B006
    output_names: list = ["output"],  # noqa: B006
    local_paths: dict = {},  # noqa: B006
    arguments: list = [],  # noqa: B006
    environment: dict = {},  # noqa: B006
    instance_count: int = 1,
    host_index: int = -1,
    code_fingerprint: str = "",
    data: Input[Dataset] = None,
    model: Input[Model] = None,
):
    """Run a SageMaker Processing script on ``compute`` and collect every output it writes.

    The script (``entry_point`` in ``source_dir``, with a ``requirements.txt`` installed for this job
    only) runs as the SageMaker Python SDK's FrameworkProcessor runs it, on every backend.

    Args:
        source_dir: Folder holding the script and its helpers (packed as ``sourcedir.tar.gz``), a
            code bundle's ``s3://`` URI (``flywheel bundle``) or a packaged example
            (``builtin:qsar``).
        entry_point: The script to run, relative to ``source_dir``.
        compute: Where the job runs: ``local``, ``sagemaker`` or ``eks-gpu``.
        compute_config: The backend's settings (for SageMaker: role, S3 prefix, instance type).
        inputs: Input name to a local path or ``s3://`` prefix, or to a mapping with ``source``,
            ``local_path`` (under ``/opt/ml/processing``) and ``distribution``
            (``FullyReplicated`` or ``ShardedByS3Key``).
        output_names: The outputs to collect; each is read from ``/opt/ml/processing/output/<name>``
            unless ``local_paths`` names another folder.
        local_paths: Input or output name to its ``LocalPath``, including ``data`` and ``model``.
        arguments: The script's command-line arguments (``ContainerArguments``).
        environment: Environment variables of the job.
        instance_count: Hosts to run on; a ``ShardedByS3Key`` input gives each its own objects.
        host_index: Run only this host (0-based) of ``instance_count``, as one task per host does
            (``run_sharded_processing``; on EKS each is a pod); -1 runs every host in this task.
        code_fingerprint: Digest of the script folder, given so that changed code misses the cache.
        data: Optional dataset at ``/opt/ml/processing/input/data`` unless ``local_paths`` says; a
            single file is named after that folder (``.../test`` holds ``test.csv``).
        model: Optional model (from ``train_model``), as ``model.tar.gz`` in
            ``/opt/ml/processing/model`` unless ``local_paths`` says.

    Returns:
        outputs: One folder per name in ``output_names``, holding what the script wrote there
            (from every host); metadata ``job_name``, ``compute``, ``code_sha256``, ``outputs``.
    """
    import tempfile
    from pathlib import Path

    from flywheel.components.contract.processing import PROCESSING_ROOT
    from flywheel.components.steps import process
    from flywheel.components.steps.runtime import reported_step

    with reported_step("run-processing"), tempfile.TemporaryDirectory() as scratch:
        given = dict(inputs)
        for name, value in local_paths.items():
            if name in given and name not in output_names:
                entry = {"source": given[name]} if isinstance(given[name], str) else given[name]
                given[name] = {**entry, "local_path": value}
        staged = list(process.parse_inputs(given))
        if data is not None:
            path = local_paths.get("data", f"{PROCESSING_ROOT}/input/data")
            staged.append(
                process.artifact_input(
                    "data", Path(data.path), path, Path(scratch), f"{Path(path).name}.csv"
                )
            )
        if model is not None:
            path = local_paths.get("model", f"{PROCESSING_ROOT}/model")
            staged.append(
                process.artifact_input(
                    "model", Path(model.path), path, Path(scratch), "model.tar.gz"
                )
            )
        processed = process.run_processing(
            source_dir=source_dir,
            entry_point=entry_point,
            compute=compute,
            compute_config=compute_config,
            inputs=staged,
            outputs=process.parse_outputs({n: local_paths.get(n, "") for n in output_names}),
            outputs_dir=Path(outputs.path),
            arguments=[str(a) for a in arguments],
            environment={str(k): str(v) for k, v in environment.items()},
            instance_count=instance_count,
            host_indexes=() if host_index < 0 else (host_index,),
            job_prefix=Path(entry_point).stem.replace("_", "-"),
        )
    outputs.metadata.update(
        {
            "job_name": processed.job_name,
            "compute": compute,
            "code_sha256": processed.code_sha256,
            "code_fingerprint": code_fingerprint,
            "outputs": sorted(processed.outputs),
            "hosts": instance_count if host_index < 0 else [host_index],
        }
    )


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def merge_outputs(parts: Input[list[Dataset]], outputs: Output[Dataset]):
    """Merge the outputs of one processing job's hosts, run as one task each, into one dataset.

    SageMaker uploads every instance's output folder to the same S3 prefix; this does the same for
    hosts that ran as separate tasks (``run_sharded_processing``): files are merged by their path,
    a later host's file replacing an earlier one's of the same path.

    Args:
        parts: Each host's ``outputs`` (``dsl.Collected`` over the hosts' ``run_processing``).

    Returns:
        outputs: One folder per output name, holding the files of every host; metadata ``hosts``.
    """
    from pathlib import Path

    from flywheel.components.steps.process import merge_folders
    from flywheel.components.steps.runtime import reported_step

    with reported_step("merge-outputs"):
        merge_folders([Path(part.path) for part in parts], Path(outputs.path))
    outputs.metadata["hosts"] = len(parts)


def run_sharded_processing(instance_count: int, **arguments: object) -> PipelineTask:
    """One ``run_processing`` task per host, then ``merge_outputs``; call it inside a pipeline.

    The hosts form a ``dsl.ParallelFor``, so on EKS each is a pod of its own, placed by KFP, and
    locally each is a process; each sees only its share of a ``ShardedByS3Key`` input and a
    ``resourceconfig.json`` naming it among all ``instance_count`` hosts, as on SageMaker.
    ``arguments`` are ``run_processing``'s. Returns the merge task: its ``outputs`` output is
    what one ``run_processing`` with every host would give.
    """
    if not isinstance(instance_count, int) or instance_count < 1:
        raise InvalidSpecError(
            "instance_count",
            f"must be a whole number >= 1 known when the pipeline is defined, "
            f"got {instance_count!r}",
        )
    with dsl.ParallelFor(list(range(instance_count)), name="hosts") as host:
        shard = run_processing(instance_count=instance_count, host_index=host, **arguments)
    return merge_outputs(parts=dsl.Collected(shard.outputs["outputs"]))
