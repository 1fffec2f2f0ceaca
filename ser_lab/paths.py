"""Where SER Lab keeps its files, and where its app is. Both data places can be moved with an
environment variable; neither is ever inside the installed package."""

from __future__ import annotations

import os
from pathlib import Path

from ser_lab.errors import ConfigError

# The folder that holds the ser_lab package: the repository root in a checkout,
# site-packages in an installed wheel (so never a place to write to).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
APP_PACKAGE = "ser_lab_app"  # the app's files in a wheel (see pyproject.toml)


def cache_dir() -> Path:
    """Generated data (the synthetic corpus) and the feature cache: $SER_LAB_CACHE or ~/.cache/ser_lab."""
    path = Path(os.environ.get("SER_LAB_CACHE") or Path.home() / ".cache" / "ser_lab")
    path.mkdir(parents=True, exist_ok=True)
    return path


def checkpoints_dir(create: bool = True) -> Path:
    """The run store: $SER_LAB_CHECKPOINTS, else ./checkpoints of the working directory (in a
    checkout, started from its root, the folder that holds the demo runs); created unless
    create=False (listing runs must not make folders)."""
    path = Path(os.environ.get("SER_LAB_CHECKPOINTS") or Path.cwd() / "checkpoints")
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def app_dir() -> Path:
    """The folder holding the Streamlit app: app.py, app_pages/ and .streamlit/config.toml.

    In a checkout that is the repository root; in an installed wheel the same files are the
    data package `ser_lab_app` next to `ser_lab` (one copy of each file either way)."""
    for folder in (PROJECT_ROOT, PROJECT_ROOT / APP_PACKAGE):
        if (folder / "app.py").is_file() and (folder / "app_pages").is_dir():
            return folder
    raise ConfigError(
        f"the SER Lab app is not installed next to {Path(__file__).resolve().parent} "
        "(no app.py and app_pages/); reinstall the ser-lab package"
    )
