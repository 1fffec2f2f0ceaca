"""The package as a user installs it: the wheel's metadata, its command and its app files.

Builds the wheel from this checkout without a network (`pip wheel --no-deps
--no-build-isolation`, using the setuptools already installed) and "installs" it the way pip
does for a pure-Python wheel, by unpacking it; skipped where no wheel can be built offline.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _requirements(name: str) -> list[str]:
    lines = (ROOT / name).read_text().splitlines()
    reqs = [line.split("#", 1)[0].strip() for line in lines]
    return [r for r in reqs if r and not r.startswith("-")]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    pytest.importorskip("setuptools")
    # Built from a copy of what a source distribution holds, so the checkout gets no build/
    # or egg-info folders.
    src = tmp_path_factory.mktemp("src")
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("ser_lab", "app_pages", ".streamlit"):
        shutil.copytree(ROOT / name, src / name, ignore=skip)
    for name in ("pyproject.toml", "README.md", "app.py", *(p.name for p in ROOT.glob("requirements*.txt"))):
        shutil.copy2(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(src)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PIP_NO_INDEX": "1"},
    )
    wheels = list(out.glob("ser_lab-*.whl"))
    if proc.returncode != 0 or not wheels:
        pytest.skip(f"cannot build the wheel offline here: {proc.stderr.strip()[-300:]}")
    return wheels[0]


def test_metadata_lists_the_requirements_and_the_command(wheel):
    with zipfile.ZipFile(wheel) as zf:
        info = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(zf.read(info).decode())
        entry_points = zf.read(info.replace("METADATA", "entry_points.txt")).decode()
    requires = meta.get_all("Requires-Dist")
    runtime = [r for r in requires if "extra ==" not in r]
    assert "torch==2.13.0" in runtime
    assert sorted(map(_name, runtime)) == sorted(map(_name, _requirements("requirements.txt")))
    assert any(r.startswith("streamlit>=") for r in runtime)
    assert set(meta.get_all("Provides-Extra")) >= {"cluster", "dev"}
    extras = {_name(r) for r in requires if 'extra == "cluster"' in r}
    assert extras == {"ray"}
    assert re.search(r"^ser-lab\s*=\s*ser_lab\.cli:main$", entry_points, re.M)


def test_the_wheel_ships_the_app_and_no_runs(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    pages = {p.name for p in (ROOT / "app_pages").glob("*.py")}
    assert "ser_lab_app/app.py" in names and "ser_lab_app/.streamlit/config.toml" in names
    assert {n.rsplit("/", 1)[-1] for n in names if n.startswith("ser_lab_app/app_pages/")} == pages
    assert "ser_lab/cli.py" in names and "ser_lab/data/corpora/synthetic.py" in names
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "ser_lab").rglob("*.py")}
    assert modules - names == set()  # every subpackage is listed in pyproject's packages
    assert not any(n.startswith(("checkpoints/", "tests/", "bench/")) for n in names)


def test_the_installed_command_finds_its_app(wheel, tmp_path):
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("SER_LAB_CHECKPOINTS", None)
    code = (
        "import sys, ser_lab.paths as p, ser_lab.serve as s\n"
        "print(p.app_dir()); print(p.checkpoints_dir()); print(' '.join(s.app_command()))\n"
        "from ser_lab.cli import main\n"
        "sys.argv = ['ser-lab', 'app', '--help']\n"
        "main()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    app, store, command, *usage = proc.stdout.splitlines()
    assert Path(app) == site / "ser_lab_app"  # the installed copy, not this checkout
    assert Path(store) == work / "checkpoints"  # the working directory, not site-packages
    assert f"{site / 'ser_lab_app' / 'app.py'} " in command
    assert "--server.address=127.0.0.1" in command and "--server.headless=true" in command
    assert usage[0].startswith("usage: ser-lab app")
