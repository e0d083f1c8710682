"""The container images Flywheel's components run in.

Both are built from the repository's Dockerfile with Flywheel installed, so no package is installed
at task start (``install_kfp_package=False``) and a task starts in well under a second. Set a task's
image with ``task.set_container_image(...)`` to run a component on an image of your own that has
``flywheel-mlops`` installed.
"""

# Built from the repository's Dockerfile; the tag moves with the package version.
RUNTIME_IMAGE = "ghcr.io/flywheel-mlops/runtime-python3.11:0.1.0"
# The same image with the ``gpu`` extra (torch with CUDA), for training pods on EKS GPU nodes.
GPU_RUNTIME_IMAGE = "ghcr.io/flywheel-mlops/runtime-python3.11-gpu:0.1.0"
