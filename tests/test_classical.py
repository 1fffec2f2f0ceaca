"""The eGeMAPS + linear SVM baseline: run folder shape, the lab's folds, C chosen without the
test fold, results equal to scikit-learn's own predictions, and a clear error without openSMILE."""

import importlib.util
import json
import sys

import numpy as np
import pytest

from ser_lab import cli
from ser_lab.errors import ConfigError, RunError
from ser_lab.learn import classical
from ser_lab.runs import RunStore
from tests.app_fixtures import environment

HAVE_OPENSMILE = importlib.util.find_spec("opensmile") is not None
needs_opensmile = pytest.mark.skipif(not HAVE_OPENSMILE, reason="opensmile (requirements-classical.txt) not installed")

TINY = dict(corpus="synthetic", corpus_options={"size": "tiny"}, n_folds=2, workers=1, seed=1)


@pytest.fixture(scope="module")
def svm_env(tmp_path_factory):
    """A tiny synthetic corpus and one finished eGeMAPS + SVM run (trained once per module)."""
    if not HAVE_OPENSMILE:
        pytest.skip("opensmile (requirements-classical.txt) not installed")
    base = tmp_path_factory.mktemp("classical")
    with environment(SER_LAB_CACHE=str(base / "cache"), SER_LAB_CHECKPOINTS=str(base / "runs")):
        store = RunStore(base / "runs")
        run = classical.new_classical_run(classical.ClassicalConfig(**TINY), store, name="svm")
        with run.lock():
            results = classical.train_classical_run(run)
        yield {"store": store, "run": run, "results": results, "base": base}


@needs_opensmile
def test_run_folder_has_the_shape_of_a_cnn_run(svm_env):
    run, results = svm_env["run"], svm_env["results"]
    files = {p.relative_to(run.dir).as_posix() for p in run.dir.rglob("*") if p.is_file()}
    assert {"config.json", "status.json", "results.json"} <= files
    assert run.folds_done() == [0, 1]
    config = json.loads((run.dir / "config.json").read_text())
    assert config["model"] == "egemaps-svm" and config["features"] == "egemaps"
    assert config["data"]["fingerprint"] and config["classical"]["n_features"] == 88
    assert run.read_status()["state"] == "done"
    assert [f["fold"] for f in results["folds"]] == [0, 1]
    labels = results["labels"]
    for entry in results["folds"]:
        assert entry["C"] in classical.C_GRID
        assert np.array(entry["confusion"]).shape == (len(labels), len(labels))
        assert [s["C"] for s in entry["c_search"]] == sorted(classical.C_GRID)
        emb = run.load_embeddings(entry["fold"])
        n = len(emb["z"])
        assert emb["z"].shape == (n, 88) and emb["probs"].shape == (n, len(labels))
        assert np.allclose(emb["probs"].sum(1), 1, atol=1e-5)
        assert (emb["probs"].argmax(1) == emb["preds"]).all()
        train = emb["split"] == "train"
        # the standardised training features have mean 0 and unit (or zero) std per column
        assert np.allclose(emb["z"][train].mean(0), 0, atol=1e-4)
        means = np.stack([emb["z"][train][emb["labels"][train] == c].mean(0) for c in range(len(labels))])
        assert np.allclose(emb["centers"], means, atol=1e-5)
        assert list(emb["label_names"]) == labels
    row = next(s for s in svm_env["store"].list() if s.run_id == run.run_id)
    assert row.state == "done" and row.features == "egemaps" and row.lam is None
    assert row.UA == pytest.approx(results["mean"]["UA"])


@needs_opensmile
def test_folds_are_exactly_the_cnn_folds(svm_env):
    from ser_lab.config import TrainConfig
    from ser_lab.learn.trainer import load_data

    with environment(SER_LAB_CACHE=str(svm_env["base"] / "cache")):
        manifest, _, folds = load_data(TrainConfig(**TINY))
    ids = np.array([u.utt_id for u in manifest.utterances])
    for k, fold in enumerate(folds):
        emb = svm_env["run"].load_embeddings(k)
        for part in ("train", "val", "test"):
            assert sorted(emb["utt_ids"][emb["split"] == part]) == sorted(ids[getattr(fold, part)])


@needs_opensmile
def test_results_equal_sklearn_predictions_recomputed(svm_env):
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    from ser_lab.config import TrainConfig
    from ser_lab.learn.metrics import scores
    from ser_lab.learn.trainer import load_data

    run, results = svm_env["run"], svm_env["results"]
    with environment(SER_LAB_CACHE=str(svm_env["base"] / "cache")):
        manifest, _, folds = load_data(TrainConfig(**TINY))
        x = classical.extract_functionals(manifest, cache=classical.FunctionalsCache())
        fresh = classical.extract_functionals(manifest.subset([0, 1, 2]), cache=None)
        assert np.array_equal(x[:3], fresh)  # cached = computed afresh
        rescored = classical.rescore_run(run)
    y = manifest.label_ids()
    ids = np.array([u.utt_id for u in manifest.utterances])
    for k, fold in enumerate(folds):
        entry = results["folds"][k]
        scaler = StandardScaler().fit(x[fold.train])
        clf = LinearSVC(C=entry["C"], class_weight="balanced", dual=False,
                        max_iter=classical.MAX_ITER, random_state=1)
        clf.fit(scaler.transform(x[fold.train]), y[fold.train])
        pred = clf.predict(scaler.transform(x[fold.test]))
        emb = run.load_embeddings(k)
        saved = dict(zip(emb["utt_ids"], emb["preds"]))
        assert [saved[u] for u in ids[fold.test]] == pred.tolist()
        s = scores(y[fold.test], pred, manifest.labels)
        assert entry["UA"] == pytest.approx(s["UA"]) and entry["confusion"] == s["confusion"]
        assert rescored["folds"][k]["UA"] == pytest.approx(entry["UA"])


def _separable(seed=0, n=120):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.standard_normal((n, 88)) + 0.8 * np.eye(4)[y] @ rng.standard_normal((4, 88))
    idx = rng.permutation(n)
    return x, y, idx[:70], idx[70:90], idx[90:]


@needs_opensmile
def test_c_is_chosen_on_validation_never_on_test():
    x, y, train, val, test = _separable()
    fit = classical.fit_fold(x, y, train, val, 4)
    # the test rows can be anything at all: labels permuted, features replaced by noise
    y2, x2 = y.copy(), x.copy()
    y2[test] = np.random.default_rng(5).permutation(y[test])
    x2[test] = np.random.default_rng(6).standard_normal((len(test), 88)) * 100
    fit2 = classical.fit_fold(x2, y2, train, val, 4)
    assert fit2.C == fit.C and np.array_equal(fit2.coef, fit.coef)
    # ... while the validation labels do decide: the kept C is the best on them (ties: smaller)
    best = max(s["val_UA"] for s in fit.search)
    assert fit.C == min(s["C"] for s in fit.search if s["val_UA"] == best)
    y3 = y.copy()
    y3[val] = np.random.default_rng(7).permutation(y[val])
    fit3 = classical.fit_fold(x, y3, train, val, 4)
    assert [s["train_UA"] for s in fit3.search] == [s["train_UA"] for s in fit.search]
    assert [s["val_UA"] for s in fit3.search] != [s["val_UA"] for s in fit.search]


@needs_opensmile
def test_fit_fold_binary_case_gives_two_columns():
    x, y, train, val, _ = _separable()
    y = (y > 1).astype(np.int64)
    fit = classical.fit_fold(x, y, train, val, 2)
    assert fit.coef.shape == (2, 88)
    z, probs, preds = fit.outputs(x[val])
    assert probs.shape == (len(val), 2) and (probs.argmax(1) == preds).all()


@needs_opensmile
def test_svm_run_degrades_gracefully_where_a_network_is_needed(svm_env):
    from ser_lab.analysis.compare import compare_runs
    from ser_lab.analysis.maps import project_fold
    from ser_lab.inference import Predictor

    run = svm_env["run"]
    with pytest.raises(RunError, match="eGeMAPS \\+ SVM baseline run"):
        Predictor.from_run(run, fold=0)
    fold_map = project_fold(run, 0, "pca")  # the maps of Compare work on z = functionals
    assert fold_map.xy.shape == (len(run.load_embeddings(0)["z"]), 2)
    comparison = compare_runs(run, run)
    assert comparison["diff"]["UA"] == 0
    assert np.isfinite(comparison["a"]["discriminability"]["test"]["fisher"])


@needs_opensmile
def test_saved_svm_arrays_reproduce_the_saved_predictions(svm_env):
    run = svm_env["run"]
    svm, names = classical.load_svm(run, 0)
    emb = run.load_embeddings(0)
    assert names == list(emb["label_names"])
    d = svm.decision(emb["z"])
    assert (d.argmax(1) == emb["preds"]).all()
    (run.dir / "fold_0" / "svm.npz").write_bytes(b"junk")
    try:
        with pytest.raises(RunError, match="svm.npz is corrupt"):
            classical.load_svm(run, 0)
        assert next(s for s in svm_env["store"].list() if s.run_id == run.run_id).state == "broken"
    finally:
        classical.save_svm(run, 0, svm, names)


def test_missing_opensmile_is_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "opensmile", None)  # import opensmile now raises ImportError
    classical._smile.cache_clear()
    monkeypatch.setenv("SER_LAB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ConfigError, match="requirements-classical.txt"):
        classical.require_opensmile()
    code = cli.main(["--store", str(tmp_path / "runs"), "train", "--model", "egemaps-svm", "--size", "tiny"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "opensmile" in err and "requirements-classical.txt" in err
    assert RunStore(tmp_path / "runs").ids() == []  # no run folder was left behind
    classical._smile.cache_clear()


def test_bad_c_grid_is_refused():
    with pytest.raises(ConfigError, match="C grid"):
        classical.ClassicalConfig(c_grid=[0.1, -1]).validate()
    with pytest.raises(ConfigError, match="C grid"):
        classical.ClassicalConfig(c_grid=[]).validate()


@needs_opensmile
def test_bench_script_summarises_seeds_and_folds(svm_env, tmp_path, monkeypatch):
    import importlib

    monkeypatch.syspath_prepend(str(classical.paths.PROJECT_ROOT / "bench"))
    bench = importlib.import_module("classical")
    out = tmp_path / "svm.json"
    argv = ["classical.py", "--corpus", "synthetic", "--size", "tiny", "--folds", "2", "--seeds", "1", "2",
            "--store", str(tmp_path / "runs"), "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    with environment(SER_LAB_CACHE=str(svm_env["base"] / "cache")):
        bench.main()
    summary = json.loads(out.read_text())
    assert [s["seed"] for s in summary["per_seed"]] == [1, 2]
    # seed 1 is the module's run on the same folds: the same numbers
    assert summary["per_seed"][0]["fold_UA"] == pytest.approx([100 * f["UA"] for f in svm_env["results"]["folds"]])
    units = summary["units"]["UA"]
    assert units["n"] == 4 and units["t95"][0] <= units["mean"] <= units["t95"][1]
    assert units["mean"] == pytest.approx(summary["UA_mean"])  # equal folds per seed
    assert summary["code"]["commit"] and summary["machine"]["opensmile"]
    assert summary["distinct_splits"] in (1, 2)


@needs_opensmile
def test_functionals_from_a_process_pool_equal_one_process(svm_env):
    from ser_lab.config import TrainConfig
    from ser_lab.learn.trainer import load_data

    with environment(SER_LAB_CACHE=str(svm_env["base"] / "cache")):
        manifest, _, _ = load_data(TrainConfig(**TINY))
        part = manifest.subset([0, 1, 2])
        assert np.array_equal(
            classical.extract_functionals(part, cache=None, workers=2),
            classical.extract_functionals(part, cache=None, workers=1),
        )


def test_unreadable_file_is_a_corpus_error_naming_it(tmp_path):
    from ser_lab.data.corpora.base import Manifest, Utterance
    from ser_lab.errors import CorpusError

    if not HAVE_OPENSMILE:
        pytest.skip("opensmile not installed")
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    manifest = Manifest("x", str(tmp_path), ("a",), [Utterance("u", str(bad), "a", "s", "s", 1.0, "x")])
    with pytest.raises(CorpusError, match="bad.wav: cannot compute eGeMAPS functionals"):
        classical.extract_functionals(manifest, cache=None)


def test_wrong_corpus_root_leaves_no_run(tmp_path, capsys):
    code = cli.main(["--store", str(tmp_path / "runs"), "train", "--model", "egemaps-svm",
                     "--corpus", "emodb", "--root", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == f"error: emodb root does not exist: {tmp_path / 'nowhere'}"
    assert not (tmp_path / "runs").exists() or RunStore(tmp_path / "runs").ids() == []
