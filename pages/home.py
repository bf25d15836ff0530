"""Overview: what the app shows and where to start."""

import streamlit as st

from ui.shell import ensure_shell

ensure_shell()  # a deep link on a fresh server runs this file alone: app.py's shell first

st.title("SGD with large step sizes learns sparse features")
st.markdown(
    """
An interactive companion to *SGD with large step sizes learns sparse features* (Andriushchenko, Varre,
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

**Pages**
- **1 · Toy model**: the quadratic 1D model of Prop. 3: bouncing, the loss band, a cobweb of the map, the
  bifurcation diagram, and the SGD = GD + label noise identity checked along a run.
- **2 · Diagonal linear nets**: Fig. 2, 3 and 8: SGD vs GD, step-size schedules, rank of the NTK feature
  matrix and ‖u ⊙ v‖₀ as they train; an edge-of-stability finder for your data.
- **3 · ReLU net in 1D**: Fig. 4, 9, 10: the predictor's kinks disappear during a long large-step phase;
  scrub through the checkpoints to see the model first simplify, then fit.
- **4 · Teacher-student**: Fig. 5, 6, 11: student neurons gather along the teacher's directions with large
  steps and stay lazy with small ones; per-layer feature sparsity of a three-layer net.
- **5 · ResNets on CIFAR**: Fig. 1, 7, 12, 13, 14: feature sparsity at the end of each super-block, on the
  GPU (queued one run at a time) or, without one, a small ResNet on scikit-learn's digits in minutes.

Runs continue in the background when you switch pages; results are cached on disk, so a finished
configuration redraws instantly. Settings live in the URL: copy the link to share an experiment.
"""
)
