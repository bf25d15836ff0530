"""The paper on the page: where a page sits in it, what each quantity means, and whether a result shows the
paper's claim (the same checks the fidelity tests use: engine.claims)."""

from __future__ import annotations

import streamlit as st

from engine import claims

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
    check = claims.for_preset(experiment, preset, view["config"])
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
