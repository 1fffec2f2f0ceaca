"""Who may do what in the app: the policy of a shared (classroom) server.

By default SER Lab is a personal lab: the app listens on 127.0.0.1 only (`server.address` in
`.streamlit/config.toml`), so nobody else on the network reaches it, and every control works.

To serve it to a class, start it in **shared mode** and open it to the network yourself:

    SER_LAB_SHARED=1 SER_LAB_CORPUS_ROOTS=/data/emodb:/data/iemocap \\
        streamlit run app.py --server.address 0.0.0.0

In shared mode the pages can only browse runs, compare them and explore clips. Launching,
stopping or resuming a training, a quick start or a sweep is refused, and a corpus root is
accepted only inside one of the `SER_LAB_CORPUS_ROOTS` folders (separated by `os.pathsep`,
":" on Linux and macOS; the built-in synthetic corpus in the cache is always allowed). A corpus
chosen in shared mode stays in that browser session: it is not saved for other visitors.

Any value of SER_LAB_SHARED other than empty, 0, false, no or off switches shared mode on (a typo
fails closed). The pages ask `policy()` before each guarded action; nothing here imports
Streamlit, so the rules are tested on their own and in the pages' AppTests.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ser_lab.errors import AccessDeniedError

ENV_SHARED = "SER_LAB_SHARED"
ENV_CORPUS_ROOTS = "SER_LAB_CORPUS_ROOTS"
_OFF = ("", "0", "false", "no", "off")


@dataclass(frozen=True)
class AccessPolicy:
    """shared=False: everything allowed. shared=True: read-only, corpus roots allow-listed."""

    shared: bool = False
    corpus_roots: tuple[Path, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AccessPolicy:
        env = os.environ if environ is None else environ
        shared = env.get(ENV_SHARED, "").strip().lower() not in _OFF
        raw = env.get(ENV_CORPUS_ROOTS, "")
        roots = tuple(
            Path(part.strip()).expanduser().resolve() for part in raw.split(os.pathsep) if part.strip()
        )
        return cls(shared=shared, corpus_roots=roots)

    @property
    def can_train(self) -> bool:
        """Whether trainings and sweeps may be launched, stopped and resumed."""
        return not self.shared

    def allows(self, action: str) -> bool:
        """Whether `action` (one of the training controls) may run."""
        return not self.shared

    def refusal(self, action: str) -> str:
        """The message a refused `action` shows."""
        return (
            f"{action[:1].upper()}{action[1:]} is not allowed: this SER Lab runs in shared mode "
            f"({ENV_SHARED}), where runs can only be browsed, compared and explored"
        )

    def check(self, action: str) -> None:
        """AccessDeniedError if `action` (e.g. "starting a training") is not allowed."""
        if not self.allows(action):
            raise AccessDeniedError(self.refusal(action))

    def allows_corpus_root(self, root: str | os.PathLike | None) -> bool:
        try:
            self.check_corpus_root(root)
        except AccessDeniedError:
            return False
        return True

    def check_corpus_root(self, root: str | os.PathLike | None) -> None:
        """AccessDeniedError unless `root` may be read: anything outside shared mode; in shared
        mode only the built-in corpus (root None) or a path inside an allowed root (after
        resolving links and "..", so neither can step outside)."""
        if not self.shared or root is None or not str(root).strip():
            return
        try:
            path = Path(root).expanduser().resolve()
        except (OSError, ValueError, RuntimeError):
            path = None
        if path is not None and any(path == a or a in path.parents for a in self.corpus_roots):
            return
        allowed = ", ".join(map(str, self.corpus_roots)) or f"none ({ENV_CORPUS_ROOTS} is not set)"
        raise AccessDeniedError(
            f"corpus root {root} is not allowed in shared mode; allowed roots: {allowed}"
        )


def policy() -> AccessPolicy:
    """The policy of this process, from the environment (read on every call: cheap)."""
    return AccessPolicy.from_env()
