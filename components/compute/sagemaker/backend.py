"""SageMaker as a compute backend: the same ``TrainingJobSpec`` the local backend runs, as managed jobs.

Each call plans everything first (uploads by content digest, the full request, its deterministic
name) so bad input fails before any AWS call; then it uploads, creates or reattaches, and follows
the job. Local inputs are staged to S3 and S3 outputs fetched back when the caller asked for a
local folder, so steps need not know where the job ran.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from flywheel.components.compute.backend import (
    LogSink,
    TrainingJobSpec,
    TrainingResult,
    TransformJobSpec,
    TransformResult,
    is_line_record,
    payload_limit,
)
from flywheel.components.compute.sagemaker.clients import AwsClients
from flywheel.components.compute.sagemaker.images import resolve_image
from flywheel.components.compute.sagemaker.jobs import PROCESSING, TRAINING, TRANSFORM
from flywheel.components.compute.sagemaker.model import delete_model, ensure_model, model_request
from flywheel.components.compute.sagemaker.processing import (
    collect_outputs,
    output_prefixes,
    processing_request,
)
from flywheel.components.compute.sagemaker.remote_runner import Watch, run_job
from flywheel.components.compute.sagemaker.s3 import (
    StagedLocation,
    Stager,
    is_s3,
    parse_s3_uri,
)
from flywheel.components.compute.sagemaker.serving import (
    MODEL_CODE_DIRECTORY,
    code_in_model,
    serving_environment,
    serving_framework,
    with_serving_code,
)
from flywheel.components.compute.sagemaker.sharding import (
    ShardedInput,
    check_object_sizes,
    join_predictions,
    shard_record_files,
)
from flywheel.components.compute.sagemaker.specs import SageMakerConfig
from flywheel.components.compute.sagemaker.training import final_metrics, training_request
from flywheel.components.compute.sagemaker.transform import transform_request
from flywheel.components.contract.metrics import MetricCollector
from flywheel.components.contract.packaging import (
    MODEL_ARCHIVE,
    OUTPUT_ARCHIVE,
    code_with_dependencies,
    pack_source,
)
from flywheel.components.contract.processing import (
    RUNPROC_SCRIPT,
    ProcessingJobSpec,
    ProcessingResult,
    check_spec,
    runproc_script,
)
from flywheel.components.errors import InvalidSpecError, JobFailedError


class SageMakerBackend:
    """Training, processing and batch transform as SageMaker jobs that survive retries and stop
    on cancel."""

    name = "sagemaker"

    def __init__(
        self,
        config: SageMakerConfig,
        *,
        clients: AwsClients | None = None,
        watch: Watch | None = None,
        on_handle: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self._clients = clients
        self._watch = watch
        self._on_handle = on_handle

    @property
    def clients(self) -> AwsClients:
        # Connected on first use: checking a config (the CLI does, before a run) makes no AWS call.
        if self._clients is None:
            self._clients = AwsClients.connect(self.config.region, self.config.endpoint_url)
        return self._clients

    def _stager(self) -> Stager:
        return Stager(self.clients.s3, self.config.s3_prefix)

    def _check_shards(self, channels: dict[str, StagedLocation]) -> None:
        """ShardedByS3Key hands whole objects to hosts: fewer files than hosts leaves hosts idle."""
        hosts = self.config.instance_count
        for name in self.config.sharded_channels:
            staged = channels.get(name)
            if staged is not None and staged.uploads and len(staged.uploads) < hosts:
                raise InvalidSpecError(
                    "compute_config.sharded_channels",
                    f"channel {name!r} is {len(staged.uploads)} file(s) for {hosts} hosts; "
                    "SageMaker shards by file, so give it at least one file per host",
                )

    def train(self, spec: TrainingJobSpec, log: LogSink = print) -> TrainingResult:
        """Run ``spec`` as a training job; the model is fetched when ``output_location`` is local."""
        region = self.clients.region
        stager = self._stager()
        with tempfile.TemporaryDirectory(prefix="flywheel-sagemaker-") as scratch:
            code = stager.plan_file(pack_source(Path(spec.source_dir), Path(scratch)), "code")
            channels = {
                name: stager.plan_location(f"channels.{name}", location, f"data/{name}")
                for name, location in spec.channels.items()
            }
            self._check_shards(channels)
            request = training_request(
                spec,
                self.config,
                image=resolve_image(self.config, region, "training", self.config.instance_type),
                code=code.uri,
                channels={name: staged.uri for name, staged in channels.items()},
                region=region,
            )
            stager.upload(code, *channels.values())
        collector = MetricCollector(spec.metric_definitions)

        def observe(line: str) -> None:
            collector.observe(line)
            log(line)

        description = run_job(
            self.clients,
            TRAINING,
            request,
            log=observe,
            watch=self._watch,
            on_handle=self._on_handle,
        )
        # The attempt that ran: ``<name>-a2`` when an earlier one had failed.
        name = description["TrainingJobName"]
        model_uri = parse_s3_uri(
            "ModelArtifacts", description["ModelArtifacts"]["S3ModelArtifacts"]
        )
        model_artifact = str(model_uri)
        if not is_s3(spec.output_location):
            target = Path(spec.output_location) / name / "output" / MODEL_ARCHIVE
            model_artifact = str(stager.download_file(model_uri, target))
        log(f"[{name}] completed: {model_uri}")
        metrics = final_metrics(
            description, {m.name for m in spec.metric_definitions}, collector.final
        )
        return TrainingResult(
            job_name=name,
            model_artifact=model_artifact,
            metrics=metrics,
            output_data_artifact=self._output_data(stager, request, name, spec.output_location),
            metric_series=dict(collector.series),
        )

    @staticmethod
    def _output_data(stager: Stager, request: dict, name: str, location: str) -> str | None:
        """The job's ``output.tar.gz`` (``SM_OUTPUT_DATA_DIR``), fetched when ``location`` is local;
        None when the script wrote nothing there."""
        output_path = parse_s3_uri("S3OutputPath", request["OutputDataConfig"]["S3OutputPath"])
        uri = output_path.child(name, "output", OUTPUT_ARCHIVE)
        if not stager.exists(uri):
            return None
        if is_s3(location):
            return str(uri)
        return str(stager.download_file(uri, Path(location) / name / "output" / OUTPUT_ARCHIVE))

    def _shard(self, spec: TransformJobSpec, scratch: Path) -> ShardedInput | None:
        """Local line-record inputs cut by bytes to fit ``max_payload_mb``, spread over the instances.

        What cannot be cut is checked instead, so a request over the limit is refused here, not
        by SageMaker after training: with ``SplitType: None``, every other input object must fit.
        """
        max_bytes = payload_limit(self.config.max_payload_mb)
        if is_s3(spec.input_location):
            if spec.split_type == "None":
                check_object_sizes(self._s3_sizes(spec.input_location), max_bytes)
            return None
        source = Path(spec.input_location)
        if not source.exists():
            raise InvalidSpecError("input_location", f"{spec.input_location} does not exist")
        if not is_line_record(spec.content_type, spec.split_type):
            if spec.split_type == "None":
                files = [source] if source.is_file() else list(source.rglob("*"))
                check_object_sizes(
                    {str(p): p.stat().st_size for p in files if p.is_file()}, max_bytes
                )
            return None
        return shard_record_files(
            source,
            scratch / "shards",
            max_bytes=max_bytes,
            instances=self.config.transform_instance_count,
        )

    def _s3_sizes(self, location: str) -> dict[str, int]:
        """Each object's size under an S3 input prefix, as the transform job will read them."""
        uri = parse_s3_uri("input_location", location)
        sizes = {}
        paginator = self.clients.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=uri.bucket, Prefix=uri.key):
            for item in page.get("Contents", []):
                sizes[f"s3://{uri.bucket}/{item['Key']}"] = item["Size"]
        return sizes

    def _local_model(self, stager: Stager, model_artifact: str, scratch: Path) -> Path:
        if not is_s3(model_artifact):
            return Path(model_artifact)
        uri = parse_s3_uri("model_artifact", model_artifact)
        return stager.download_file(uri, scratch / "fetched" / MODEL_ARCHIVE)

    def transform(self, spec: TransformJobSpec, log: LogSink = print) -> TransformResult:
        """Create (or reuse) a model and run a batch transform; outputs fetched to a local folder.

        The serving code reaches the container where its framework looks for it
        (``serving.code_in_model``): inside ``model.tar.gz`` under ``code/`` for PyTorch, a
        generic image or network isolation; as ``sourcedir.tar.gz`` on S3 for scikit-learn and
        XGBoost.
        """
        repack = code_in_model(serving_framework(spec.framework, self.config), self.config)
        region = self.clients.region
        stager = self._stager()
        with tempfile.TemporaryDirectory(prefix="flywheel-sagemaker-") as scratch:
            code_folder = code_with_dependencies(
                Path(spec.source_dir), tuple(Path(d) for d in spec.dependencies), Path(scratch)
            )
            if repack:
                model_data = stager.plan_file(
                    with_serving_code(
                        self._local_model(stager, spec.model_artifact, Path(scratch)),
                        code_folder,
                        Path(scratch),
                    ),
                    "models",
                    MODEL_ARCHIVE,
                )
                code, submit_directory = None, MODEL_CODE_DIRECTORY
            else:
                model_data = (
                    stager.plan_location("model_artifact", spec.model_artifact, "models")
                    if is_s3(spec.model_artifact)
                    else stager.plan_file(Path(spec.model_artifact), "models", MODEL_ARCHIVE)
                )
                code = stager.plan_file(pack_source(code_folder, Path(scratch)), "code")
                submit_directory = str(code.uri)
            sharded = self._shard(spec, Path(scratch))
            inputs = stager.plan_location(
                "input_location",
                str(sharded.folder) if sharded else spec.input_location,
                "transform-input",
            )
            output = (
                parse_s3_uri("output_location", spec.output_location)
                if is_s3(spec.output_location)
                else self.config.s3_prefix.child("transform-output", spec.job_name)
            )
            image = resolve_image(
                self.config, region, "inference", self.config.transform_instance_type
            )
            model = model_request(
                spec.job_name,
                self.config,
                image=image,
                model_data=model_data.uri,
                environment=serving_environment(spec.entry_point, submit_directory, region),
            )
            # Built before anything is created: a refused transform leaves no model behind.
            request = transform_request(
                spec,
                self.config,
                model_name=model["ModelName"],
                input_prefix=inputs.uri,
                output_prefix=output,
            )
            stager.upload(*(staged for staged in (code, model_data, inputs) if staged))
        log(f"[{spec.job_name}] serving {spec.entry_point} from {submit_directory}")
        ensure_model(self.clients, model, log)
        try:
            description = run_job(
                self.clients,
                TRANSFORM,
                request,
                log=log,
                watch=self._watch,
                on_handle=self._on_handle,
            )
        finally:
            # The model exists only for this transform: whether the job completed, failed, was
            # refused or cancelled, nothing else will use it. A job holds its own copy of it.
            delete_model(self.clients, model["ModelName"], log)
        if not is_s3(spec.output_location):
            with tempfile.TemporaryDirectory(prefix="flywheel-sagemaker-") as scratch:
                downloaded = Path(scratch)
                if not stager.download_prefix(output, downloaded):
                    raise JobFailedError(
                        description["TransformJobName"],
                        f"completed but wrote nothing to {output}",
                    )
                if sharded:
                    join_predictions(downloaded, sharded, Path(spec.output_location))
                else:
                    shutil.copytree(downloaded, spec.output_location, dirs_exist_ok=True)
        return TransformResult(
            job_name=description["TransformJobName"], output_location=spec.output_location
        )

    def process(self, spec: ProcessingJobSpec, log: LogSink = print) -> ProcessingResult:
        """Run ``spec`` as a processing job; outputs with a local destination are fetched there.

        An output with no destination stays on S3 (under the job's name) and its URI is returned.
        """
        check_spec(spec)
        if spec.host_indexes:
            raise InvalidSpecError(
                "processing.host_index",
                "a SageMaker Processing job runs all its instances itself; give host_index only "
                "with local or eks-gpu compute (one task per host)",
            )
        region = self.clients.region
        stager = self._stager()
        with tempfile.TemporaryDirectory(prefix="flywheel-sagemaker-") as scratch:
            code = stager.plan_file(pack_source(Path(spec.source_dir), Path(scratch)), "code")
            runproc = Path(scratch) / RUNPROC_SCRIPT
            runproc.write_text(runproc_script(spec.entry_point))
            entrypoint = stager.plan_file(runproc, "code")
            inputs = {
                item.name: stager.plan_location(
                    f"processing.inputs[{index}].source", item.source, f"data/{item.name}"
                )
                for index, item in enumerate(spec.inputs)
            }
            request = processing_request(
                spec,
                self.config,
                image=resolve_image(
                    self.config, region, "training", self.config.processing_instance_type
                ),
                code=code.uri,
                entrypoint=entrypoint.uri,
                inputs={name: staged.uri for name, staged in inputs.items()},
                outputs={
                    item.name: parse_s3_uri(
                        f"processing.outputs[{index}].destination", item.destination
                    )
                    if is_s3(item.destination)
                    else None
                    for index, item in enumerate(spec.outputs)
                },
            )
            stager.upload(code, entrypoint, *inputs.values())
        description = run_job(
            self.clients,
            PROCESSING,
            request,
            log=log,
            watch=self._watch,
            on_handle=self._on_handle,
        )
        name = description[PROCESSING.name_key]
        outputs = collect_outputs(self.clients.s3, stager, spec, name, output_prefixes(request))
        log(f"[{name}] completed: {', '.join(outputs.values()) or 'no outputs'}")
        return ProcessingResult(job_name=name, outputs=outputs)
