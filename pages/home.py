"""Overview: what the app shows and where to start, with a picture and a link per page."""

from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image
from streamlit.errors import StreamlitPageNotFoundError

from ui.paper import PAPER
from ui.shell import ensure_shell

ensure_shell()  # a deep link on a fresh server runs this file alone: app.py's shell first

DOCS = Path(__file__).resolve().parent.parent / "docs"
# page file, link text, icon, picture in docs/, what it shows
PAGES = [
    ("pages/toy_1d.py", "1 · Toy model: bouncing", ":material/sports_tennis:", "toy_1d.png",
     "Prop. 3: with a large step SGD bounces across the valley and the loss stays in a band; the bifurcation "
     "diagram, and SGD = GD + label noise checked along a run."),
    ("pages/diagonal.py", "2 · Diagonal linear nets", ":material/trending_down:", "diagonal.png",
     "Fig. 2, 3, 8: SGD vs GD and step-size schedules; rank φ(X) and ‖u ⊙ v‖₀ fall while the loss is stuck; "
     "an edge-of-stability finder for your data."),
    ("pages/relu_1d.py", "3 · ReLU net in 1D: kinks", ":material/show_chart:", "relu_1d.png",
     "Fig. 4, 9, 10: the predictor's kinks disappear during a long large-step phase; scrub through the checkpoints "
     "to see it first simplify, then fit."),
    ("pages/teacher_student.py", "4 · Teacher-student: neurons", ":material/scatter_plot:", "teacher_student.png",
     "Fig. 5, 6, 11: student neurons gather along the teacher's directions with large steps and stay lazy with "
     "small ones; per-layer feature sparsity of a three-layer net."),
    ("pages/resnet.py", "5 · ResNets on CIFAR", ":material/grid_view:", "resnet.png",
     "Fig. 1, 7, 12-14: feature sparsity at the end of each super-block, on the GPU or, without one, a small "
     "ResNet on scikit-learn's digits in minutes."),
    ("pages/sweeps.py", "6 · Sweeps", ":material/grid_on:", "sweeps.png",
     "Maps of step size x phase length over many seeds: where each outcome happens, and how often."),
]


@st.cache_data
def thumbnail(path: str, mtime: float, width: int = 640) -> np.ndarray:
    """A page's screenshot without the app's sidebar (its left 22%), scaled to `width` (cached per file version)."""
    image = Image.open(path).convert("RGB")
    w, h = image.size
    image = image.crop((int(0.22 * w), 0, w, h))
    scale = width / image.size[0]
    return np.asarray(image.resize((width, int(image.size[1] * scale)), Image.LANCZOS))


st.title("SGD with large step sizes learns sparse features")
st.markdown(
    f"""
An interactive companion to [*SGD with large step sizes learns sparse features*]({PAPER}) (Andriushchenko, Varre,
Pillaud-Vivien, Flammarion, ICML 2023). Each page reproduces the paper's figures from a preset, trains live in
the background, and lets you move the step size and watch the consequence.

**The claims you can watch happen**
1. *Loss stabilization.* With a large step size SGD bounces from one side of a valley to the other, so the
   training loss stops decreasing but does not blow up (Prop. 3).
2. *A hidden dynamics.* SGD is GD with a label noise that scales with the loss (Prop. 1); while the loss is
   stuck, this noise slowly drives the model to **sparse features** (lower rank of the NTK feature matrix,
   fewer active coordinates, fewer kinks).
3. *Longer is sparser.* The longer the large-step phase before the step size is decayed, the sparser the
   final model and the better it generalizes.
"""
)

# ---- one card per page: its picture (when docs/ has one), a link to it and what it shows
st.subheader("Pages")
cols = st.columns(3)
for k, (page, label, icon, picture, text) in enumerate(PAGES):
    with cols[k % 3].container(border=True):
        try:
            st.page_link(page, label=label, icon=icon)
        except StreamlitPageNotFoundError:  # this file run alone, without app.py's navigation
            st.markdown(f"**{label}**")
        if (DOCS / picture).exists():
            st.image(thumbnail(str(DOCS / picture), (DOCS / picture).stat().st_mtime), width="stretch")
        st.caption(text)

st.caption("Runs continue in the background when you switch pages; results are cached on disk, so a finished "
           "configuration redraws instantly. Settings live in the URL: copy the link to share an experiment.")
