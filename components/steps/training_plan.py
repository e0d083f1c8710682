"""Plan a training run: a workload whose model nothing can score trains, registers and stops."""

# What a person reads, in the CLI and in the plan step's log, when a training-only run starts;
# the step names are the pipeline's display names.
TRAINING_ONLY = (
    "training only (serving: false, no evaluation script): "
    "evaluate, score champion and the quality gate are skipped"
)
