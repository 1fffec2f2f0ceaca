"""One list of corpora and one list of pages, from which everything else is derived."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from ser_lab.app import pages
from ser_lab.cli import build_parser
from ser_lab.data.corpora import CORPORA, REGISTRY
from ser_lab.paths import app_dir

ROOT = Path(__file__).resolve().parent.parent


def _choices(parser, *path: str) -> tuple:
    action = next(a for a in parser._actions if a.dest == "command")
    sub = action.choices[path[0]]
    if len(path) > 1:
        sub = next(a for a in sub._actions if a.dest == "data_command").choices[path[1]]
    return tuple(next(a for a in sub._actions if a.dest == "corpus").choices)


def test_every_corpus_has_one_entry_with_a_loader():
    assert CORPORA == tuple(REGISTRY) and len(set(CORPORA)) == len(CORPORA)
    for name, entry in REGISTRY.items():
        assert entry.name == name and entry.help.strip()
        assert callable(getattr(importlib.import_module(entry.module), entry.loader))
    assert [n for n, e in REGISTRY.items() if not e.needs_root] == ["synthetic"]


def test_the_command_line_and_the_docs_offer_the_registry():
    parser = build_parser()
    assert _choices(parser, "train") == CORPORA
    assert _choices(parser, "data", "describe") == CORPORA
    # the README's corpus table: one row per registry entry, in the same order
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Corpora", 1)[1].split("\n## ", 1)[0]
    names = re.findall(r"^\| `([a-z]+)` \|", section, re.M)
    assert tuple(names) == CORPORA


# Modules in app_pages/ that pages import, not pages themselves.
NOT_PAGES = {"corpus_form.py", "url_state.py"}


def test_every_page_is_registered_once():
    folder = app_dir()
    scripts = sorted(p.relative_to(folder).as_posix() for p in (folder / "app_pages").glob("*.py")
                     if p.name not in NOT_PAGES)
    assert sorted(p.path for p in pages.PAGES) == scripts
    assert len({p.url_path for p in pages.PAGES}) == len(pages.PAGES)
    assert [p.url_path for p in pages.PAGES if p.default] == ["home"]
    assert pages.page("compare").path == "app_pages/compare.py"
    # app.py builds its navigation from the registry and names no page itself
    app = (folder / "app.py").read_text()
    assert "pages.PAGES" in app and "app_pages/" not in app.split("PAGES = [", 1)[1]
