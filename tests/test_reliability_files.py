"""Files and paths, and no code from data (docs/reliability.md, sections 5-6).

- Run ids and names cannot escape the run store, through the library and the CLI.
- Bad corpus paths get one clear line from the CLI (`data describe`, `train`).
- Broken run folders (incompatible version, garbage or truncated files) are listed as broken
  with the reason; `eval` / `predict` on them give a clear error; the rest keeps working.
- Nothing is unpickled from a user-suppliable file: a static scan of the sources, and malicious
  model.pt / last.pt files through the real CLI (the payload must not run).
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ser_lab.cli import main as cli_main
from ser_lab.data.corpora import check_corpus_listing, load_corpus
from ser_lab.paths import PROJECT_ROOT
from ser_lab.runs import Run, RunStore, validate_run_id
from tests.audio_fixtures import write_audio


def tree_digest(root: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under root (folders as "<dir>")."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        out[rel] = "<dir>" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


class _Evil:
    """Unpickling this runs `touch <target>` (if the loader lets it)."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.target}",))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, reliability_cache: Path):
    """A store with one good, finished run (tiny synthetic corpus, 1 epoch, fold 0 of 2)."""
    from ser_lab.config import TrainConfig
    from ser_lab.learn.trainer import new_run, train_run

    base = tmp_path_factory.mktemp("files")
    cache = reliability_cache
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SER_LAB_CACHE", str(cache))
        mp.setenv("SER_LAB_CHECKPOINTS", str(base / "runs"))
        store = RunStore(base / "runs")
        cfg = TrainConfig(
            corpus="synthetic", corpus_options={"size": "tiny"}, epochs=1, n_folds=2, folds=[0],
            workers=1, device="cpu", seed=2,
        )
        good = new_run(cfg, store, name="good")
        with good.lock():
            train_run(good)
        clip = store.root.parent / "clip.wav"
        emb = good.load_embeddings(0)
        shutil.copyfile(_utterance_path(cache, str(emb["utt_ids"][0])), clip)
        yield {"base": base, "cache": cache, "store": store, "good": good, "clip": clip}


def _utterance_path(cache: Path, utt_id: str) -> Path:
    from ser_lab.data.corpora import load_corpus

    manifest = load_corpus("synthetic", size="tiny")
    return Path(next(u.path for u in manifest.utterances if u.utt_id == utt_id))


@pytest.fixture
def cli_env(env, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setenv("SER_LAB_CACHE", str(env["cache"]))
    monkeypatch.setenv("SER_LAB_CHECKPOINTS", str(env["store"].root))
    return env


def cli(env: dict, *args: str) -> list[str]:
    return ["--store", str(env["store"].root), *args]


def copy_run(env: dict, run_id: str) -> Run:
    """A copy of the good run under a new id (config.json's run_id follows)."""
    target = env["store"].root / run_id
    shutil.copytree(env["good"].dir, target)
    config = json.loads((target / "config.json").read_text())
    config["run_id"] = run_id
    (target / "config.json").write_text(json.dumps(config))
    return Run(target)


# ----------------------------------------------------------------------------- ids and names

BAD_IDS = [
    "../../etc", "..", "../x", "/etc", "/tmp/x", "a/b", "a\\b", "-rf", ".hidden", "run;rm -rf ~",
    "run id", "a\nb", "caf\u00e9", "x" * 101, "",
]


@pytest.mark.parametrize("command", ["eval", "predict", "train --resume", "compare"])
@pytest.mark.parametrize("bad", BAD_IDS)
def test_bad_run_ids_through_the_cli(
    cli_env: dict, capsys: pytest.CaptureFixture, command: str, bad: str
) -> None:
    before = tree_digest(cli_env["base"])
    args = {  # "--" / "=": an id such as "-rf" is then an id, not an option
        "eval": ["eval", "--", bad],
        "predict": ["predict", "--", bad, str(cli_env["clip"])],
        "train --resume": ["train", f"--resume={bad}"],
        "compare": ["compare", "--", bad, cli_env["good"].run_id],
    }[command]
    code = cli_main(cli(cli_env, *args))
    err = capsys.readouterr().err
    assert code == 2
    assert re.fullmatch(
        r"error: (invalid run id .*|a run id must not be empty|run id is \d+ characters long .*)\n",
        err, re.S,
    ), err
    assert tree_digest(cli_env["base"]) == before  # nothing created, nothing touched


def test_an_id_that_looks_like_an_option_is_a_usage_error(
    cli_env: dict, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit) as info:
        cli_main(cli(cli_env, "eval", "-rf"))
    assert info.value.code == 2
    assert "error: the following arguments are required: run" in capsys.readouterr().err


def test_cli_eval_dotdot_etc_as_a_process(env: dict) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ser_lab", *cli(env, "eval", "../../etc")], cwd=PROJECT_ROOT,
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "SER_LAB_CACHE": str(env["cache"])},
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: invalid run id '../../etc'")
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "name", ["../../evil", "/etc/passwd", "a/../../b", "..", ".", "-rf", "\u540d\u524d", "x" * 500,
             "tab\tnew\nline\x00nul", "CON", "run;rm -rf ~"],
)
def test_run_names_never_escape_the_store(tmp_path: Path, name: str) -> None:
    store = RunStore(tmp_path / "runs")
    run = store.create({}, name=name)
    assert run.dir.parent == store.root and run.dir.is_dir()
    assert validate_run_id(run.run_id) == run.run_id
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
    assert json.loads((run.dir / "config.json").read_text())["name"] == name.strip()
    assert store.get(run.run_id).config["name"] == name.strip()


# ----------------------------------------------------------------------------- corpus paths


def _silent_corpus(root: Path) -> Path:
    """Label folders whose files have good headers but are all silent (6 speakers, so that the
    default 5-fold split passes the listing's checks and the failure is the decoding's)."""
    for label in ("angry", "sad"):
        for speaker in ("s1", "s2", "s3", "s4", "s5", "s6"):
            (root / label / speaker).mkdir(parents=True)
            write_audio(root / label / speaker / "0.wav", np.zeros(16000, np.float32))
    return root


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", r"folder root does not exist: .*nowhere"),
        ("a file", r"folder root must be a folder, got a file: .*file\.txt"),
        ("empty", r"no usable audio for corpus 'folder' in .*empty \(no labelled audio files found\)"),
        ("only bad files", r"no usable audio for corpus 'folder' in .*bad \(2 unusable file\(s\): unreadable audio .* ×2\)"),
    ],
)
def test_bad_corpus_path_via_data_describe(
    tmp_path: Path, capsys: pytest.CaptureFixture, kind: str, message: str
) -> None:
    root = _corpus_path(tmp_path, kind)
    code = cli_main(["data", "describe", "--corpus", "folder", "--root", str(root)])
    err = capsys.readouterr().err
    assert code == 2
    assert re.fullmatch(rf"error: {message}\n", err), err


def _corpus_path(tmp_path: Path, kind: str) -> Path:
    if kind == "missing":
        return tmp_path / "nowhere"
    if kind == "a file":
        (tmp_path / "file.txt").write_text("x")
        return tmp_path / "file.txt"
    if kind == "empty":
        (tmp_path / "empty").mkdir()
        return tmp_path / "empty"
    if kind == "only bad files":
        (tmp_path / "bad" / "angry").mkdir(parents=True)
        (tmp_path / "bad" / "angry" / "a.wav").write_bytes(b"")
        (tmp_path / "bad" / "angry" / "b.wav").write_text("not audio")
        return tmp_path / "bad"
    if kind == "silent files only":
        return _silent_corpus(tmp_path / "silent")
    raise AssertionError(kind)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", r"folder root does not exist: .*nowhere"),
        ("a file", r"folder root must be a folder, got a file: .*file\.txt"),
        ("empty", r"no usable audio for corpus 'folder' in .*empty \(no labelled audio files found\)"),
        ("only bad files", r"no usable audio for corpus 'folder' in .*bad \(2 unusable file\(s\): unreadable audio .* ×2\)"),
    ],
)
def test_wrong_corpus_path_via_train_leaves_no_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
    kind: str, message: str,
) -> None:
    """A root that is not there, or whose listing has no usable labelled file (names, labels
    and audio headers are read, nothing decoded), is refused before any run folder is made
    (the bench scripts and the app's launcher create runs through the same new_run)."""
    monkeypatch.setenv("SER_LAB_CACHE", str(tmp_path / "cache"))
    store = RunStore(tmp_path / "runs")
    code = cli_main(["--store", str(store.root), "train", "--corpus", "folder", "--root",
                     str(_corpus_path(tmp_path, kind)), "--epochs", "1", "--workers", "1"])
    assert code == 2
    assert re.fullmatch(rf"error: {message}\n", capsys.readouterr().err), kind
    assert not store.root.exists() or store.ids() == []


@pytest.mark.parametrize("model", ["cnn-bigru", "egemaps-svm"])
def test_csv_corpus_without_its_csv_via_train_leaves_no_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, model: str,
) -> None:
    """A CSV corpus pointed at a folder that holds no CSV: the adapter's own error, no run."""
    if model == "egemaps-svm":
        pytest.importorskip("opensmile")
    monkeypatch.setenv("SER_LAB_CACHE", str(tmp_path / "cache"))
    store = RunStore(tmp_path / "runs")
    (tmp_path / "clips").mkdir()
    write_audio(tmp_path / "clips" / "a.wav", np.zeros(16000, np.float32))
    code = cli_main(["--store", str(store.root), "train", "--model", model, "--corpus", "csv",
                     "--root", str(tmp_path / "clips"), "--epochs", "1", "--workers", "1"])
    assert code == 2
    err = capsys.readouterr().err
    assert re.fullmatch(r"error: csv corpus: point root at the CSV file, .*\(found in .*clips: none\)\n", err), err
    assert not store.root.exists() or store.ids() == []


def test_more_folds_than_speakers_via_train_leaves_no_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
) -> None:
    """A split the corpus cannot give is refused from its listing, before a run folder."""
    monkeypatch.setenv("SER_LAB_CACHE", str(tmp_path / "cache"))
    store = RunStore(tmp_path / "runs")
    rng = np.random.default_rng(0)
    for label in ("angry", "sad"):
        for speaker in ("s1", "s2", "s3"):
            (tmp_path / "c" / label / speaker).mkdir(parents=True)
            for i in range(2):
                write_audio(tmp_path / "c" / label / speaker / f"{i}.wav",
                            (0.1 * rng.standard_normal(16000)).astype(np.float32))
    code = cli_main(["--store", str(store.root), "train", "--corpus", "folder", "--root",
                     str(tmp_path / "c"), "--folds", "5", "--epochs", "1", "--workers", "1"])
    assert code == 2
    err = capsys.readouterr().err
    assert re.fullmatch(r"error: the 'speaker' protocol needs at least 5 speakers; the corpus has 3 \(s1, s2, s3\)\n", err), err
    assert not store.root.exists() or store.ids() == []


def test_more_folds_than_synthetic_speakers_leaves_no_run_and_generates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
) -> None:
    """The built-in corpus is listed as it will be generated (4 speakers at size tiny), so an
    impossible split is refused before a run folder exists and before any audio is rendered."""
    monkeypatch.setenv("SER_LAB_CACHE", str(tmp_path / "cache"))
    store = RunStore(tmp_path / "runs")
    code = cli_main(["--store", str(store.root), "train", "--corpus", "synthetic", "--size",
                     "tiny", "--folds", "5", "--epochs", "1", "--workers", "1"])
    assert code == 2
    err = capsys.readouterr().err
    assert re.fullmatch(r"error: the 'speaker' protocol needs at least 5 speakers; the corpus has 4 \(spk01, spk02, spk03, spk04\)\n", err), err
    assert not store.root.exists() or store.ids() == []
    assert not (tmp_path / "cache" / "synthetic").exists()


def test_planned_synthetic_listing_is_the_generated_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SER_LAB_CACHE", str(tmp_path / "cache"))
    planned = check_corpus_listing("synthetic", size="tiny", seed=3)
    generated = load_corpus("synthetic", size="tiny", seed=3)
    assert planned.root == generated.root
    assert [(u.utt_id, u.path, u.label, u.speaker, u.group) for u in planned.utterances] == [
        (u.utt_id, u.path, u.label, u.speaker, u.group) for u in generated.utterances]


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("silent files only", r"no usable audio for corpus 'folder' in .*silent: 12 file\(s\) refused, e\.g\. '.*\.wav': the signal is silent or constant .*"),
    ],
)
def test_bad_corpus_path_via_train(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
    kind: str, message: str,
) -> None:
    """Audio that turns out unusable only when read: a clear one-line error; the run folder
    stays, listed as failed with the same reason."""
    monkeypatch.setenv("SER_LAB_CACHE", str(tmp_path / "cache"))
    store = RunStore(tmp_path / "runs")
    root = _corpus_path(tmp_path, kind)
    code = cli_main(["--store", str(store.root), "train", "--corpus", "folder", "--root", str(root),
                     "--epochs", "1", "--workers", "1", "--name", "../../typo"])
    err = capsys.readouterr().err
    err = err[err.rindex("error: "):]  # after the progress bar's line
    assert code == 2
    assert re.fullmatch(rf"error: {message}\n", err, re.S), err
    [row] = store.list()
    assert row.state == "failed" and row.name == "../../typo"
    assert (store.root / row.run_id).parent == store.root
    assert row.error == err[len("error: "):-1]  # the same one line


# ----------------------------------------------------------------------------- broken run folders


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


BROKEN = {
    # name: (damage, listing problem, eval error, predict error or None if predict still works)
    "v999": (
        lambda r: _edit_config(r, format_version=999),
        "incompatible run format version 999",
        "is broken: incompatible run format version 999 (this SER Lab reads 1)",
        "is broken: incompatible run format version 999",
    ),
    "config-garbage": (
        lambda r: (r.dir / "config.json").write_bytes(b"\x00garbage{"),
        "config.json is not valid JSON",
        "is broken: config.json is not valid JSON",
        "is broken: config.json is not valid JSON",
    ),
    "status-garbage": (
        lambda r: (r.dir / "status.json").write_text("{"),
        "status.json is not valid JSON",
        "is broken: status.json is not valid JSON",
        "is broken: status.json is not valid JSON",
    ),
    "model-truncated": (
        lambda r: _truncate(r.fold_dir(0) / "model.pt"),
        "fold 0 model.pt is truncated or corrupt",
        "fold 0 model.pt is corrupt or unreadable",
        "fold 0 model.pt is corrupt or unreadable",
    ),
    "model-missing": (
        lambda r: (r.fold_dir(0) / "model.pt").unlink(),
        "fold 0 model.pt missing",
        "has no finished fold to evaluate",
        "has no finished fold: nothing to predict with",
    ),
    "embeddings-garbage": (
        lambda r: (r.fold_dir(0) / "embeddings.npz").write_bytes(os.urandom(5000)),
        "fold 0 embeddings.npz is truncated or corrupt",
        "fold 0 embeddings.npz is corrupt or unreadable",
        None,  # predict needs only model.pt
    ),
    "results-garbage": (
        lambda r: (r.dir / "results.json").write_text("[1, 2"),
        "results.json is not valid JSON",
        None,  # eval re-scores from the models, it never reads results.json
        None,
    ),
}


def _edit_config(run: Run, **fields: object) -> None:
    config = json.loads((run.dir / "config.json").read_text())
    config.update(fields)
    (run.dir / "config.json").write_text(json.dumps(config))


@pytest.fixture(scope="module")
def broken(env: dict) -> dict[str, Run]:
    runs = {}
    for name, (damage, *_ignored) in BROKEN.items():
        run = copy_run(env, f"20200101-000000-{name}-0000")
        damage(run)
        runs[name] = run
    return runs


def test_listing_shows_each_broken_run_with_its_reason(env: dict, broken: dict[str, Run]) -> None:
    rows = {row.run_id: row for row in env["store"].list()}
    for name, run in broken.items():
        row = rows[run.run_id]
        assert row.state == "broken", (name, row)
        assert BROKEN[name][1] in row.problem, (name, row.problem)
        assert row.UA is None
    good = rows[env["good"].run_id]
    assert good.state == "done" and good.problem is None and good.UA is not None


def test_cli_runs_lists_broken_runs_with_reasons(
    cli_env: dict, broken: dict[str, Run], capsys: pytest.CaptureFixture
) -> None:
    assert cli_main(cli(cli_env, "runs")) == 0
    out = capsys.readouterr().out
    for name, run in broken.items():
        assert re.search(rf"^{re.escape(run.run_id)} +broken ", out, re.M), name
        assert BROKEN[name][1] in out
    assert re.search(rf"^{re.escape(cli_env['good'].run_id)} +done ", out, re.M)


@pytest.mark.parametrize("name", list(BROKEN))
def test_eval_and_predict_on_a_broken_run(
    cli_env: dict, broken: dict[str, Run], capsys: pytest.CaptureFixture, name: str
) -> None:
    run = broken[name]
    _, _, eval_error, predict_error = BROKEN[name]
    for command, expected in (("eval", eval_error), ("predict", predict_error)):
        args = ["eval", run.run_id] if command == "eval" else ["predict", run.run_id, str(cli_env["clip"])]
        code = cli_main(cli(cli_env, *args))
        out, err = capsys.readouterr()
        if expected is None:
            assert code == 0, (command, err)
            assert "pooled" in out if command == "eval" else re.search(r": (neutral|angry|happy|sad)\n", out)
        else:
            assert code == 2, (command, out)
            assert err.startswith("error: ") and expected in err, (command, err)
            assert err.count("\n") == 1  # one line, no traceback


def test_the_good_run_still_works_next_to_broken_ones(
    cli_env: dict, broken: dict[str, Run], capsys: pytest.CaptureFixture
) -> None:
    good = cli_env["good"]
    assert cli_main(cli(cli_env, "eval", good.run_id)) == 0
    out = capsys.readouterr().out
    pooled = good.read_results()["pooled"]
    assert re.search(rf"^pooled +{100 * pooled['UA']:.2f} +{100 * pooled['WA']:.2f}", out, re.M), out
    assert cli_main(cli(cli_env, "predict", good.run_id, str(cli_env["clip"]))) == 0
    assert cli_main(cli(cli_env, "compare", good.run_id, good.run_id)) == 0


# ----------------------------------------------------------------------------- no code from data

SOURCES = [PROJECT_ROOT / "ser_lab", PROJECT_ROOT / "app_pages", PROJECT_ROOT / "bench", PROJECT_ROOT / "app.py"]


def _python_files(sources: list[Path] = SOURCES) -> list[Path]:
    """Every .py file of `sources`; a source that does not exist fails the scan (it once
    scanned a `pages/` folder that was never there, and so covered no page at all)."""
    files = []
    for source in sources:
        if source.is_file():
            files.append(source)
        elif source.is_dir():
            found = sorted(source.rglob("*.py"))
            assert found, f"{source} holds no Python file"
            files += found
        else:
            raise AssertionError(f"the scan's source {source} does not exist")
    return files


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


def _keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_const(node: ast.AST | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


UNSAFE_CALLS = {
    "pickle.load", "pickle.loads", "pickle.Unpickler", "cPickle.load", "cPickle.loads",
    "joblib.load", "dill.load", "dill.loads", "cloudpickle.load", "cloudpickle.loads",
    "shelve.open", "marshal.load", "marshal.loads", "pd.read_pickle", "pandas.read_pickle",
    "torch.jit.load", "eval", "exec",
}


def unsafe_loads(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, why) for every call that could run code from a file's content."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in ("pickle", "joblib", "dill", "shelve", "marshal"):
            found.append((node.lineno, f"from {node.module} import ..."))
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        if name in UNSAFE_CALLS:
            found.append((node.lineno, name))
        elif name == "torch.load" or name.endswith(".torch.load"):
            if not _is_const(_keyword(node, "weights_only"), True):
                found.append((node.lineno, "torch.load without weights_only=True"))
        elif name in ("np.load", "numpy.load"):
            allow = _keyword(node, "allow_pickle")
            if allow is not None and not _is_const(allow, False):
                found.append((node.lineno, "np.load with allow_pickle not False"))
        elif name in ("yaml.load", "yaml.unsafe_load", "yaml.full_load"):
            loader = _keyword(node, "Loader")
            if name != "yaml.load" or loader is None or "Safe" not in _dotted(loader):
                found.append((node.lineno, f"{name} without a safe loader"))
    return sorted(found)


def test_scanner_catches_what_it_should() -> None:
    bad = (
        "import pickle, torch, numpy as np\n"
        "pickle.load(open('x', 'rb'))\n"
        "torch.load('m.pt')\n"
        "torch.load('m.pt', weights_only=False)\n"
        "np.load('a.npy', allow_pickle=True)\n"
        "from joblib import load\n"
        "eval('1')\n"
    )
    good = "import torch, numpy as np\ntorch.load('m.pt', weights_only=True)\nnp.load('a.npy')\nnp.load('a', allow_pickle=False)\n"
    assert [line for line, _ in unsafe_loads(ast.parse(bad))] == [2, 3, 4, 5, 6, 7]
    assert unsafe_loads(ast.parse(good)) == []


def test_scan_covers_the_pages_and_refuses_a_missing_folder(tmp_path: Path) -> None:
    files = _python_files()
    assert PROJECT_ROOT / "app_pages" / "home.py" in files  # the pages really are scanned
    assert PROJECT_ROOT / "app_pages" / "explore.py" in files
    with pytest.raises(AssertionError, match="does not exist"):
        _python_files([tmp_path / "pages"])
    planted = tmp_path / "app_pages"
    planted.mkdir()
    (planted / "evil.py").write_text("import pickle\npickle.load(open('x', 'rb'))\n")
    found = [unsafe_loads(ast.parse(f.read_text())) for f in _python_files([planted])]
    assert found == [[(2, "pickle.load")]]


def test_no_source_file_unpickles_or_evaluates_data() -> None:
    files = _python_files()
    assert PROJECT_ROOT / "ser_lab" / "runs.py" in files and len(files) > 10
    problems = []
    n_torch_load = 0
    for path in files:
        text = path.read_text(encoding="utf-8")
        n_torch_load += len(re.findall(r"torch\.load\(", text))
        for line, why in unsafe_loads(ast.parse(text, filename=str(path))):
            problems.append(f"{path.relative_to(PROJECT_ROOT)}:{line}: {why}")
    assert problems == []
    assert n_torch_load >= 2  # runs.load_model and trainer.load_fold_state are both scanned


def _malicious_model(run: Run, marker: Path) -> None:
    payload = torch.load(run.fold_dir(0) / "model.pt", weights_only=True)
    payload["x"] = _Evil(marker)
    torch.save(payload, run.fold_dir(0) / "model.pt")


def _python_cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ser_lab", *cli(env, *args)], cwd=PROJECT_ROOT,
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "SER_LAB_CACHE": str(env["cache"])},
    )


def test_malicious_model_does_not_run_through_eval_or_predict(env: dict, tmp_path: Path) -> None:
    run = copy_run(env, "20200101-000000-malicious-model-0000")
    marker = tmp_path / "pwned"
    _malicious_model(run, marker)
    assert b"system" in (run.fold_dir(0) / "model.pt").read_bytes()  # the payload is in there
    for args in (("eval", run.run_id), ("predict", run.run_id, str(env["clip"]))):
        done = _python_cli(env, *args)
        assert done.returncode == 2, done.stderr
        assert re.fullmatch(
            r"error: run \S+: refused fold 0 model.pt: it is corrupt or holds objects other than "
            r"tensors and plain values \(.*system.*\)\n", done.stderr,
        ), done.stderr
        assert not marker.exists()
    shutil.rmtree(run.dir)


@pytest.mark.parametrize("content", ["malicious", "garbage"])
def test_resume_with_a_bad_last_pt_is_refused_and_runs_nothing(
    env: dict, tmp_path: Path, content: str
) -> None:
    """last.pt (the per-epoch resume state) is loaded with weights_only=True as well."""
    run = copy_run(env, f"20200101-000000-bad-last-{content}-0000")
    for name in ("model.pt", "embeddings.npz"):
        (run.fold_dir(0) / name).unlink()
    (run.dir / "results.json").unlink()
    status = json.loads((run.dir / "status.json").read_text())
    (run.dir / "status.json").write_text(json.dumps({**status, "state": "interrupted"}))
    marker = tmp_path / "pwned"
    last = run.fold_dir(0) / "last.pt"
    if content == "malicious":
        torch.save({"epoch": 1, "model": _Evil(marker)}, last)
    else:
        last.write_bytes(b"PK\x03\x04 not really a checkpoint")
    done = _python_cli(env, "train", "--resume", run.run_id)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    error = done.stderr[done.stderr.rindex("error: "):]  # after the progress bar
    assert re.fullmatch(
        rf"error: run {run.run_id}: fold 0 last\.pt \(the resume state\) (was refused|is corrupt)"
        r".*; delete it to train the fold again from its first epoch\n", error,
    ), done.stderr
    assert not marker.exists()
    [row] = [r for r in RunStore(run.dir.parent).list() if r.run_id == run.run_id]
    assert row.state == "failed" and "last.pt" in row.error
    shutil.rmtree(run.dir)


def test_cli_output_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    # `python -m ser_lab runs | head -1`: the reader leaves first; no traceback, exit 141.
    proc = subprocess.Popen(
        [sys.executable, "-m", "ser_lab", "--store", str(tmp_path / "runs"), "runs"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=Path(__file__).resolve().parent.parent,
    )
    proc.stdout.close()  # before the child (still importing) writes anything
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141, err.decode()
    assert b"Traceback" not in err and b"BrokenPipeError" not in err
