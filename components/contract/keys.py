"""Unknown keys in a user's YAML are refused with the nearest valid one: a typo names its fix."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from flywheel.components.errors import InvalidSpecError


def check_keys(
    raw: Mapping[str, Any], allowed: tuple[str, ...], where: str = "", what: str = "key"
) -> None:
    """Refuse a key that is not ``allowed``, naming the nearest one that is (a likely typo)."""
    for key in raw:
        if key in allowed:
            continue
        nearest = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
        hint = f"did you mean {nearest[0]}?" if nearest else f"allowed: {', '.join(allowed)}"
        raise InvalidSpecError(f"{where}{key}", f"unknown {what}; {hint}")
