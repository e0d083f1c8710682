"""Experiment tracking: every training run and tuning trial recorded in MLflow.

``mlflow`` is an optional extra (``pip install 'flywheel-mlops[tracking]'``) and is imported only
inside the functions that log or query, so no other step pays for it. Without it, or with the
tracking server down, training goes on and one line says what was not recorded.
"""

from flywheel.components.tracking.curves import learning_curves_html
from flywheel.components.tracking.record import (
    TrainingRecord,
    import_in_background,
    link_registered_version,
    track_training,
)
from flywheel.components.tracking.uri import (
    TRACKING_SWITCH_VARIABLE,
    TRACKING_URI_VARIABLE,
    check_tracking_uri,
    local_store_uri,
    tracking_installed,
    tracking_switched_off,
)

__all__ = [
    "TRACKING_SWITCH_VARIABLE",
    "TRACKING_URI_VARIABLE",
    "TrainingRecord",
    "check_tracking_uri",
    "import_in_background",
    "learning_curves_html",
    "link_registered_version",
    "local_store_uri",
    "track_training",
    "tracking_installed",
    "tracking_switched_off",
]
