"""Plotly figures of the app, built from plain arrays and tables (no Streamlit here).

Every figure colors classes with `ser_lab.app.colors`, so an emotion has one color on every page.
Maps draw train points as filled circles and test points as open diamonds, class centers as
large crosses outlined in black, and keep x and y on the same scale (distances on a map are
only comparable when a unit is as long up as across).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ser_lab.app.colors import CENTER_OUTLINE, CLIP_COLOR, emotion_color, hex_to_rgba

MAP_HEIGHT = 440
SPLIT_SYMBOLS = {"train": "circle", "val": "square", "test": "diamond-open"}
HOVER_POINT = (
    "%{customdata[0]}<br>true: %{customdata[1]}<br>predicted: %{customdata[2]}<br>"
    "%{customdata[3]}<extra></extra>"
)


LEGEND_TOP = dict(orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1.0)
LEGEND_BELOW = dict(orientation="h", yanchor="top", y=-0.05, xanchor="left", x=0.0)


def _layout(
    fig: go.Figure,
    title: str | None,
    height: int,
    *,
    legend: dict | None = None,
    margin: dict | None = None,
    **kw,
) -> go.Figure:
    """Shared layout: a left-aligned title, tight margins, a horizontal legend (above the plot
    by default; maps put it below, so it never covers the title)."""
    base_margin = dict(l=10, r=10, t=60 if title else 30, b=10)
    fig.update_layout(
        title=dict(text=title, x=0.01, xanchor="left", y=0.98, yanchor="top") if title else None,
        height=height,
        margin={**base_margin, **(margin or {})},
        legend=legend or LEGEND_TOP,
        **kw,
    )
    return fig


def _equal_axes(fig: go.Figure, row: int | None = None, col: int | None = None) -> None:
    """Map axes: no ticks or grid (the coordinates of a projection mean nothing by themselves),
    a light frame."""
    kw = {} if row is None else {"row": row, "col": col}
    frame = dict(
        showticklabels=False,
        title=None,
        zeroline=False,
        showgrid=False,
        showline=True,
        mirror=True,
        linecolor="#dddddd",
    )
    fig.update_xaxes(**frame, **kw)
    fig.update_yaxes(**frame, **kw)


# ----------------------------------------------------------------------------- maps


def _point_traces(
    points: pd.DataFrame, label_names: Sequence[str], *, legend: bool = True
) -> list[go.Scatter]:
    """One trace per (class, split); the legend has one entry per class (split = symbol)."""
    traces = []
    for name in label_names:
        first = True
        for split in ("train", "val", "test"):
            sub = points[(points["label"] == name) & (points["split"] == split)]
            if sub.empty:
                continue
            color = emotion_color(name)
            traces.append(
                go.Scatter(
                    x=sub["x"],
                    y=sub["y"],
                    mode="markers",
                    name=name,
                    legendgroup=name,
                    showlegend=legend and first,
                    marker=dict(
                        color=hex_to_rgba(color, 0.55) if split == "train" else color,
                        symbol=SPLIT_SYMBOLS[split],
                        size=7 if split == "train" else 9,
                        line=dict(width=1.5 if split != "train" else 0, color=color),
                    ),
                    customdata=np.stack(
                        [sub["utt_id"], sub["label"], sub["pred"], sub["split"]], axis=1
                    ),
                    hovertemplate=HOVER_POINT,
                )
            )
            first = False
    return traces


def outward_positions(points: np.ndarray, away_from: np.ndarray | None = None) -> list[str]:
    """A text position per point that puts its label on the side facing away from
    `away_from` (default: the points' mean), so labels of nearby points do not pile up."""
    pts = np.asarray(points, dtype=float)
    ref = pts.mean(axis=0) if away_from is None else np.asarray(away_from, dtype=float)
    out = []
    for dx, dy in pts - ref:
        if abs(dy) >= abs(dx):
            out.append("top center" if dy >= 0 else "bottom center")
        else:
            out.append("middle right" if dx > 0 else "middle left")
    return out


def _center_trace(
    centers_xy: np.ndarray,
    label_names: Sequence[str],
    *,
    legend: bool = True,
    texts: Sequence[str] | None = None,
    positions: Sequence[str] | str = "top center",
) -> go.Scatter:
    return go.Scatter(
        x=centers_xy[:, 0],
        y=centers_xy[:, 1],
        mode="markers+text",
        name="class centers",
        showlegend=legend,
        text=list(texts) if texts is not None else [f"<b>{n}</b>" for n in label_names],
        textposition=list(positions) if not isinstance(positions, str) else positions,
        textfont=dict(color=CENTER_OUTLINE, size=12),
        marker=dict(
            symbol="x",
            size=18,
            color=[emotion_color(n) for n in label_names],
            line=dict(width=2, color=CENTER_OUTLINE),
        ),
        customdata=list(label_names),
        hovertemplate="center of %{customdata}<extra></extra>",
    )


def map_figure(
    points: pd.DataFrame,
    centers_xy: np.ndarray,
    label_names: Sequence[str],
    title: str | None = None,
    *,
    clip_xy: np.ndarray | None = None,
    clip_distances: Sequence[float] | None = None,
    highlight: str | None = None,
    height: int = MAP_HEIGHT,
) -> go.Figure:
    """A 2-D map of z: points colored by true class, class centers, optionally an uploaded
    clip as a star with dashed lines to every center. The distance of the clip to a center in
    z is written into that center's own label ("angry · 1.23"), and each label sits on the side
    of its center facing away from the clip, so labels, lines and the star do not overlap."""
    fig = go.Figure(_point_traces(points, label_names))
    centers = np.asarray(centers_xy, dtype=float)
    if clip_xy is not None:
        clip = np.asarray(clip_xy, dtype=float).reshape(2)
        texts = [
            f"<b>{n}</b>" + (f" · {clip_distances[j]:.2f}" if clip_distances is not None else "")
            for j, n in enumerate(label_names)
        ]
        # away from the clip (and from the other centers, when the clip sits among them)
        ref = 0.5 * clip + 0.5 * centers.mean(axis=0)
        fig.add_trace(
            _center_trace(
                centers, label_names, texts=texts, positions=outward_positions(centers, ref)
            )
        )
    else:
        fig.add_trace(
            _center_trace(centers, label_names, positions=outward_positions(centers))
        )
    if highlight is not None:
        sel = points[points["utt_id"] == highlight]
        if not sel.empty:
            fig.add_trace(
                go.Scatter(
                    x=sel["x"],
                    y=sel["y"],
                    mode="markers",
                    name="selected",
                    showlegend=False,
                    marker=dict(
                        size=20, symbol="circle-open", color=CLIP_COLOR, line=dict(width=3)
                    ),
                    hoverinfo="skip",
                )
            )
    if clip_xy is not None:
        clip = np.asarray(clip_xy, dtype=float).reshape(2)
        for j, name in enumerate(label_names):
            cx, cy = np.asarray(centers_xy)[j]
            fig.add_trace(
                go.Scatter(
                    x=[clip[0], cx],
                    y=[clip[1], cy],
                    mode="lines",
                    showlegend=False,
                    line=dict(color=emotion_color(name), dash="dash", width=2),
                    hoverinfo="skip",
                )
            )
        fig.add_trace(
            go.Scatter(
                x=[clip[0]],
                y=[clip[1]],
                mode="markers",
                name="your clip",
                marker=dict(
                    symbol="star", size=22, color=CLIP_COLOR, line=dict(width=1, color="white")
                ),
                hovertemplate="your clip<extra></extra>",
            )
        )
    _layout(
        fig,
        title,
        height,
        legend=LEGEND_BELOW,
        margin=dict(b=40),
        plot_bgcolor="white",
        clickmode="event+select",
        dragmode="pan",
    )
    _equal_axes(fig)
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return fig


def snapshot_figure(
    frames_a: list[dict],
    frames_b: list[dict] | None,
    label_names: Sequence[str],
    titles: Sequence[str],
    *,
    height: int = MAP_HEIGHT,
) -> go.Figure:
    """The maps of one or two runs over the epochs, animated with a shared slider and a play
    button (plotly animates in the browser; no page reruns).

    Frames are shown in the order of `frames_a`, keyed by their "key" (default: the epoch)
    and labelled on the slider by their "label"; only keys every panel has are drawn. The
    figure opens on the last frame."""
    panels = [frames_a] + ([frames_b] if frames_b else [])

    def key(f: dict) -> str:
        return str(f.get("key", f["epoch"]))

    shared = set.intersection(*[{key(f) for f in p} for p in panels])
    epochs = [key(f) for f in frames_a if key(f) in shared]
    labels = {key(f): str(f.get("label", f["epoch"])) for f in frames_a}
    by_epoch = [{key(f): f for f in p} for p in panels]
    fig = make_subplots(
        rows=1,
        cols=len(panels),
        subplot_titles=list(titles)[: len(panels)],
        horizontal_spacing=0.04,
    )

    def traces(epoch: str) -> list[go.Scatter]:
        out = []
        for i, frames in enumerate(by_epoch):
            f = frames[epoch]
            names = np.asarray(label_names)
            pts = pd.DataFrame(
                {
                    "utt_id": np.asarray(f["utt_ids"]).astype(str),
                    "label": names[np.asarray(f["labels"])],
                    "pred": "",
                    "split": np.asarray(f["split"]).astype(str),
                    "x": f["xy"][:, 0],
                    "y": f["xy"][:, 1],
                }
            )
            for name in label_names:
                sub = pts[pts["label"] == name]
                out.append(
                    go.Scatter(
                        x=sub["x"],
                        y=sub["y"],
                        mode="markers",
                        name=name,
                        legendgroup=name,
                        showlegend=i == 0,
                        marker=dict(color=hex_to_rgba(emotion_color(name), 0.6), size=6),
                        hovertext=sub["utt_id"],
                        hoverinfo="text",
                    )
                )
            out.append(_center_trace(np.asarray(f["centers_xy"]), label_names, legend=i == 0))
        return out

    first = traces(epochs[0])
    per_panel = len(first) // len(panels)
    for k, tr in enumerate(first):
        fig.add_trace(tr, row=1, col=k // per_panel + 1)
    for i, frames in enumerate(by_epoch):
        allxy = np.concatenate(
            [np.vstack([frames[e]["xy"], frames[e]["centers_xy"]]) for e in epochs]
        )
        lo, hi = allxy.min(0), allxy.max(0)
        pad = 0.05 * (hi - lo + 1e-9)
        fig.update_xaxes(range=[lo[0] - pad[0], hi[0] + pad[0]], row=1, col=i + 1)
        fig.update_yaxes(range=[lo[1] - pad[1], hi[1] + pad[1]], row=1, col=i + 1)
        _equal_axes(fig, 1, i + 1)
    fig.frames = [go.Frame(data=traces(e), name=e) for e in epochs]
    slider = dict(
        active=len(epochs) - 1,
        currentvalue=dict(prefix="epoch "),
        pad=dict(t=40, b=10),
        x=0.12,
        len=0.88,
        y=0.0,
        yanchor="top",
        steps=[
            dict(
                method="animate",
                label=labels[e],
                args=[[e], dict(mode="immediate", frame=dict(duration=0, redraw=True))],
            )
            for e in epochs
        ],
    )
    play = dict(
        type="buttons",
        showactive=False,
        direction="left",
        x=0.12,
        y=0.0,
        xanchor="right",
        yanchor="top",
        pad=dict(t=60, r=10),
        buttons=[
            dict(
                label="▶ play",
                method="animate",
                args=[
                    None,
                    dict(
                        frame=dict(duration=500, redraw=True),
                        fromcurrent=False,
                        transition=dict(duration=250),
                    ),
                ],
            ),
            dict(
                label="❚❚ pause",
                method="animate",
                args=[[None], dict(mode="immediate", frame=dict(duration=0, redraw=False))],
            ),
        ],
    )
    # show the last epoch first: the finished state is what the reader compares with the maps
    last = traces(epochs[-1])
    for k, tr in enumerate(last):
        fig.data[k].update(x=tr.x, y=tr.y)
    _layout(
        fig,
        None,
        height + 110,
        margin=dict(t=40, b=110),
        sliders=[slider] if len(epochs) > 1 else [],  # plotly draws no slider of one step
        updatemenus=[play] if len(epochs) > 1 else [],
        plot_bgcolor="white",
        showlegend=False,
    )
    return fig


# ----------------------------------------------------------------------------- matrices and curves


def confusion_figure(
    matrix: np.ndarray | list,
    labels: Sequence[str],
    title: str,
    *,
    normalised: bool = False,
    diff: bool = False,
    height: int = 330,
) -> go.Figure:
    """A confusion matrix (rows: true class, columns: predicted), counts or row fractions;
    with diff=True a B − A difference on a diverging scale centered on 0."""
    m = np.asarray(matrix, dtype=float)
    if normalised:
        text = [[f"{100 * v:+.0f}%" if diff else f"{100 * v:.0f}%" for v in row] for row in m]
    else:
        text = [[f"{v:+.0f}" if diff else f"{v:.0f}" for v in row] for row in m]
    if diff:
        bound = float(np.abs(m).max()) or 1.0
        colors = dict(colorscale="RdBu", zmid=0, zmin=-bound, zmax=bound)
    else:
        colors = dict(colorscale="Blues", zmin=0)
    fig = go.Figure(
        go.Heatmap(
            z=m,
            x=list(labels),
            y=list(labels),
            text=text,
            texttemplate="%{text}",
            showscale=False,
            hovertemplate="true %{y}, predicted %{x}: %{text}<extra></extra>",
            **colors,
        )
    )
    _layout(fig, title, height)
    fig.update_xaxes(title="predicted", side="bottom")
    fig.update_yaxes(title="true", autorange="reversed")
    return fig


METRIC_NAMES = {
    "softmax_loss": "softmax loss L_s",
    "center_loss": "center loss L_c",
    "triplet_loss": "triplet loss L_tri",
    "supcon_loss": "supervised contrastive loss L_sup",
    "total_loss": "total L = L_s + λ L_c",
    "val_UA": "validation UA",
    "val_WA": "validation WA",
    "train_UA": "training UA",
    "intra_dist": "intra-class distance (train)",
    "inter_dist": "inter-center distance",
    "val_intra_dist": "intra-class distance (val)",
}


def curves_figure(frame: pd.DataFrame, group: str, title: str, *, height: int = 330) -> go.Figure:
    """Per-epoch curves of one metric group (see app.run_tables.METRIC_GROUPS); folds dashed
    differently when a run has several."""
    sub = frame[frame["group"] == group]
    fig = go.Figure()
    folds = sorted(sub["fold"].unique()) if not sub.empty else []
    dashes = ("solid", "dash", "dot", "dashdot", "longdash")
    for metric in sub["metric"].unique() if not sub.empty else []:
        for i, fold in enumerate(folds):
            s = sub[(sub["metric"] == metric) & (sub["fold"] == fold)].sort_values("epoch")
            y = 100 * s["value"] if group == "accuracy" else s["value"]
            fig.add_trace(
                go.Scatter(
                    x=s["epoch"],
                    y=y,
                    mode="lines+markers",
                    name=METRIC_NAMES.get(metric, metric)
                    + (f" (fold {fold})" if len(folds) > 1 else ""),
                    line=dict(dash=dashes[i % len(dashes)]),
                )
            )
    # the legend goes under the plot, below the axis title, with room for three entries
    _layout(
        fig,
        title,
        height,
        legend=dict(orientation="h", yanchor="top", y=-0.32, xanchor="left", x=0),
        margin=dict(b=95),
    )
    fig.update_xaxes(
        title=dict(text="epoch", standoff=4),
        dtick=1 if len(sub["epoch"].unique() if not sub.empty else []) <= 20 else None,
    )
    fig.update_yaxes(title="%" if group == "accuracy" else None)
    return fig


RUN_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")
METRIC_DASHES = ("solid", "dash", "dot", "dashdot")
METRIC_NAMES["intra_inter"] = "intra / inter"


def overlay_figure(
    frame: pd.DataFrame,
    group: str,
    metrics: Sequence[str],
    title: str,
    run_names: dict[str, str] | None = None,
    *,
    height: int = 330,
) -> go.Figure:
    """Several runs' curves of one quantity group on shared axes: one color per run (in the
    order of `run_names`), one line style per metric (in the order of `metrics`)."""
    sub = frame[frame["group"] == group]
    runs = list(run_names or dict.fromkeys(sub["run"].unique()))
    names = run_names or {r: r for r in runs}
    fig = go.Figure()
    for i, run in enumerate(runs):
        color = RUN_COLORS[i % len(RUN_COLORS)]
        for j, metric in enumerate(metrics):
            s = sub[(sub["run"] == run) & (sub["metric"] == metric)].sort_values("epoch")
            if s.empty:
                continue
            y = 100 * s["value"] if group == "accuracy" else s["value"]
            label = METRIC_NAMES.get(metric, metric)
            fig.add_trace(
                go.Scatter(
                    x=s["epoch"],
                    y=y,
                    mode="lines+markers",
                    name=f"{names.get(run, run)}: {label}" if len(metrics) > 1 else names.get(run, run),
                    legendgroup=run,
                    line=dict(color=color, dash=METRIC_DASHES[j % len(METRIC_DASHES)]),
                    marker=dict(size=5),
                    hovertemplate=f"{names.get(run, run)}<br>{label}, epoch %{{x}}: %{{y:.3g}}"
                    "<extra></extra>",
                )
            )
    n_entries = len(fig.data)
    _layout(
        fig,
        title,
        height + 18 * max(0, (n_entries + 1) // 2 - 2),
        legend=dict(orientation="h", yanchor="top", y=-0.22, xanchor="left", x=0),
        margin=dict(b=40 + 22 * ((n_entries + 1) // 2)),
    )
    n_epochs = len(sub["epoch"].unique()) if not sub.empty else 0
    fig.update_xaxes(title=dict(text="epoch", standoff=4), dtick=1 if n_epochs <= 20 else None)
    fig.update_yaxes(title="%" if group == "accuracy" else None)
    return fig


# ----------------------------------------------------------------------------- one clip


def probabilities_figure(
    label_names: Sequence[str], probabilities: Sequence[float], *, height: int = 240
) -> go.Figure:
    probs = np.asarray(probabilities, dtype=float)
    fig = go.Figure(
        go.Bar(
            x=100 * probs,
            y=list(label_names),
            orientation="h",
            marker_color=[emotion_color(n) for n in label_names],
            text=[f"{100 * p:.1f}%" for p in probs],
            textposition="auto",
            hovertemplate="%{y}: %{x:.1f}%<extra></extra>",
        )
    )
    _layout(fig, "class probabilities", height)
    fig.update_xaxes(range=[0, 100], title="%")
    fig.update_yaxes(autorange="reversed")
    return fig


def waveform_figure(
    samples: np.ndarray, sample_rate: int = 16000, *, height: int = 180
) -> go.Figure:
    """The waveform as a min/max envelope of ~2000 columns (a plot of every sample of a 14 s
    clip would send 224 000 points to the browser)."""
    x = np.asarray(samples, dtype=np.float32)
    n_cols = min(2000, max(1, len(x)))
    edges = np.linspace(0, len(x), n_cols + 1).astype(int)
    lo = np.array([x[a:b].min() if b > a else 0.0 for a, b in zip(edges[:-1], edges[1:])])
    hi = np.array([x[a:b].max() if b > a else 0.0 for a, b in zip(edges[:-1], edges[1:])])
    t = edges[:-1] / sample_rate
    fig = go.Figure(
        [
            go.Scatter(
                x=t,
                y=hi,
                mode="lines",
                line=dict(width=0.8, color="#1f4e79"),
                showlegend=False,
                hoverinfo="skip",
            ),
            go.Scatter(
                x=t,
                y=lo,
                mode="lines",
                line=dict(width=0.8, color="#1f4e79"),
                fill="tonexty",
                fillcolor="rgba(31,78,121,0.5)",
                showlegend=False,
                hoverinfo="skip",
            ),
        ]
    )
    _layout(fig, "waveform", height)
    fig.update_xaxes(title="time (s)")
    return fig


def spectrogram_figure(
    features: np.ndarray,
    *,
    kind: str = "mel",
    hop_s: float = 0.01,
    title: str | None = None,
    height: int = 240,
) -> go.Figure:
    """A log spectrogram (frames, bins) with time across and frequency bins upward."""
    f = np.asarray(features, dtype=np.float32)
    step = max(1, len(f) // 1500)  # at most ~1500 columns
    f = f[::step]
    fig = go.Figure(
        go.Heatmap(
            z=f.T,
            x=np.arange(len(f)) * hop_s * step,
            colorscale="Magma",
            showscale=False,
            hovertemplate="t=%{x:.2f} s, bin %{y}: %{z:.1f}<extra></extra>",
        )
    )
    _layout(fig, title or f"log {'Mel' if kind == 'mel' else 'STFT'} spectrogram", height)
    fig.update_xaxes(title="time (s)")
    fig.update_yaxes(title="Mel band" if kind == "mel" else "frequency bin")
    return fig


# ----------------------------------------------------------------------------- corpus


def class_counts_figure(by_class: pd.DataFrame, *, height: int = 300) -> go.Figure:
    fig = go.Figure(
        go.Bar(
            x=by_class["label"],
            y=by_class["count"],
            text=by_class["count"],
            textposition="auto",
            marker_color=[emotion_color(n) for n in by_class["label"]],
        )
    )
    _layout(fig, "utterances per class", height)
    fig.update_xaxes(type="category")
    return fig


def speaker_counts_figure(
    by_speaker: pd.DataFrame, label_names: Sequence[str], *, height: int = 300
) -> go.Figure:
    fig = go.Figure()
    for name in label_names:
        sub = by_speaker[by_speaker["label"] == name]
        fig.add_trace(
            go.Bar(
                x=sub["speaker"].astype(str),
                y=sub["count"],
                name=name,
                marker_color=emotion_color(name),
            )
        )
    _layout(fig, "utterances per speaker", height, barmode="stack", legend_traceorder="normal")
    # speaker ids are names, not numbers (EmoDB's 03 ... 16 must not become a numeric axis)
    speakers = sorted({str(v) for v in by_speaker["speaker"]})
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=speakers)
    return fig


# ----------------------------------------------------------------------------- sweeps


def sensitivity_figure(
    summary: pd.DataFrame, axis: str, title: str, *, height: int = 340
) -> go.Figure:
    """UA and WA (mean ± std over folds and seeds) against λ, α or another setting (its name).

    λ is drawn on a categorical axis (its values, evenly spaced, in order): the paper's grid
    0, 0.001, 0.01, 0.1, 0.3, 1 spans three decades and starts at 0, which neither a linear
    axis (all but the last points in one corner) nor a log axis (no 0) can show. α stays on a
    linear axis over [0, 1] (its grid is roughly even there); another setting (another
    objective's main hyper-parameter) on a plain linear axis."""
    axis_name = {"lam": "λ", "alpha": "α"}.get(axis, axis)
    categorical = axis == "lam"
    fig = go.Figure()
    for metric, color, dash, marker in (
        ("UA", "#1f77b4", "solid", "circle"),
        ("WA", "#ff7f0e", "dash", "diamond"),
    ):
        if summary.empty:
            continue
        x = [f"{v:g}" for v in summary[axis]] if categorical else summary[axis]
        fig.add_trace(
            go.Scatter(
                x=x,
                y=summary[f"{metric}_mean"],
                mode="lines+markers",
                name=metric,
                line=dict(color=color, dash=dash),
                marker=dict(symbol=marker, size=9),
                error_y=dict(type="data", array=summary[f"{metric}_std"].fillna(0), visible=True),
                customdata=summary["n"],
                hovertemplate=(
                    f"{axis_name}=%{{x}}: {metric} %{{y:.1f}}% (n=%{{customdata}})<extra></extra>"
                ),
            )
        )
    _layout(fig, title, height)
    if categorical:
        order = [f"{v:g}" for v in summary[axis]] if not summary.empty else []
        fig.update_xaxes(
            title=f"{axis_name} (categorical axis: values evenly spaced)",
            type="category",
            categoryorder="array",
            categoryarray=order,
        )
    elif axis == "alpha":
        fig.update_xaxes(title=axis_name, range=[-0.05, 1.05])  # α lives in [0, 1]
    else:
        fig.update_xaxes(title=axis_name)
    fig.update_yaxes(title="%", tickformat=".1f")  # one decimal, also when one point sets the range
    return fig


# ----------------------------------------------------------------------------- toy


def toy_figure(result, *, height: int = 460) -> go.Figure:
    """The toy's 2-D features over training, animated, with the centers as crosses."""
    names = result.label_names
    labels = np.asarray(result.labels)

    def traces(frame) -> list[go.Scatter]:
        out = []
        for j, name in enumerate(names):
            z = frame.z[labels == j]
            out.append(
                go.Scatter(
                    x=z[:, 0],
                    y=z[:, 1],
                    mode="markers",
                    name=name,
                    marker=dict(size=5, color=hex_to_rgba(emotion_color(name), 0.6)),
                )
            )
        out.append(_center_trace(frame.centers, names))
        return out

    fig = go.Figure(traces(result.final))
    allz = np.concatenate([np.vstack([f.z, f.centers]) for f in result.frames])
    lo, hi = np.percentile(allz, 0.5, axis=0), np.percentile(allz, 99.5, axis=0)
    pad = 0.08 * (hi - lo + 1e-9)
    fig.frames = [go.Frame(data=traces(f), name=str(f.step)) for f in result.frames]
    steps = [
        dict(
            method="animate",
            label=str(f.step),
            args=[[str(f.step)], dict(mode="immediate", frame=dict(duration=0, redraw=True))],
        )
        for f in result.frames
    ]
    _layout(
        fig,
        None,
        height,
        plot_bgcolor="white",
        margin=dict(t=50, b=110),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1.0),
        # the replay button sits left of the slider, under the plot: above it, it covered
        # legend entries
        sliders=[
            dict(
                active=len(steps) - 1,
                currentvalue=dict(prefix="step "),
                pad=dict(t=45),
                x=0.22,
                len=0.78,
                steps=steps,
            )
        ],
        updatemenus=[
            dict(
                type="buttons",
                showactive=False,
                x=0.21,
                y=0.0,
                xanchor="right",
                yanchor="top",
                pad=dict(t=60),
                buttons=[
                    dict(
                        label="▶ replay",
                        method="animate",
                        args=[None, dict(frame=dict(duration=120, redraw=True), fromcurrent=False)],
                    )
                ],
            )
        ],
    )
    fig.update_xaxes(range=[lo[0] - pad[0], hi[0] + pad[0]], zeroline=True, title="z₁")
    fig.update_yaxes(
        range=[lo[1] - pad[1], hi[1] + pad[1]], zeroline=True, title="z₂", scaleanchor="x"
    )
    return fig
