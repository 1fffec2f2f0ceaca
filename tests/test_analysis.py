"""Run-level analysis: cached maps, alignment of two runs, comparison, snapshots (exports: test_export.py).

Run folders are written here by hand, laid out as the run-folder contract says (see
ser_lab.runs), with synthetic Gaussian clusters as z.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ser_lab import RUN_FORMAT_VERSION, fileio
from ser_lab.analysis import maps, projection
from ser_lab.analysis import projection as proj
from ser_lab.analysis.compare import (
    compare_many,
    compare_many_rows,
    compare_rows,
    compare_runs,
    format_compare_table,
    format_many_table,
    run_discriminability,
)
from ser_lab.analysis.discriminability import discriminability, knn_accuracy
from ser_lab.analysis.maps import align_map, load_fold, project_fold, run_folds, snapshot_frames
from ser_lab.errors import ConfigError, RunError
from ser_lab.runs import Run

LABELS = ["neutral", "angry", "happy", "sad"]
D = 64
N_UTT = 80  # utterances per run: 20 per class


def cluster_z(labels: np.ndarray, spread: float, seed: int, a: float = 6.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = np.zeros((len(LABELS), D))
    centers[np.arange(len(LABELS)), np.arange(len(LABELS))] = a
    return (centers[labels] + spread * rng.standard_normal((len(labels), D))).astype(np.float32)


def make_run(
    root: Path,
    run_id: str,
    *,
    spread: float = 1.0,
    seed: int = 0,
    n_folds: int = 2,
    wrong: dict[str, int] | None = None,
    z_map=None,
    snapshots: int = 0,
) -> Path:
    """A finished run folder: every fold holds all N_UTT utterances, a different quarter of
    them per fold as test, 10 % as val, the rest train. `wrong` maps utt_id -> the wrong
    class that run predicts for it on the test set (every other prediction is right)."""
    run_dir = root / run_id
    labels = np.repeat(np.arange(len(LABELS)), N_UTT // len(LABELS))
    utt_ids = np.array([f"utt{i:03d}" for i in range(N_UTT)])
    wrong = wrong or {}
    folds = []
    pooled = np.zeros((4, 4), dtype=int)
    for k in range(n_folds):
        z = cluster_z(labels, spread, seed * 100 + k)
        if z_map is not None:
            z = z_map(z)
        split = np.full(N_UTT, "train", dtype="<U5")
        test = (np.arange(N_UTT) % n_folds) == k
        split[test] = "test"
        val = (~test) & ((np.arange(N_UTT) // 2) % 5 == 1)
        split[val] = "val"
        preds = labels.copy()
        for u, p in wrong.items():
            i = int(u[3:])
            if test[i]:
                preds[i] = p
        probs = np.full((N_UTT, 4), 0.1, dtype=np.float32)
        probs[np.arange(N_UTT), preds] = 0.7
        centers = np.stack([z[(labels == c) & (split == "train")].mean(0) for c in range(4)])
        fold_dir = run_dir / f"fold_{k}"
        fold_dir.mkdir(parents=True)
        np.savez(
            fold_dir / "embeddings.npz",
            z=z,
            labels=labels.astype(np.int64),
            preds=preds.astype(np.int64),
            probs=probs,
            utt_ids=utt_ids,
            split=split,
            centers=centers.astype(np.float32),
            label_names=np.array(LABELS),
        )
        cm = np.zeros((4, 4), dtype=int)
        np.add.at(cm, (labels[test], preds[test]), 1)
        pooled += cm
        recall = cm.diagonal() / cm.sum(1)
        folds.append(
            {
                "fold": k,
                "UA": float(recall.mean()),
                "WA": float(cm.trace() / cm.sum()),
                "recall": dict(zip(LABELS, recall.tolist(), strict=True)),
                "confusion": cm.tolist(),
                "n_test": int(test.sum()),
                "best_epoch": 3,
            }
        )
        if snapshots:
            write_snapshots(fold_dir, z, labels, utt_ids, split, centers, snapshots)
    ua = [f["UA"] for f in folds]
    wa = [f["WA"] for f in folds]
    results = {
        "labels": LABELS,
        "folds": folds,
        "pooled": {"confusion": pooled.tolist()},
        "mean": {"UA": np.mean(ua), "WA": np.mean(wa), "UA_std": np.std(ua), "WA_std": np.std(wa)},
    }
    (run_dir / "results.json").write_text(json.dumps(results))
    config = {"format_version": RUN_FORMAT_VERSION, "train": {"lam": 0.3, "alpha": 0.5, "seed": seed}}
    (run_dir / "config.json").write_text(json.dumps(config))
    return run_dir


def write_snapshots(fold_dir, z, labels, utt_ids, split, centers, n_epochs):
    """Epoch e's z is the final z shrunk towards the origin: factor (n - e + 1), e = 1..n."""
    snap_dir = fold_dir / "snapshots"
    snap_dir.mkdir()
    subset = np.arange(0, N_UTT, 3)  # train, val and test utterances
    for e in range(1, n_epochs + 1):
        factor = 1.0 / (n_epochs - e + 1)
        np.savez(
            snap_dir / f"epoch_{e:03d}.npz",
            z=z[subset] * factor,
            labels=labels[subset],
            utt_ids=utt_ids[subset],
            split=split[subset],
            centers=centers * factor,
        )


@pytest.fixture
def run_a(tmp_path):
    return make_run(tmp_path, "run-a", spread=1.0, seed=0, wrong={"utt000": 1, "utt005": 2})


# ----------------------------------------------------------------------------- reading


def test_run_folder_reads_the_contract(run_a):
    run = Run(run_a)
    assert run.run_id == "run-a" and run.config["train"]["lam"] == 0.3
    assert run_folds(run_a) == [0, 1]
    emb = load_fold(run_a, 1)
    assert emb["z"].shape == (N_UTT, D) and emb["probs"].shape == (N_UTT, 4)
    assert set(emb["split"]) == {"train", "val", "test"}
    with pytest.raises(RunError, match="no embeddings"):
        load_fold(run_a, 7)
    with pytest.raises(RunError, match="no run folder"):
        load_fold(run_a / "missing", 0)
    with pytest.raises(ConfigError):
        load_fold(run_a, -1)


def test_malformed_embeddings_are_refused(tmp_path, run_a):
    path = run_a / "fold_0" / "embeddings.npz"
    with np.load(path) as data:
        arrays = dict(data)
    arrays["split"] = arrays["split"].copy()
    arrays["split"][0] = "holdout"
    np.savez(path, **arrays)
    with pytest.raises(RunError, match="unknown split"):
        load_fold(run_a, 0)
    arrays["split"][0] = "train"
    np.savez(path, **{**arrays, "utt_ids": np.array(["same"] * N_UTT)})
    with pytest.raises(RunError, match="not unique"):
        load_fold(run_a, 0)
    np.savez(path, **{**arrays, "utt_ids": np.array([object()] * N_UTT, dtype=object)})
    with pytest.raises(RunError, match="corrupt or unreadable"):  # pickle is never loaded
        load_fold(run_a, 0)
    path.write_bytes(b"not a zip")
    with pytest.raises(RunError, match="corrupt"):
        load_fold(run_a, 0)


# ----------------------------------------------------------------------------- maps


def test_pca_map_of_a_fold(run_a):
    m = project_fold(run_a, 0, "pca")
    emb = load_fold(run_a, 0)
    train = emb["split"] == "train"
    assert m.method == "pca" and m.run_id == "run-a" and m.fold == 0
    assert m.xy.shape == (N_UTT, 2) and m.centers_xy.shape == (4, 2)
    assert m.label_names == LABELS and not m.from_cache
    # fitted on training z only: the map equals a PCA fitted on the training rows
    p = proj.fit_projection(emb["z"][train], "pca")
    np.testing.assert_allclose(m.xy, p.transform(emb["z"]), atol=1e-9)
    np.testing.assert_allclose(m.projection.transform(emb["z"][train]), m.xy[train], atol=1e-9)
    np.testing.assert_allclose(m.centers_xy, p.transform(emb["centers"]), atol=1e-9)
    for s in ("train", "val", "test"):  # PCA is affine: map of the means = mean of the map
        mask = m.split == s
        for c in range(4):
            np.testing.assert_allclose(
                m.class_means_xy[s][c], m.xy[mask & (m.labels == c)].mean(0), atol=1e-9
            )
    df = m.to_dataframe()
    assert list(df.columns) == ["utt_id", "split", "label", "pred", "correct", "x", "y"]
    assert df["correct"].sum() == N_UTT - 1  # utt000 is a fold-0 test point predicted wrong


def test_map_cache_hit_avoids_recomputation(run_a, monkeypatch):
    first = project_fold(run_a, 0, "pca")
    files = list((run_a / "fold_0" / "projections").glob("pca-*.npz"))
    assert len(files) == 1
    with np.load(files[0], allow_pickle=False) as data:  # a plain-array cache file
        assert "components" in data.files and "xy" in data.files

    def no_fit(*args, **kwargs):
        raise AssertionError("the map was refitted despite a cache hit")

    monkeypatch.setattr(maps, "fit_projection", no_fit)
    second = project_fold(run_a, 0, "pca")
    assert second.from_cache
    np.testing.assert_array_equal(second.xy, first.xy)
    np.testing.assert_array_equal(second.centers_xy, first.centers_xy)
    new = np.ones((2, D))
    np.testing.assert_allclose(second.transform(new), first.transform(new), atol=1e-12)
    np.testing.assert_allclose(second.projection.fit_xy, first.projection.fit_xy)


def test_map_cache_is_invalidated_by_new_embeddings_or_params(run_a, monkeypatch):
    project_fold(run_a, 0, "pca")
    calls = []
    real_fit = projection.fit_projection
    monkeypatch.setattr(
        maps, "fit_projection", lambda *a, **k: calls.append(1) or real_fit(*a, **k)
    )
    path = run_a / "fold_0" / "embeddings.npz"
    with np.load(path) as data:
        arrays = dict(data)
    np.savez(path, **{**arrays, "z": arrays["z"] * 2})  # the run was retrained
    m = project_fold(run_a, 0, "pca")
    assert not m.from_cache and calls == [1]
    assert project_fold(run_a, 0, "pca").from_cache and calls == [1]
    assert not project_fold(run_a, 0, "pca", use_cache=False).from_cache and calls == [1, 1]


def test_a_corrupt_cache_file_is_recomputed(run_a):
    project_fold(run_a, 0, "pca")
    (cache,) = (run_a / "fold_0" / "projections").glob("pca-*.npz")
    cache.write_bytes(b"garbage")
    m = project_fold(run_a, 0, "pca")
    assert not m.from_cache and m.xy.shape == (N_UTT, 2)
    assert project_fold(run_a, 0, "pca").from_cache


def test_unwritable_run_folder_still_gives_a_map(run_a, monkeypatch):
    def fail(*args, **kwargs):
        raise PermissionError("read-only")

    monkeypatch.setattr(fileio, "atomic_save_npz", fail)
    assert project_fold(run_a, 0, "pca").xy.shape == (N_UTT, 2)
    assert not (run_a / "fold_0" / "projections").exists() or not list(
        (run_a / "fold_0" / "projections").glob("*.npz")
    )


def test_map_errors(run_a):
    with pytest.raises(ConfigError, match="unknown projection"):
        project_fold(run_a, 0, "tsne")
    with pytest.raises(ConfigError):
        project_fold(run_a, "0", "pca")


def test_aligned_map_of_a_rotated_run_matches_the_reference(tmp_path):
    q, _ = np.linalg.qr(np.random.default_rng(5).standard_normal((D, D)))
    a = make_run(tmp_path, "a", seed=0)
    b = make_run(tmp_path, "b", seed=0, z_map=lambda z: (z @ q * 3.0).astype(np.float32))
    map_a, map_b = project_fold(a, 0, "pca"), project_fold(b, 0, "pca")
    # b's z is a's rotated and scaled: its own map is a's up to rotation/reflection/scale
    assert np.abs(map_b.xy - map_a.xy).max() > 1.0
    aligned = align_map(map_a, map_b)
    assert aligned.alignment is not None and aligned.alignment.scale == pytest.approx(1 / 3)
    np.testing.assert_allclose(aligned.xy, map_a.xy, atol=1e-4)
    np.testing.assert_allclose(aligned.centers_xy, map_a.centers_xy, atol=1e-4)
    np.testing.assert_allclose(
        aligned.class_means_xy["test"], map_a.class_means_xy["test"], atol=1e-4
    )
    clip = np.random.default_rng(0).standard_normal((2, D))
    np.testing.assert_allclose(aligned.transform(clip @ q * 3.0), map_a.transform(clip), atol=1e-4)
    # aligning an aligned map again composes: the result is still on a's frame
    again = align_map(map_a, aligned)
    np.testing.assert_allclose(again.transform(clip @ q * 3.0), map_a.transform(clip), atol=1e-4)


def test_umap_map_is_cached_and_places_new_clips(tmp_path, monkeypatch):
    pytest.importorskip("umap")
    run = make_run(tmp_path, "u", n_folds=2)  # 200-ish points keep UMAP quick
    m = project_fold(run, 0, "umap")
    assert m.params["n_neighbors"] == 15 and m.params["min_dist"] == 0.1
    assert m.xy.shape == (N_UTT, 2) and np.isfinite(m.centers_xy).all()
    train = m.split == "train"
    np.testing.assert_array_equal(m.xy[train], m.projection.fit_xy)
    # reopened in "a new process": coordinates from disk, and no UMAP fit even for a new clip
    fits = []
    real = proj._fit_umap
    monkeypatch.setattr(proj, "_fit_umap", lambda *a: fits.append(1) or real(*a))
    again = project_fold(run, 0, "umap")
    assert again.from_cache and fits == []
    np.testing.assert_array_equal(again.xy, m.xy)
    clip = load_fold(run, 0)["z"][train][:1] + 0.01
    xy = again.transform(clip)
    assert fits == [] and xy.shape == (1, 2)
    np.testing.assert_array_equal(xy, m.transform(clip))
    # the clip lands next to the training point it was drawn from
    assert np.linalg.norm(xy[0] - m.xy[train][0]) < 0.5 * np.ptp(m.xy, axis=0).max()


# ----------------------------------------------------------------------------- discriminability


def test_run_discriminability_per_split(run_a):
    out = run_discriminability(run_a, 0)
    emb = load_fold(run_a, 0)
    assert out["fold"] == 0 and set(out) == {"fold", "train", "val", "test", "knn"}
    for s in ("train", "val", "test"):
        mask = emb["split"] == s
        expected = discriminability(emb["z"][mask], emb["labels"][mask], emb["centers"])
        assert out[s]["intra"] == pytest.approx(expected["intra"])
        assert out[s]["fisher"] == pytest.approx(expected["fisher"])
        assert out[s]["center_source"] == "trained"
        assert set(out[s]["intra_per_class"]) == set(LABELS)
    train, test = emb["split"] == "train", emb["split"] == "test"
    knn = knn_accuracy(emb["z"][train], emb["labels"][train], emb["z"][test], emb["labels"][test])
    assert out["knn"]["accuracy"] == knn["accuracy"] == 1.0  # well-separated clusters


def test_tighter_run_is_more_discriminative(tmp_path):
    tight = run_discriminability(make_run(tmp_path, "t", spread=0.3), 0)
    loose = run_discriminability(make_run(tmp_path, "l", spread=2.0), 0)
    for s in ("train", "test"):
        assert tight[s]["intra_inter_ratio"] < loose[s]["intra_inter_ratio"]
        assert tight[s]["fisher"] > loose[s]["fisher"]
        assert tight[s]["silhouette"] > loose[s]["silhouette"]


# ----------------------------------------------------------------------------- comparison


def test_compare_two_runs(tmp_path):
    # A gets utt000 (neutral, fold 0) and utt001 (neutral, fold 1) wrong; B fixes utt000 and
    # breaks utt002 (neutral, fold 0)
    a = make_run(tmp_path, "A", spread=2.0, wrong={"utt000": 1, "utt001": 3})
    b = make_run(tmp_path, "B", spread=0.5, seed=1, wrong={"utt001": 2, "utt002": 1})
    c = compare_runs(Run(a), b)  # a Run or a folder path
    assert c["labels"] == LABELS
    sa, sb = c["a"], c["b"]
    assert sa["run_ids"] == ["A"] and sb["n_runs"] == 1 and sa["configs"][0]["lam"] == 0.3
    # fold 0 and fold 1 each test 40 utterances, 10 per class
    assert [f["WA"] for f in sa["folds"]] == [39 / 40, 39 / 40]
    assert sa["UA"]["mean"] == pytest.approx(0.975) and sa["UA"]["std_folds"] == 0.0
    assert sa["UA"]["std_seeds"] is None  # one run: no spread over seeds
    assert sa["pooled"]["confusion"][0] == [18, 1, 0, 1]
    assert sa["pooled"]["recall"]["neutral"] == pytest.approx(0.9)
    assert sb["pooled"]["confusion"][0] == [18, 1, 1, 0]
    assert sa["pooled"]["WA"] == pytest.approx(78 / 80)
    assert c["diff"]["confusion_counts"][0] == [0, 0, 1, -1]
    np.testing.assert_allclose(c["diff"]["confusion_norm"][0], [0, 0, 0.05, -0.05])
    assert c["diff"]["recall"]["neutral"] == pytest.approx(0.0)
    assert c["diff"]["UA"] == pytest.approx(0.0)
    ch = c["changed"]
    assert ch["n_shared"] == N_UTT and ch["n_fixed"] == 1 and ch["n_broken"] == 1
    assert ch["fixed"] == [
        {"utt_id": "utt000", "label": "neutral", "pred_a": "angry", "pred_b": "neutral"}
    ]
    assert ch["broken"][0]["utt_id"] == "utt002" and ch["broken"][0]["pred_b"] == "angry"
    assert ch["both_wrong"] == 1 and ch["both_right"] == N_UTT - 3
    # B's tighter clusters show in every discriminability number
    for part in ("train", "test"):
        da, db = sa["discriminability"][part], sb["discriminability"][part]
        assert db["intra_inter_ratio"] < da["intra_inter_ratio"] and db["fisher"] > da["fisher"]
    assert len(sa["discriminability"]["folds"]) == 2
    json.dumps(c)  # plain Python values only (the page may cache it)


def test_compare_groups_of_runs_over_seeds(tmp_path):
    a1 = make_run(tmp_path, "a1", seed=0)  # all right
    a2 = make_run(tmp_path, "a2", seed=1, wrong={"utt000": 1, "utt004": 1})
    b1 = make_run(tmp_path, "b1", seed=2, wrong={"utt000": 2})
    b2 = make_run(tmp_path, "b2", seed=3, wrong={"utt000": 3})
    c = compare_runs([a1, a2], [b1, b2])
    sa = c["a"]
    assert sa["n_runs"] == 2 and len(sa["folds"]) == 4
    # a2's folds: fold 0 has 2 wrong out of 40 (0.95), fold 1 none
    assert sa["WA"]["mean"] == pytest.approx((1 + 1 + 0.95 + 1) / 4)
    assert sa["WA"]["std_seeds"] == pytest.approx(np.std([1.0, 0.975], ddof=1))
    assert sa["WA"]["std_folds"] == pytest.approx(np.std([1, 1, 0.95, 1], ddof=1))
    assert sum(map(sum, sa["pooled"]["confusion"])) == 2 * N_UTT
    ch = c["changed"]
    # utt000: A right 1 of 2 (no majority), B wrong in both -> neither fixed nor broken
    # utt004: A right 1 of 2, B right in both -> not counted either (no majority in A)
    assert ch["n_fixed"] == 0 and ch["n_broken"] == 0
    assert ch["both_right"] == N_UTT - 2
    table = format_compare_table(c)
    assert "std over runs" in table and "(2 runs)" in table


def test_compare_refuses_incompatible_or_unfinished_runs(tmp_path):
    a = make_run(tmp_path, "a")
    b = make_run(tmp_path, "b")
    results = json.loads((b / "results.json").read_text())
    results["labels"] = ["n", "a", "h", "s"]
    (b / "results.json").write_text(json.dumps(results))
    with pytest.raises(RunError, match="different classes"):
        compare_runs(a, b)
    (b / "results.json").unlink()
    with pytest.raises(RunError, match="no results"):
        compare_runs(a, b)
    with pytest.raises(ConfigError, match="no runs"):
        compare_runs([], a)


def test_compare_many_puts_every_run_against_a(tmp_path):
    a = make_run(tmp_path, "A", spread=2.0, wrong={"utt000": 1, "utt001": 3})
    b = make_run(tmp_path, "B", spread=0.5, wrong={"utt001": 2})
    c = make_run(tmp_path, "C", spread=1.0, wrong={"utt002": 1, "utt003": 2})
    many = compare_many([a, b, c])
    assert many["names"] == ["A", "B", "C"] and many["labels"] == LABELS
    # each pair is exactly the two-run comparison
    for pair, other in zip(many["pairs"], (b, c), strict=True):
        alone = compare_runs(a, other)
        assert pair["diff"] == alone["diff"] and pair["changed"] == alone["changed"]
    rows = {r.key: r for r in compare_many_rows(many)}
    pair_rows = [{r.key: r for r in compare_rows(p)} for p in many["pairs"]]
    for key, row in rows.items():
        assert row.values[0] == pair_rows[0][key].a == pair_rows[1][key].a
        assert row.values[1:] == (pair_rows[0][key].b, pair_rows[1][key].b)
    ua = rows["UA"]
    assert ua.diffs == pytest.approx((pair_rows[0]["UA"].diff, pair_rows[1]["UA"].diff))
    text = format_many_table(many)
    assert text.splitlines()[:3] == ["A: A", "B: B", "C: C"]
    # C gets A's two wrong utterances right and two others wrong
    assert text.splitlines()[-1].startswith("test predictions (C against A, ")
    assert "fixed by C 2, broken by C 2" in text.splitlines()[-1]
    # two runs: the same table as format_compare_table
    assert format_many_table(compare_many([a, b])) == format_compare_table(compare_runs(a, b))


@pytest.mark.parametrize("n", [1, 5])
def test_compare_many_takes_two_to_four_runs(tmp_path, n):
    a = make_run(tmp_path, "A")
    with pytest.raises(ConfigError, match=f"a comparison takes 2 to 4 runs, got {n}"):
        compare_many([a] * n)


def test_format_compare_table(tmp_path):
    a = make_run(tmp_path, "A", spread=2.0, wrong={"utt000": 1, "utt001": 3})
    b = make_run(tmp_path, "B", spread=0.5, wrong={"utt001": 2})
    text = format_compare_table(compare_runs(a, b))
    lines = text.splitlines()
    assert lines[0] == "A: A" and lines[1] == "B: B"
    header = next(line for line in lines if line.startswith("metric"))
    assert header.split() == ["metric", "A", "B", "B", "-", "A"]
    ua = next(line for line in lines if line.startswith("UA (mean over folds)"))
    # ± the sample std over B's two folds (100 and 97.5)
    assert "97.50 ± 0.00" in ua and f"98.75 ± {np.std([100, 97.5], ddof=1):.2f}" in ua
    assert ua.endswith("+1.25")
    neutral = next(line for line in lines if line.startswith("recall neutral"))
    assert neutral.split()[-3:] == ["90.00", "95.00", "+5.00"]
    assert any(line.startswith("test: Fisher") for line in lines)
    assert any(line.startswith("5-NN accuracy") for line in lines)
    assert "fixed by B 1, broken by B 0" in lines[-1]
    assert all(len(line) == len(header) for line in lines[3:-2] if line)  # aligned columns


# ----------------------------------------------------------------------------- snapshots


def test_snapshot_frames_share_one_map(tmp_path):
    run = make_run(tmp_path, "s", snapshots=3)
    frames = snapshot_frames(run, 0, "pca", align="none")
    assert [f["epoch"] for f in frames] == [1, 2, 3]
    last = frames[-1]
    n = len(range(0, N_UTT, 3))
    assert last["xy"].shape == (n, 2) and last["centers_xy"].shape == (4, 2)
    assert set(last) >= {"epoch", "xy", "labels", "split", "utt_ids", "centers_xy"}
    # one PCA fitted on the last epoch's train z: its fitted coordinates are the last frame's
    with np.load(run / "fold_0" / "snapshots" / "epoch_003.npz") as snap:
        z, split, centers = snap["z"], snap["split"], snap["centers"]
    p = proj.fit_projection(z[split == "train"], "pca")
    np.testing.assert_allclose(last["xy"], p.transform(z), atol=1e-6)
    # epoch e's z is the last z scaled by 1/(4 - e): in one affine map, frames shrink towards
    # the map of the origin, they are not refitted (a refit would rescale every frame)
    origin = p.transform(np.zeros(D))[0]
    np.testing.assert_allclose(frames[0]["xy"] - origin, (last["xy"] - origin) / 3, atol=1e-5)
    np.testing.assert_allclose(frames[0]["centers_xy"], p.transform(centers / 3), atol=1e-5)


def test_snapshot_alignment_modes(tmp_path):
    run = make_run(tmp_path, "s", snapshots=3)
    similar = snapshot_frames(run, 0, "pca", align="similarity")
    rigid = snapshot_frames(run, 0, "pca", align="rigid")
    last = similar[-1]["xy"]
    # a similarity fit undoes the shrinking entirely; a rigid one keeps the smaller spread
    np.testing.assert_allclose(similar[0]["xy"], last, atol=1e-5)
    assert similar[0]["alignment"]["scale"] == pytest.approx(3.0, rel=1e-5)
    assert rigid[0]["alignment"]["scale"] == 1.0
    spread = lambda xy: np.linalg.norm(xy - xy.mean(0), axis=1).mean()  # noqa: E731
    assert spread(rigid[0]["xy"]) == pytest.approx(spread(last) / 3, rel=1e-5)
    assert rigid[-1]["alignment"] is None
    with pytest.raises(ConfigError, match="align"):
        snapshot_frames(run, 0, align="sideways")


def test_snapshot_frames_are_cached(tmp_path, monkeypatch):
    run = make_run(tmp_path, "s", snapshots=3)
    first = snapshot_frames(run, 0, "pca")
    monkeypatch.setattr(maps, "fit_projection", lambda *a, **k: pytest.fail("refitted"))
    second = snapshot_frames(run, 0, "pca")
    for f1, f2 in zip(first, second, strict=True):
        np.testing.assert_array_equal(f1["xy"], f2["xy"])
        assert f1["alignment"] == f2["alignment"]


def test_no_snapshots_is_a_clear_error(run_a):
    with pytest.raises(RunError, match="no snapshots"):
        snapshot_frames(run_a, 0)


def test_run_store_runs_work_too(tmp_path, monkeypatch):
    """The analysis accepts ser_lab.runs.Run objects as well as folder paths."""
    runs = pytest.importorskip("ser_lab.runs")
    monkeypatch.setenv("SER_LAB_CHECKPOINTS", str(tmp_path / "ckpt"))
    store = runs.RunStore(tmp_path / "ckpt")
    run = store.create({"train": {"lam": 0.0, "alpha": 0.5, "seed": 0}}, name="analysis")
    source = make_run(tmp_path, "src")
    with np.load(source / "fold_0" / "embeddings.npz") as data:
        run.save_embeddings(0, **dict(data))
    m = project_fold(store.get(run.run_id), 0, "pca")
    assert m.xy.shape == (N_UTT, 2) and m.run_id == run.run_id
    assert (run.dir / "fold_0" / "projections").is_dir()
    assert run_discriminability(run, 0)["knn"]["accuracy"] == 1.0
