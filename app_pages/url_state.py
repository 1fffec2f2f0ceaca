"""A page's choices kept in its URL (`st.query_params`), shared by Compare and Explore (not a
page itself: app.py does not route to it).

A pasted link is read once, when it differs from what this page last wrote; its values are
applied to the page's widgets as each widget's options become known (a fold list exists only
once a run is chosen), and a value not valid here any more is dropped with a note.
"""

import streamlit as st

from ser_lab import export as exp


class UrlState:
    """The link state of one page: `prefix` names its session keys, `widgets` maps each URL
    key to the widget key it sets, `what` to the name a note uses for it."""

    def __init__(self, prefix: str, widgets: dict[str, str], what: dict[str, str]) -> None:
        self.pending_key, self.seen_key = f"{prefix}_url_pending", f"{prefix}_url_seen"
        self.widgets, self.what = widgets, what
        query = st.query_params.to_dict()
        if query != st.session_state.get(self.seen_key):  # a new link, not our own last write
            st.session_state[self.pending_key] = dict(query)
            st.session_state[self.seen_key] = query

    def asks_for(self, key: str) -> bool:
        """Whether the link still holds a value for `key`, not yet applied."""
        return (st.session_state.get(self.pending_key) or {}).get(key) is not None

    def apply(self, allowed: dict, convert=str) -> list[str]:
        """Put the link's valid choices among `allowed` into the session state; the notes."""
        pending = st.session_state.get(self.pending_key) or {}
        asked = {k: pending.pop(k) for k in list(pending) if k in allowed}
        choices, notes = exp.read_view(asked, allowed, self.what)
        for key, value in choices.items():
            st.session_state[self.widgets[key]] = convert(value)
        return notes

    def finish(self) -> None:
        """The link is read: what it held that no widget took is forgotten."""
        st.session_state.pop(self.pending_key, None)

    def write(self, **values) -> None:
        """The page's current choices into the URL, so that a copied link opens the same view."""
        params = {k: str(v) for k, v in values.items() if v is not None}
        if st.query_params.to_dict() != params:
            st.query_params.from_dict(params)
        st.session_state[self.seen_key] = params


def keep_choice(key: str, options: list, default) -> None:
    """A widget's state must be one of its options (a run may be gone since)."""
    if st.session_state.get(key) not in options:
        st.session_state[key] = default
