"""`ser-lab app`: start the Streamlit app from a checkout or an installed wheel.

Runs `python -m streamlit run <app dir>/app.py` in the caller's working directory (so the run
store is its ./checkpoints, or $SER_LAB_CHECKPOINTS), with the settings of the shipped
.streamlit/config.toml passed as command-line flags (Streamlit reads a config file only from
the working directory and the home folder, not from next to the script), and bound to
127.0.0.1 unless the caller says otherwise: a lab on a laptop, not a server. Every other
argument goes to `streamlit run` as given, and wins over the defaults.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

from ser_lab.paths import app_dir

DEFAULT_ADDRESS = "127.0.0.1"


def config_flags(config_file: Path) -> list[str]:
    """`--section.key=value` for every setting of a Streamlit config.toml."""
    try:
        config = tomllib.loads(config_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    flags = []
    for section, values in config.items():
        for key, value in values.items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            flags.append(f"--{section}.{key}={text}")
    return flags


def _option(flag: str) -> str:
    return flag.split("=", 1)[0]


def app_command(streamlit_args: Sequence[str] = ()) -> list[str]:
    """The command line that serves the app; `streamlit_args` override the defaults."""
    folder = app_dir()
    given = {_option(a) for a in streamlit_args if a.startswith("--")}
    defaults = config_flags(folder / ".streamlit" / "config.toml")
    defaults.append(f"--server.address={DEFAULT_ADDRESS}")
    keep = [f for f in defaults if _option(f) not in given]
    return [sys.executable, "-m", "streamlit", "run", str(folder / "app.py"), *keep, *streamlit_args]


def run_app(streamlit_args: Sequence[str] = (), store: str | None = None) -> int:
    """Serve the app until it is stopped (Ctrl-C, SIGTERM).

    On POSIX this process becomes Streamlit (exec), so a signal sent to `ser-lab app` reaches
    the server itself and no orphaned server is left behind; elsewhere Streamlit runs as a
    child and its exit status is returned."""
    env = dict(os.environ)
    if store:
        env["SER_LAB_CHECKPOINTS"] = str(Path(store).resolve())
    command = app_command(streamlit_args)
    if os.name == "posix":
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(command[0], command, env)
    return subprocess.call(command, env=env)
