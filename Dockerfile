# The runtime image of every Flywheel component and of the operator:
#   docker build -t ghcr.io/flywheel-mlops/runtime-python3.11:0.1.0 .
# and the one EKS GPU training pods use (torch with CUDA, several GB):
#   docker build --build-arg EXTRAS=example,gpu,tracking,managed-mlflow \
#     -t ghcr.io/flywheel-mlops/runtime-python3.11-gpu:0.1.0 .
# Components are KFP lightweight components with install_kfp_package=False, so everything they
# import (kfp, Flywheel, the example workload's libraries) must already be in this image.
FROM python:3.11-slim
# The example's libraries; Optuna for the tuning pipeline's suggest and record tasks; MLflow and
# AWS's plugin for it, so a task tracks to a server or SageMaker's managed MLflow.
ARG EXTRAS=example,tuning,tracking,managed-mlflow

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
# The folders install as one namespace, flywheel.*; the example workload ships inside it
# (builtin:qsar), so the working folder holds nothing Python could import by accident.
COPY components ./components
COPY pipelines ./pipelines
COPY operators ./operators
COPY examples ./examples
# sagemaker-training (the toolkit local and EKS training run the script under) is published as
# source with a small C extension: a compiler is needed to install it, not to run it.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install ".[${EXTRAS}]" && rm -rf /app/* \
    && apt-get purge -y gcc libc6-dev && apt-get autoremove -y \
    && rm -rf /var/lib/apt/lists/*

# The UID the Helm chart runs every pod as (runAsUser 65532); one number in both places.
RUN useradd --uid 65532 --create-home flywheel
USER 65532
CMD ["flywheel", "--help"]
