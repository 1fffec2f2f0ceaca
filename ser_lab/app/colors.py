"""One color per emotion, the same on every page and in every plot.

A reader who has learned "red is angry" on the Compare page must not find red meaning sad on
the Explore page, so every figure asks this module for its colors instead of letting plotly
pick them in order of appearance. The paper's four emotions have fixed colors (neutral grey,
angry red, happy gold, sad blue); the other emotions a corpus may have (with
classes="all") get fixed colors too, and a name nobody foresaw gets one from a fallback
palette chosen by a stable hash of the name, so it is the same in every process and does not
depend on which other classes are present.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

EMOTION_COLORS: dict[str, str] = {
    # the paper's four
    "neutral": "#8c8c8c",  # grey
    "angry": "#d62728",  # red
    "happy": "#f2a900",  # gold / orange
    "sad": "#1f77b4",  # blue
    # the other emotions of EmoDB, IEMOCAP, RAVDESS and CREMA-D (see corpora/labels.py)
    "fearful": "#9467bd",  # purple
    "disgust": "#2ca02c",  # green
    "surprised": "#e377c2",  # pink
    "bored": "#8c564b",  # brown
    "calm": "#17becf",  # teal
    "frustrated": "#bcbd22",  # olive
    "other": "#7f7f7f",
}

# For class names not listed above; none of these is close to the four paper colors.
FALLBACK_PALETTE: tuple[str, ...] = (
    "#393b79",
    "#637939",
    "#8c6d31",
    "#843c39",
    "#7b4173",
    "#3182bd",
    "#e6550d",
    "#31a354",
    "#756bb1",
    "#636363",
)

CENTER_OUTLINE = "#111111"  # outline of class-center markers, on every map
CLIP_COLOR = "#000000"  # the uploaded clip's star on the Explore map


def emotion_color(name: str) -> str:
    """The hex color of an emotion (fixed for known names, a stable fallback otherwise)."""
    key = str(name).strip().lower()
    if key in EMOTION_COLORS:
        return EMOTION_COLORS[key]
    return FALLBACK_PALETTE[zlib.crc32(key.encode("utf-8")) % len(FALLBACK_PALETTE)]


def color_map(names: Iterable[str]) -> dict[str, str]:
    """{name: color} for plotly's `color_discrete_map`."""
    return {str(n): emotion_color(n) for n in names}


def hex_to_rgba(color: str, alpha: float) -> str:
    """'#rrggbb' as a CSS 'rgba(r,g,b,alpha)' string (for translucent fills)."""
    c = color.lstrip("#")
    if len(c) != 6:
        raise ValueError(f"expected a color like '#rrggbb', got {color!r}")
    r, g, b = (int(c[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha:g})"
