"""Show a job's scratch layout at ``/opt/ml`` to the job alone, so hard-coded paths work locally.

Scripts written for SageMaker often open ``/opt/ml/input/data/train/...`` directly rather than
reading ``SM_CHANNEL_TRAIN``. The toolkit honours ``SAGEMAKER_BASE_DIR``, but a literal path does
not. On Linux the job therefore runs in a private mount namespace (``unshare``, no privileges
needed) where ``/opt/ml`` is a bind mount of its own scratch folder: concurrent jobs never see each
other's files and nothing outside the job changes. The rest of ``/opt`` stays visible.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from pathlib import Path

from flywheel.components.contract.training import ML_ROOT

# Runs inside the new namespace: when /opt/ml does not exist (creating it would change the host),
# /opt becomes a tmpfs holding bind mounts of every original entry plus an empty ml/ mount point.
_MOUNT_SCRIPT = """\
set -e
root=$1 view=$2
shift 2
if [ ! -d /opt/ml ]; then
  mount -t tmpfs flywheel-opt "$view"
  for entry in /opt/* /opt/.[!.]*; do
    [ -e "$entry" ] || continue
    name=${entry##*/}
    if [ -d "$entry" ]; then mkdir "$view/$name"; else touch "$view/$name"; fi
    mount --rbind "$entry" "$view/$name"
  done
  mkdir "$view/ml"
  mount --rbind "$view" /opt
fi
mount --bind "$root" /opt/ml
exec "$@"
"""
_UNSHARE = ("unshare", "--mount", "--map-root-user", "--propagation", "private")


@functools.cache
def private_mounts_available() -> bool:
    """Whether this machine lets an unprivileged process mount in a namespace of its own."""
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        return False
    if not Path("/opt").is_dir():
        return False
    probe = subprocess.run(
        [*_UNSHARE, "mount", "-t", "tmpfs", "flywheel-probe", "/opt"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


def opt_ml_prefix(root: Path, view: Path) -> tuple[str, ...]:
    """A command prefix under which ``root`` appears at ``/opt/ml``; empty where that is impossible.

    ``view`` is an empty folder the prefix may mount over (a sibling of ``root`` in the scratch).
    """
    if root == ML_ROOT or not private_mounts_available():
        return ()
    view.mkdir(parents=True, exist_ok=True)
    return (*_UNSHARE, "sh", "-c", _MOUNT_SCRIPT, "flywheel-opt-ml", str(root), str(view))
