"""Tune: search a workload's hyperparameters, as its ``tuning`` section says.

Public KFP components (``from flywheel.components import ...``). Locally and on EKS the search is
rounds of KFP tasks: ``suggest_trials`` asks Optuna for a round's trials, a ``train_model`` task
per trial runs inside ``dsl.ParallelFor(..., parallelism=max_parallel_jobs)`` (its ``metrics``
output shows the trial's metrics in the Kubeflow UI; handed the round's ``study``, its pruner
stops it while it trains), and ``record_trials`` reads each trial's objective from what its job
logged, tells the study the outcomes and carries the best model on. The study is Optuna's journal file, handed from round to round as an artifact. On
SageMaker, ``tune_on_sagemaker`` runs the whole search as one Automatic Model Tuning job.

Each component only declares typed inputs and outputs and hands paths to a plain function in
``components.steps``; failures surface as one line naming the step.
"""

from typing import List  # noqa: UP035 - KFP reads Input[List[Model]] from typing's List

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from flywheel.components.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def suggest_trials(
    workload: str,
    hyperparameters: dict,
    study: Output[Artifact],
    journal: Input[Artifact] = None,
    rounds: int = 0,
    round_size: int = 0,
) -> list:
    """Suggest a round of trials: up to ``max_parallel_jobs`` hyperparameter sets to train.

    Trials a killed round asked for and never recorded come back first; finished trials are
    never suggested again, and the search never passes ``max_jobs``.

    Args:
        workload: The workload whose ``tuning`` section is searched.
        hyperparameters: Static hyperparameters every trial keeps; searched ones are set per trial.
        journal: The study so far (the previous round's ``record_trials`` ``study``); none for
            the first round, which starts a new study.
        rounds: The rounds the pipeline was compiled for, given to its first round only: a
            search that needs more, or fewer, is refused there, before any trial runs. 0 checks
            nothing.
        round_size: The trials a compiled round runs at once (its ``parallelism``), named in
            that refusal.

    Returns:
        study: The study's Optuna journal with this round's trials asked.
        Output: The round's trials, ``[{"number": n, "hyperparameters": {...}}]``, for
            ``dsl.ParallelFor``; empty when the search is done.
    """
    from pathlib import Path

    from flywheel.components.steps.runtime import reported_step
    from flywheel.components.steps.tuning_rounds import suggest_trials as suggest

    with reported_step("suggest-trials"):
        trials = suggest(
            workload_path=workload,
            hyperparameters=hyperparameters,
            journal_in=Path(journal.path) if journal is not None else None,
            journal_out=Path(study.path),
            compiled_rounds=rounds,
            compiled_round_size=round_size,
        )
    study.metadata.update({"format": "optuna-journal", "asked": [t["number"] for t in trials]})
    for trial in trials:
        print(f"trial {trial['number']}: {trial['hyperparameters']}", flush=True)
    return trials


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def record_trials(
    workload: str,
    models: Input[List[Model]],  # noqa: UP006 - KFP reads a list of artifacts from typing
    metrics: Input[List[Metrics]],  # noqa: UP006 - KFP reads a list of artifacts from typing
    journal: Input[Artifact],
    study: Output[Artifact],
    trials: Output[Artifact],
    best: Output[Model],
    progress: Output[Metrics],
    run: str = "",
    best_so_far: Input[Model] = None,
) -> list:
    """Record a round: tell the study each trial's outcome and keep the best model so far.

    Each model is matched to its trial (the trial its task was judged as, else by the values
    searched); its objective is the final value its job logged. With early stopping, a trial its
    own task judged while it trained (``train_model`` given the ``study``) is recorded as judged:
    ``PRUNED`` at the step it was stopped at, else complete; any other is judged here, from its
    whole series. A trial recorded before (a retried round) is not told again.

    Args:
        workload: The workload whose ``tuning`` section is searched.
        models: The round's trained models (``dsl.Collected`` of ``train_model``'s ``model``).
        metrics: The round's ``train_model`` ``metrics`` (``dsl.Collected``), whose files hold
            each metric's series.
        journal: The study as this round's ``suggest_trials`` left it.
        run: The pipeline run, recorded in the tuning lineage; empty takes the run's folder
            name (a local run, cached by its inputs).
        best_so_far: The previous round's ``best``; none for the first round.

    Returns:
        study: The study's Optuna journal with the round recorded.
        trials: Every trial so far as JSON, best objective first, the best marked.
        best: The best trial's model, a ``train_model`` ``model`` whose metadata adds
            ``tuning``: the run, trial number, searched parameters and objective.
        progress: The best objective so far and the trial count (the file holds them too).
        Output: The ``trials`` rows, for the pipeline's own output.
    """
    import json
    from pathlib import Path

    from flywheel.components.steps.runtime import reported_step
    from flywheel.components.steps.tuning_rounds import TrialCurves, TrialModel
    from flywheel.components.steps.tuning_rounds import record_trials as record

    with reported_step("record-trials"):
        recorded = record(
            workload_path=workload,
            models=[TrialModel(Path(m.path), dict(m.metadata)) for m in models],
            curves=[TrialCurves.read(Path(m.path)) for m in metrics],
            journal_in=Path(journal.path),
            journal_out=Path(study.path),
            best_in=TrialModel(Path(best_so_far.path), dict(best_so_far.metadata))
            if best_so_far is not None and best_so_far.metadata.get("tuning")
            else None,
            best_out=Path(best.path),
            run=run or Path(study.path).parents[1].name,
        )
    Path(trials.path).write_text(json.dumps(recorded.trials, indent=2))
    trials.metadata["format"] = "trials.json"
    study.metadata["format"] = "optuna-journal"
    progress.log_metric("trials", len(recorded.trials))
    if recorded.best is None:
        # No trial has completed yet; a later round may still. The placeholder says so.
        Path(best.path).write_text("")
        best.metadata["empty"] = True
    else:
        best.metadata.update(recorded.best.metadata)
        tuning = recorded.best.metadata["tuning"]
        progress.log_metric("best_objective", tuning["objective"]["value"])
        progress.log_metric("best_trial", tuning["trial"])
        print(
            f"best so far: trial {tuning['trial']} {tuning['objective']['metric']}="
            f"{tuning['objective']['value']:g} {tuning['parameters']}",
            flush=True,
        )
    # A file, as every other output has: kfp.local's cache takes an entry whose output file is
    # missing for a miss, and the next round's trials are keyed by this round's study.
    Path(progress.path).write_text(json.dumps(progress.metadata))
    return recorded.trials


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def tune_on_sagemaker(
    workload: str,
    compute_config: dict,
    hyperparameters: dict,
    code_fingerprint: str,
    run_id: str,
    train: Input[Dataset],
    test: Input[Dataset],
    model: Output[Model],
    metrics: Output[Metrics],
    trials: Output[Artifact],
) -> list:
    """Tune on SageMaker: the workload's search as one Automatic Model Tuning job.

    The trials are the training job ``train_model`` runs on SageMaker. The job is created once:
    a retried task reattaches to it by its deterministic name (a new attempt only after it
    Failed or was Stopped), and a cancelled run stops it.

    Args:
        workload: The workload whose ``tuning`` section is searched.
        compute_config: The SageMaker settings, as for ``train_model`` with ``sagemaker``.
        hyperparameters: Static hyperparameters every trial keeps.
        code_fingerprint: The digest of the script folder, given so that changed code misses
            the cache.
        run_id: The pipeline run's id, part of the tuning job's name; empty (a local run,
            cached by its inputs) names the job from the request alone, so running the same
            search again reattaches to its job.
        train: The training rows (from ``prepare_data``).
        test: The held-out rows (from ``prepare_data``).

    Returns:
        model: The best trial's ``model.tar.gz``, as ``train_model`` outputs it; metadata adds
            ``tuning``: the tuning job, best training job, its parameters and objective.
        metrics: The best objective and the trial count.
        trials: Every trial as JSON, best objective first, the best marked.
        Output: The same rows, for the pipeline's own output.
    """
    import json
    from pathlib import Path

    from flywheel.components.steps.runtime import reported_step
    from flywheel.components.steps.tune_sagemaker import tune_on_sagemaker as tune

    with reported_step("tune-on-sagemaker"):
        tuned = tune(
            workload_path=workload,
            compute_config=compute_config,
            hyperparameters=hyperparameters,
            train_path=Path(train.path),
            test_path=Path(test.path),
            model_path=Path(model.path),
            run_id=run_id,
        )
    model.metadata.update({**tuned.metadata, "code_fingerprint": code_fingerprint})
    Path(trials.path).write_text(json.dumps(tuned.trials, indent=2))
    trials.metadata["format"] = "trials.json"
    metrics.log_metric("best_objective", tuned.result.objective_value)
    metrics.log_metric("trials", len(tuned.trials))
    return tuned.trials
