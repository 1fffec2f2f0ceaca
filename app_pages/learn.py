"""Learn: softmax loss vs center loss, the equations SER Lab implements, and a live 2-D toy."""

import streamlit as st

from ser_lab.app import figures
from ser_lab.learn.toy import ToyConfig, train_toy


@st.cache_data(show_spinner=False, max_entries=32)
def toy(lam: float, alpha: float, steps: int, seed: int, objective: str = "center", extra: tuple = ()):
    """`extra`: (field, value) pairs of the objective's own settings, e.g. (("am_margin", 0.35),)."""
    return train_toy(ToyConfig(lam=lam, alpha=alpha, steps=steps, seed=seed, objective=objective, **dict(extra)))


@st.cache_resource(show_spinner=False, max_entries=32)
def toy_chart(lam: float, alpha: float, steps: int, seed: int, objective: str = "center", extra: tuple = ()):
    """The animated figure (a frame per snapshot takes a while to build: built once)."""
    return figures.toy_figure(toy(lam, alpha, steps, seed, objective, extra))


st.title("Softmax loss and center loss")
st.markdown(
    """
The network maps a spectrogram to a 64-dimensional feature **z** (the output of its FC1 layer) and
a linear layer maps z to one score per emotion. Over a mini-batch of *m* utterances with labels
*yᵢ*, and class weights *ω_j* (inverse class frequency of the training part, so that rare emotions
count as much as common ones), SER Lab minimises:
"""
)
st.markdown("**Weighted softmax cross-entropy**: push the right class's score above the others.")
st.latex(
    r"L_s = -\frac{1}{\sum_{i=1}^{m} \omega_{y_i}} \sum_{i=1}^{m} \omega_{y_i}"
    r"\log \frac{e^{W_{y_i}^{\top} z_i + b_{y_i}}}{\sum_{j} e^{W_j^{\top} z_i + b_j}}"
)
st.markdown("**Center loss**: pull every feature toward the center *c* of its own class.")
st.latex(
    r"L_c = \frac{1}{\sum_{i=1}^{m} \omega_{y_i}} \sum_{i=1}^{m} \omega_{y_i}\,"
    r"\lVert z_i - c_{y_i} \rVert_2^2"
)
st.markdown("**Total**, with λ weighing the center loss (λ = 0 is the softmax-only baseline):")
st.latex(r"L = L_s + \lambda\, L_c")
st.markdown(
    """
**The centers are not learned by the optimiser.** After every mini-batch, each class *j* present in
the batch moves its center part of the way (rate α) toward the mean of that batch's features of
class *j*; classes absent from the batch keep their center:
"""
)
st.latex(
    r"c_j \leftarrow (1-\alpha)\, c_j + \alpha\, \bar z_j,\qquad "
    r"\bar z_j = \frac{1}{|B_j|} \sum_{i \in B_j} z_i,\quad B_j = \{i : y_i = j\}"
)
st.markdown(
    """
The center loss sends its gradient to the features z only (the centers are used as constants).
Where the paper is silent, SER Lab starts each center at the mean of the first batch that contains
its class. Why it helps: softmax alone only needs the classes to be *separable*, so features of one
class may spread far along a direction; the center loss makes them *compact* around their center,
reducing intra-class variation while softmax keeps the classes apart. Too large a λ collapses the
features before they are discriminative (the paper finds λ = 0.3 best; α matters little between 0.1
and 0.9).
"""
)

st.header("Try it: a 2-D toy")
st.markdown(
    "Four overlapping Gaussian classes in 8 dimensions go through a tiny network whose feature layer has "
    "**2 units**, so z can be drawn as it is. Left: softmax only. "
    "Right: with the center loss at your λ and α. "
    "Both use the project's own `weighted_cross_entropy` and `CenterLoss` (with the α update above)."
)
c1, c2, c3 = st.columns(3)
lam = c1.slider("λ", 0.0, 2.0, 0.3, 0.05)
alpha = c2.slider("α", 0.0, 1.0, 0.5, 0.05)
steps = c3.select_slider("training steps", [100, 200, 300, 500, 800], value=300)
# A changed λ retrains the center-loss network (several seconds): say what is happening.
bar = st.progress(0.0, text="Training the softmax-only network (1 of 2)…")
base = toy(0.0, alpha, steps, 0)
bar.progress(0.4, text=f"Training the network with center loss, λ = {lam:g} (2 of 2)…")
center = toy(float(lam), float(alpha), steps, 0)
bar.progress(0.8, text="Drawing the animations…")
charts = {
    "toy_base": toy_chart(0.0, float(alpha), steps, 0),
    "toy_center": toy_chart(float(lam), float(alpha), steps, 0),
}
bar.empty()

cols = st.columns(2)
for col, result, title, key in (
    (cols[0], base, "softmax only (λ = 0)", "toy_base"),
    (cols[1], center, f"softmax + center loss (λ = {lam:g}, α = {alpha:g})", "toy_center"),
):
    intra, inter = result.intra_inter()
    col.subheader(title)
    m1, m2, m3 = col.columns(3)
    m1.metric("accuracy", f"{100 * result.final.accuracy:.1f} %")
    m2.metric("intra-class distance", f"{intra:.2f}")
    m3.metric(
        "intra / inter",
        f"{intra / inter:.3f}",
        help="lower: more compact, better separated classes",
    )
    col.plotly_chart(charts[key], key=key)

# Another objective next to the paper's α rule (objectives.py, the same code the trainer runs).
OTHER_ARMS = {
    "none": None,
    "learned centers (Wen et al. 2016)": "center_learned",
    "additive-margin softmax (AM-Softmax / CosFace)": "amsoftmax",
}
arm = st.selectbox("Add a third panel: another objective", list(OTHER_ARMS))
if OTHER_ARMS[arm]:
    objective = OTHER_ARMS[arm]
    if objective == "center_learned":
        st.latex(r"c \leftarrow c - \eta_c\, \partial L_c / \partial c \quad\text{(the centers learned by SGD, rate } \eta_c)")
        extra = (("center_lr", float(st.slider("center learning rate η_c", 0.05, 1.0, 0.5, 0.05))),)
        title = f"learned centers (λ = {lam:g}, η_c = {extra[0][1]:g})"
    else:
        st.latex(
            r"L_{AM} = -\log \frac{e^{s(\cos\theta_{y_i} - m)}}{e^{s(\cos\theta_{y_i} - m)}"
            r" + \sum_{j \ne y_i} e^{s \cos\theta_j}}"
        )
        extra = (("am_margin", float(st.slider("margin m", 0.0, 0.6, 0.35, 0.05))), ("am_scale", 10.0))
        title = f"AM-Softmax (m = {extra[0][1]:g}, s = 10)"
    with st.spinner("Training a third tiny network…"):
        other = toy(float(lam), float(alpha), steps, 0, objective, extra)
    intra, inter = other.intra_inter()
    st.subheader(title)
    m1, m2, m3 = st.columns(3)
    m1.metric("accuracy", f"{100 * other.final.accuracy:.1f} %")
    m2.metric("intra-class distance", f"{intra:.2f}")
    m3.metric("intra / inter", f"{intra / inter:.3f}", help="lower: more compact, better separated classes")
    st.plotly_chart(toy_chart(float(lam), float(alpha), steps, 0, objective, extra), key="toy_other")
st.caption(
    "The ratio intra / inter is scale-free, so the two panels can be compared even though their "
    "features live on different scales. Press ▶ replay to watch training; crosses are the centers."
)
