"""Where SER Lab keeps its files. Both places can be moved with an environment variable."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """Generated data (the synthetic corpus) and the feature cache: $SER_LAB_CACHE or ~/.cache/ser_lab."""
    path = Path(os.environ.get("SER_LAB_CACHE") or Path.home() / ".cache" / "ser_lab")
    path.mkdir(parents=True, exist_ok=True)
    return path


def checkpoints_dir(create: bool = True) -> Path:
    """The run store: $SER_LAB_CHECKPOINTS or <project>/checkpoints (created unless
    create=False: listing runs must not make folders)."""
    path = Path(os.environ.get("SER_LAB_CHECKPOINTS") or PROJECT_ROOT / "checkpoints")
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path
