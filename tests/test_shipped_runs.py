"""The demo runs shipped in checkpoints/demo-* still open after code moves.

A run folder must not depend on where the code lives: model.pt holds tensors and plain types
(loaded with weights_only=True), the maps' caches and embeddings are pickle-free .npz files,
and config.json names no module. These tests open the shipped runs (copies, so that no cache
is written into the repository) in the predictor and the comparison, as the app does. The
maps ship with the pair, so a fresh machine neither fits UMAP nor imports numba for them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

from ser_lab.analysis.compare import compare_rows, compare_runs
from ser_lab.analysis.maps import project_fold
from ser_lab.experiments.demo import DEMO_IDS
from ser_lab.inference import Predictor
from ser_lab.paths import PROJECT_ROOT
from ser_lab.runs import RunStore
from tests.audio_fixtures import tone, write_audio


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("shipped")
    for run_id in DEMO_IDS:
        shutil.copytree(PROJECT_ROOT / "checkpoints" / run_id, root / run_id)
    return RunStore(root)


def test_no_shipped_file_names_a_module():
    for run_id in DEMO_IDS:
        for path in (PROJECT_ROOT / "checkpoints" / run_id).rglob("*"):
            if path.is_file():
                assert b"ser_lab." not in path.read_bytes(), path  # no pickled class path


@pytest.mark.parametrize("run_id", DEMO_IDS)
def test_a_shipped_run_predicts_a_clip(store, run_id, tmp_path):
    clip = write_audio(tmp_path / "clip.wav", tone(2.0))
    out = Predictor.from_run(store.get(run_id), fold=0).predict(clip, with_neighbours=False)
    assert out.probabilities.shape == (len(out.label_names),)
    assert np.isclose(out.probabilities.sum(), 1.0, atol=1e-5)
    assert out.predicted in out.label_names and out.z.shape == (64,)
    assert out.pca_xy is not None and np.all(np.isfinite(out.pca_xy))


def test_the_shipped_pair_compares(store):
    a, b = (store.get(run_id) for run_id in DEMO_IDS)
    comparison = compare_runs(a, b)
    rows = {row.key: row for row in compare_rows(comparison)}
    assert 0 < rows["UA"].a <= 1 and 0 < rows["UA"].b <= 1
    fold_map = project_fold(a, 0, "pca")
    assert fold_map.xy.shape[1] == 2 and np.all(np.isfinite(fold_map.xy))


@pytest.mark.parametrize("run_id", DEMO_IDS)
def test_the_shipped_runs_carry_their_maps(store, run_id):
    """The maps Compare and Explore show first come from the shipped cache, valid for the
    shipped embeddings (a stale cache would be refitted, and this would fail)."""
    for method in ("pca", "umap"):
        fold_map = project_fold(store.get(run_id), 0, method)
        assert fold_map.from_cache, (run_id, method)
        assert np.all(np.isfinite(fold_map.xy))


def test_a_clip_on_a_shipped_run_needs_no_umap_or_numba(store, tmp_path):
    """The first clip in Explore on a fresh machine: placed on both maps without importing
    umap or numba (about 2 s and 15 s of a cold start), in a fresh process."""
    clip = write_audio(tmp_path / "clip.wav", tone(2.0))
    code = (
        "import sys\n"
        "from ser_lab.inference import Predictor\n"
        "from ser_lab.runs import RunStore\n"
        f"run = RunStore({str(store.root)!r}).get({DEMO_IDS[1]!r})\n"
        f"out = Predictor.from_run(run, fold=0).predict({str(clip)!r}, with_neighbours=False)\n"
        "assert out.pca_xy is not None and out.umap_xy is not None, out\n"
        "print(sorted(m for m in ('umap', 'numba', 'pynndescent') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_the_demo_builder_keeps_what_the_app_reads(tmp_path):
    from ser_lab.experiments.demo import prune

    run = tmp_path / "demo-x"
    keep = ["config.json", "status.json", "metrics.jsonl", "results.json", "fold_0/model.pt",
            "fold_0/embeddings.npz", "fold_0/snapshots/epoch_001.npz", "fold_0/projections/umap-k.npz"]
    drop = ["train.log", "fold_0/last.pt", "fold_0/refit.jsonl", "fold_0/cross/emodb.json"]
    for rel in keep + drop:
        (run / rel).parent.mkdir(parents=True, exist_ok=True)
        (run / rel).write_bytes(b"x")
    prune(run)
    assert sorted(p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()) == sorted(keep)
