"""The training pipeline's steps as plain functions of paths and values.

KFP components (the public modules of ``flywheel.components``) are thin wrappers over these, so the same work can be called
directly (tests, benchmarks) or run as pipeline tasks, with identical results.
"""
