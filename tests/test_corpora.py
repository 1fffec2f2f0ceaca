"""Corpus adapters on tiny fake trees laid out like the real corpora, and on the real EmoDB."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from ser_lab.data.corpora import CORPORA, describe, load_corpus
from ser_lab.data.corpora.base import PAPER_EMOTIONS, Manifest
from ser_lab.data.corpora.labels import ordered_labels
from ser_lab.errors import ConfigError, CorpusError
from tests import fake_corpora as fake

EMODB = Path(__file__).resolve().parents[1].parent / "shared/datasets/emodb"


def reasons(manifest: Manifest) -> Counter[str]:
    return Counter(p.reason for p in manifest.problems)


def problem_names(manifest: Manifest) -> set[str]:
    return {Path(p.path).name for p in manifest.problems}


def check_common(manifest: Manifest, corpus: str) -> None:
    """Invariants every adapter's manifest must hold."""
    assert manifest.corpus == corpus
    ids = [u.utt_id for u in manifest.utterances]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for u in manifest.utterances:
        assert Path(u.path).is_absolute() and Path(u.path).is_file()
        assert u.label in manifest.labels
        assert u.corpus == corpus
        assert u.speaker and u.group
    assert manifest.labels == ordered_labels(u.label for u in manifest.utterances)


# ---------------------------------------------------------------- registry


def test_registry_names() -> None:
    assert CORPORA == ("synthetic", "emodb", "iemocap", "ravdess", "cremad", "folder", "csv")


def test_unknown_corpus_lists_valid_names() -> None:
    with pytest.raises(CorpusError, match="emodb.*iemocap.*csv"):
        load_corpus("nope", "/tmp")


@pytest.mark.parametrize("name", ["emodb", "iemocap", "ravdess", "cremad", "folder", "csv"])
def test_root_required_except_synthetic(name: str) -> None:
    with pytest.raises(CorpusError, match="needs a root"):
        load_corpus(name)


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="does not exist"):
        load_corpus("emodb", tmp_path / "absent")


def test_root_is_a_file(tmp_path: Path) -> None:
    file = fake.write_junk(tmp_path / "x.txt")
    with pytest.raises(CorpusError, match="must be a folder"):
        load_corpus("ravdess", file)


def test_empty_root_has_no_usable_audio(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="no usable audio"):
        load_corpus("cremad", tmp_path)


def test_only_problems_names_them(tmp_path: Path) -> None:
    fake.write_junk(tmp_path / "wav" / "03a01Wa.wav")
    with pytest.raises(CorpusError, match="unreadable audio"):
        load_corpus("emodb", tmp_path)


def test_bad_classes_and_options(tmp_path: Path) -> None:
    fake.make_emodb(tmp_path)
    with pytest.raises(ConfigError, match="classes"):
        load_corpus("emodb", tmp_path, classes="three")
    with pytest.raises(ConfigError, match="improvised_only"):
        load_corpus("emodb", tmp_path, improvised_only=True)


# ---------------------------------------------------------------- EmoDB


def test_emodb_fake(tmp_path: Path) -> None:
    m = load_corpus("emodb", fake.make_emodb(tmp_path))
    check_common(m, "emodb")
    assert m.labels == PAPER_EMOTIONS
    assert m.counts_by_label() == {"neutral": 2, "angry": 2, "happy": 2, "sad": 2}
    assert m.counts_by_speaker() == {"03": 4, "08": 4}
    assert all(u.group == u.speaker for u in m.utterances)
    assert all(u.duration == pytest.approx(fake.SECONDS) for u in m.utterances)
    assert m.excluded == {"not in the 4-class subset": {"bored": 1, "disgust": 1, "fearful": 1}}
    assert problem_names(m) == {"03a01Xa.wav", "badname.wav", "notes.txt", "08a04Wc.wav"}
    r = reasons(m)
    assert r["unknown emotion letter 'X'"] == 1
    assert r["name does not match SSTnnEv.wav"] == 1
    assert r["not a .wav file"] == 1
    assert sum(n for k, n in r.items() if k.startswith("unreadable audio")) == 1
    u = next(u for u in m.utterances if u.utt_id == "03a05Tb")
    assert (u.label, u.speaker, Path(u.path)) == ("sad", "03", tmp_path / "wav" / "03a05Tb.wav")


def test_emodb_fake_all_classes_and_wav_root(tmp_path: Path) -> None:
    fake.make_emodb(tmp_path)
    m = load_corpus("emodb", tmp_path / "wav", classes="all")
    check_common(m, "emodb")
    assert m.labels == (*PAPER_EMOTIONS, "bored", "disgust", "fearful")
    assert len(m) == len(fake.EMODB_GOOD)
    assert m.excluded == {}


@pytest.mark.skipif(not EMODB.is_dir(), reason=f"real EmoDB not available at {EMODB}")
def test_emodb_real() -> None:
    m = load_corpus("emodb", EMODB)
    check_common(m, "emodb")
    assert m.counts_by_label() == {"neutral": 79, "angry": 127, "happy": 71, "sad": 62}
    assert len(m) == 339 and len(m.counts_by_speaker()) == 10
    assert m.problems == []
    everything = load_corpus("emodb", EMODB, classes="all")
    assert len(everything) == 535 and len(everything.counts_by_speaker()) == 10
    assert set(everything.counts_by_speaker()) == {
        "03", "08", "09", "10", "11", "12", "13", "14", "15", "16",
    }  # fmt: skip
    assert all(u.duration == pytest.approx(2.0, abs=1e-3) for u in everything.utterances)
    text = describe(m)
    assert "utterances: 339" in text and "speakers: 10" in text
    assert "not in the 4-class subset: 196" in text


# ---------------------------------------------------------------- IEMOCAP


def test_iemocap_fake(tmp_path: Path) -> None:
    m = load_corpus("iemocap", fake.make_iemocap(tmp_path))
    check_common(m, "iemocap")
    assert len(m) == 100
    assert m.counts_by_label() == {"neutral": 20, "angry": 20, "happy": 40, "sad": 20}
    assert sorted(set(m.groups())) == [f"Session{n}" for n in range(1, 6)]
    assert sorted(m.counts_by_speaker()) == [f"Ses0{n}{g}" for n in range(1, 6) for g in "FM"]
    for u in m.utterances:
        assert u.speaker == u.utt_id[:5] + u.utt_id.rsplit("_", 1)[1][0]
        assert u.group == f"Session{int(u.utt_id[3:5])}"
    # A male line inside a dialog recorded from the female session: speaker follows the line.
    u = next(u for u in m.utterances if u.utt_id == "Ses01F_impro01_M001")
    assert (u.speaker, u.label) == ("Ses01M", "neutral")
    assert m.excluded == {
        "no annotator agreement (xxx)": {"xxx": 10},
        "not in the 4-class subset": {"frustrated": 10},
    }
    r = reasons(m)
    assert r == {
        "unknown emotion label 'zzz'": 1,
        "audio file missing": 1,
        "utterance name does not match SesNN[FM]_<dialog>_[FM]nnn": 1,
        "no evaluation lines in file": 1,
    }
    missing = next(p for p in m.problems if p.reason == "audio file missing")
    assert missing.path.endswith("Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F013.wav")


def test_iemocap_excited_merged_and_all_classes(tmp_path: Path) -> None:
    m = load_corpus("iemocap", fake.make_iemocap(tmp_path, sessions=1), classes="all")
    assert m.labels == (*PAPER_EMOTIONS, "frustrated")
    exc = [u for u in m.utterances if u.utt_id.endswith(("_F006", "_M007"))]
    assert len(exc) == 4 and all(u.label == "happy" for u in exc)


def test_iemocap_improvised_only(tmp_path: Path) -> None:
    m = load_corpus("iemocap", fake.make_iemocap(tmp_path), improvised_only=True)
    assert len(m) == 50
    assert all("impro" in u.utt_id for u in m.utterances)
    assert sum(m.excluded["scripted dialog (improvised_only)"].values()) == 55


def test_iemocap_without_sessions(tmp_path: Path) -> None:
    fake.write_wav(tmp_path / "x.wav")
    with pytest.raises(CorpusError, match="Session1"):
        load_corpus("iemocap", tmp_path)


# ---------------------------------------------------------------- RAVDESS


def test_ravdess_fake(tmp_path: Path) -> None:
    m = load_corpus("ravdess", fake.make_ravdess(tmp_path))
    check_common(m, "ravdess")
    assert m.counts_by_label() == {"neutral": 2, "angry": 2, "happy": 2, "sad": 2}
    assert m.counts_by_speaker() == {"Actor_01": 4, "Actor_02": 4}
    u = next(u for u in m.utterances if u.utt_id == "03-01-05-01-01-01-02")
    assert (u.label, u.speaker, u.group) == ("angry", "Actor_02", "Actor_02")
    assert m.excluded["not in the 4-class subset"] == {
        "calm": 2, "disgust": 2, "fearful": 2, "surprised": 2,
    }  # fmt: skip
    assert reasons(m) == {
        "not speech (vocal channel is not 01; 02 = song)": 1,
        "not audio-only (modality is not 03)": 1,
        "unknown emotion code '09'": 1,
        "name does not match MM-VV-EE-II-SS-RR-AA": 1,
        "not an audio file": 1,
    }


def test_ravdess_all_classes(tmp_path: Path) -> None:
    m = load_corpus("ravdess", fake.make_ravdess(tmp_path), classes="all")
    assert m.labels == (*PAPER_EMOTIONS, "calm", "disgust", "fearful", "surprised")
    assert len(m) == 16


# ---------------------------------------------------------------- CREMA-D


def test_cremad_fake(tmp_path: Path) -> None:
    m = load_corpus("cremad", fake.make_cremad(tmp_path))
    check_common(m, "cremad")
    assert m.counts_by_label() == {"neutral": 2, "angry": 2, "happy": 2, "sad": 2}
    assert m.counts_by_speaker() == {"1001": 4, "1002": 4}
    assert m.excluded["not in the 4-class subset"] == {"disgust": 1, "fearful": 1}
    assert problem_names(m) == {
        "1001_DFA_BOR_XX.wav", "1001-DFA-ANG.wav", "1076_MTI_SAD_XX.wav", "SentenceFilenames.csv",
    }  # fmt: skip
    assert reasons(m)["unknown emotion code 'BOR'"] == 1
    empty = next(p for p in m.problems if p.path.endswith("1076_MTI_SAD_XX.wav"))
    assert empty.reason.startswith(("unreadable audio", "empty audio"))
    # Pointing at AudioWAV itself works too.
    assert len(load_corpus("cremad", tmp_path / "AudioWAV")) == 8


# ---------------------------------------------------------------- label folders


def test_folder_paper(tmp_path: Path) -> None:
    m = load_corpus("folder", fake.make_folder(tmp_path))
    check_common(m, "folder")
    assert m.counts_by_label() == {"neutral": 1, "angry": 2, "happy": 2, "sad": 2}
    assert m.counts_by_speaker() == {"spk1": 1, "spk2": 1, "unknown": 5}
    assert m.excluded == {"not in the 4-class subset": {"bored": 1}}
    assert reasons(m) == {
        "not an audio file": 1,
        "label 'whatever' not in the 4-class map": 1,
        "not inside a label folder": 1,
    }
    assert {u.utt_id for u in m.utterances if u.label == "happy"} == {
        "happiness/h1", "happiness/h2",
    }  # fmt: skip


def test_folder_all_keeps_unknown_labels(tmp_path: Path) -> None:
    m = load_corpus("folder", fake.make_folder(tmp_path), classes="all")
    assert m.labels == (*PAPER_EMOTIONS, "bored", "whatever")
    assert len(m) == 9
    assert "label 'whatever' not in the 4-class map" not in reasons(m)


def test_folder_speaker_regex(tmp_path: Path) -> None:
    for i, name in enumerate(["spkA_1", "spkA_2", "spkB_1"]):
        fake.write_wav(tmp_path / "angry" / f"{name}.wav", seed=i)
    fake.write_wav(tmp_path / "angry" / "nospeaker.wav")
    m = load_corpus("folder", tmp_path, speaker_regex=r"^(spk\w)_")
    assert m.counts_by_speaker() == {"spkA": 2, "spkB": 1}
    assert reasons(m) == {"speaker_regex does not match the file name": 1}
    with pytest.raises(ConfigError, match="capturing group"):
        load_corpus("folder", tmp_path, speaker_regex="spk")


# ---------------------------------------------------------------- CSV


def test_csv_paper(tmp_path: Path) -> None:
    csv_path = fake.make_csv(tmp_path)
    m = load_corpus("csv", csv_path)
    check_common(m, "csv")
    assert m.counts_by_label() == {"neutral": 1, "angry": 1, "happy": 1, "sad": 1}
    by_id = {u.utt_id: u for u in m.utterances}
    assert set(by_id) == {"audio/a.wav", "audio/h.wav", "audio/s.wav", "audio/n.wav"}
    assert (by_id["audio/a.wav"].speaker, by_id["audio/a.wav"].group) == ("A", "g1")
    assert by_id["audio/s.wav"].group == "B"  # empty group -> speaker
    assert by_id["audio/n.wav"].label == "neutral"
    assert m.excluded == {"not in the 4-class subset": {"bored": 1}}
    r = reasons(m)
    assert r["label 'meh' not in the 4-class map"] == 1
    assert r["audio file missing"] == 1
    assert r["empty label"] == 1 and r["empty path"] == 1
    assert sum(n for k, n in r.items() if k.startswith("unreadable audio")) == 1
    # A folder holding exactly one CSV works like the file itself.
    assert len(load_corpus("csv", tmp_path)) == 4


def test_csv_all_and_bad_header(tmp_path: Path) -> None:
    m = load_corpus("csv", fake.make_csv(tmp_path), classes="all")
    assert m.labels == (*PAPER_EMOTIONS, "bored", "meh")
    bad = fake.write_junk(tmp_path / "other" / "x.csv", "file,emotion\na.wav,sad\n")
    with pytest.raises(CorpusError, match="header must be path,label"):
        load_corpus("csv", bad)
    fake.write_junk(tmp_path / "other" / "y.csv", "path,label\n")
    with pytest.raises(CorpusError, match="exactly one .csv"):
        load_corpus("csv", tmp_path / "other")


# ---------------------------------------------------------------- describe


def test_describe_lists_counts_and_problems(tmp_path: Path) -> None:
    m = load_corpus("emodb", fake.make_emodb(tmp_path))
    text = describe(m, max_problems=2)
    lines = text.splitlines()
    assert "corpus: emodb" in lines and "utterances: 8" in lines and "speakers: 2" in lines
    assert any(line.split() == ["neutral", "2", "(25.0", "%)"] for line in lines)
    assert any(line.split() == ["speaker", *PAPER_EMOTIONS, "total"] for line in lines)
    assert any(line.split() == ["03", "1", "1", "1", "1", "4"] for line in lines)
    assert any(line.split() == ["total", "2", "2", "2", "2", "8"] for line in lines)
    assert "not in the 4-class subset: 3 (bored 1, disgust 1, fearful 1)" in lines
    assert "problems: 4" in lines
    assert "  name does not match SSTnnEv.wav: 1" in lines
    assert "first 2:" in lines
    assert "duration: 4.8 s total" in text


def test_describe_shows_groups_when_they_differ(tmp_path: Path) -> None:
    m = load_corpus("iemocap", fake.make_iemocap(tmp_path, sessions=2))
    text = describe(m)
    assert "groups: 2 (Session1, Session2)" in text
    assert "no annotator agreement (xxx): 4 (xxx 4)" in text
