"""The paper on the page: where a page sits in it, what each quantity means, and whether a result shows the
paper's claim (the same checks the fidelity tests use: engine.core.claims)."""

from __future__ import annotations

import streamlit as st

from engine import registry
from engine.core import claims

PAPER = "https://arxiv.org/abs/2210.05337"

DEFINITIONS = {
    "train loss": "Diagonal nets: ‖Xβ − y‖² / (2n). ReLU nets: the mean squared error (no ½). ResNets: cross-entropy.",
    "rank φ(X)": "Rank of the NTK feature matrix φ(X): one row per input, the gradient of the output with respect to "
                 "every parameter, on p fresh inputs (p = number of parameters), counting singular values with "
                 "s_i / s_max > τ. Fewer directions in which the model can still move = sparser features.",
    "τ": "The relative threshold of rank φ(X): 1e-15 for the (float64) diagonal nets, 1e-4 for the ReLU nets.",
    "‖u ⊙ v‖₀": "Number of coordinates of β = u ⊙ v with |β_i| > 1e-50 (shrinking coordinates decay exponentially; "
                "the runs are float64).",
    "feature sparsity": "Share of non-zero, distinct post-ReLU activations: activations on the training inputs "
                        "(rows scaled to unit norm), dead neurons dropped, neurons highly correlated (> c) with one "
                        "kept earlier dropped; the non-zeros left over n × m. Lower = sparser.",
    "kinks": "Breakpoints −b_j / w_j of the 1D predictor inside the data range whose neuron contributes.",
    "alignment": "Share of the student's first-layer neurons (of at least 10% of the largest norm) within 10° of a "
                 "teacher direction.",
    "edge of stability": "The largest constant step size at which SGD survives on this data. The sparsifying "
                         "window sits just below it, and where exactly a run survives depends on the seed.",
    "θ*": "The valley of the toy model: labels y = x θ*², so F(θ) = ¼ E(y − x θ²)² is 0 at θ = ±θ*.",
    "Prop. 3 interval": "The step sizes η ∈ ((θ* a)⁻², 1.25 (θ* b)⁻²) for inputs x in [a, b]: from 0 < θ₀ < θ*, "
                        "SGD's loss stays in a band (ε₀² θ*², 0.17 θ*²) and θ_t ends up alternating sides of θ*. "
                        "Empty when b/a ≥ √1.25 ≈ 1.118.",
    "label noise ξ": "Prop. 1: one SGD step on sample i_t is one full-batch GD step on the labels y + ξ_t, "
                     "ξ_i = (h(x_i) − y_i)(1 − n 1[i = i_t]). Lemma 2: E‖ξ_t‖² / (n(n−1)) = 2 L(θ_t): the noise "
                     "scales with the loss, so it does not fade while the loss is stuck.",
    "bifurcation diagram": "For each η, the iterates θ_t after a burn-in: one dot per η means convergence, two "
                           "a period-2 bounce, a vertical cloud chaos.",
    "warmup": "The step size grows linearly from lr to W·lr over the first s of training (`at`), then is divided "
              "by `decay` and held: a long large-step phase is a large s.",
    "over-regularization": "Fig. 9: with too large a warmup the long large-step phase simplifies the predictor so "
                           "much that it no longer fits: the train loss stays near 10^-0.5.",
    "teacher directions": "The first-layer rows w*_i of the teacher net (unit norm in Fig. 5): the directions the "
                          "student's neurons w_i gather along with large steps.",
    "test loss": "The mean squared error on 1,000 fresh points of the unit sphere labelled by the teacher.",
    "feature sparsity (ResNets)": "As for the ReLU nets, on the post-ReLU output of a super-block, for at most "
                                  "1,000 random units (channel, row, column) and the sparsity images, c = 0.95, "
                                  "rows not scaled. Lower = sparser.",
    "super-block": "A ResNet stage: the residual blocks between two changes of resolution (4 in a ResNet-18/34); "
                   "super-block k ends with 2^(k−1) × width channels.",
    "schedules": "constant: η throughout. step: η until s, then η/10 until 90%, then η/100. exp-warmup: η grows "
                 "as base^(100 t) until s, then the same decays (the plain setting of Fig. 7).",
}


def header(title: str, where: str, caption: str) -> None:
    """The page title, its place in the paper (with a link) and what it shows."""
    st.title(title)
    st.caption(f"{caption} — paper: [{where}]({PAPER}).")


def definitions(*names: str) -> None:
    """An expander with the definitions of the quantities a page plots."""
    with st.expander("Definitions: " + ", ".join(names)):
        for name in names:
            st.markdown(f"**{name}** — {DEFINITIONS[name]}")


def look_at(text: str) -> None:
    """A one-line 'what to look at' above a group of charts."""
    st.caption(f"**What to look at:** {text}")


def expected_vs_obtained(experiment: str, preset: str | None, view: dict) -> None:
    """After a run: the paper's claims for this preset checked on the result (per seed when there are several)."""
    check = registry.claims_for(experiment, preset, view["config"])
    if check is None or view["status"] != "done":
        return
    groups = claims.by_seed(view["runs"])
    results = {seed: check(runs) for seed, runs in groups.items()}
    results = {seed: r for seed, r in results.items() if r}
    if not results:
        return
    seed, first = next(iter(results.items()))
    held = sum(claims.holds(r) for r in results.values())
    with st.container(border=True):
        st.markdown("**Expected (paper) vs obtained**" + (f" — seed {seed}" if seed is not None else ""))
        st.markdown("\n".join(f"- {'✓' if c.ok else '✗'} {c.claim}: {c.obtained}" for c in first))
        if len(results) > 1:
            st.markdown(f"The whole claim holds on **{held} of {len(results)} seeds**.")
