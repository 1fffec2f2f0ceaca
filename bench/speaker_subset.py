"""A corpus cut down to some of its speakers, as a CSV list for the lab's `csv` adapter (the
audio stays where it is; only paths are written).

    python bench/speaker_subset.py --corpus emodb --root ../shared/datasets/emodb \
        --speakers 03 08 09 10 11 13 --out /tmp/emodb6/emodb6.csv

The rows (path,label,speaker) are the corpus's own manifest (`ser_lab.data.corpora.load_corpus`,
the paper's four classes) for the chosen speakers, sorted by path. Used to try the default recipe
on a corpus with as few speakers as the small corpora users bring (README, *Few speakers*):

    python bench/classical.py --corpus csv --root /tmp/emodb6/emodb6.csv --seeds 0
    python bench/reproduce.py --corpus csv --root /tmp/emodb6/emodb6.csv --seeds 0
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import EMODB_ROOT  # noqa: E402

from ser_lab.data.corpora import load_corpus  # noqa: E402
from ser_lab.errors import ConfigError  # noqa: E402
from ser_lab.fileio import atomic_write_text  # noqa: E402


def subset_rows(corpus: str, root: str | None, speakers: list[str]) -> list[tuple[str, str, str]]:
    """(path, label, speaker) of every usable utterance of `speakers`, sorted by path."""
    manifest = load_corpus(corpus, root)
    wanted = set(speakers)
    known = {u.speaker for u in manifest.utterances}
    missing = sorted(wanted - known)
    if missing:
        raise ConfigError(f"no speaker {', '.join(missing)} in {corpus} (it has {', '.join(sorted(known))})")
    return sorted((u.path, u.label, u.speaker) for u in manifest.utterances if u.speaker in wanted)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", default="emodb")
    p.add_argument("--root", default=str(EMODB_ROOT))
    p.add_argument("--speakers", nargs="+", required=True)
    p.add_argument("--out", required=True, help="the CSV file to write")
    args = p.parse_args(argv)
    rows = subset_rows(args.corpus, args.root, args.speakers)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(("path", "label", "speaker"))
    writer.writerows(rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, text.getvalue())
    print(f"{args.out}: {len(rows)} utterances of {len(set(args.speakers))} speakers")


if __name__ == "__main__":
    main()
