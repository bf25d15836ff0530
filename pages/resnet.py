"""ResNets on CIFAR (paper Sec. 3.3, Fig. 1, 7, 12, 13, 14): long large-step phases give sparser features."""

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st
import torch

from engine.resnet import cifar
from engine.resnet import experiment as resnet
from engine.resnet.device import pick_device
from ui.charts import color, metric_chart, run_order, waiting
from ui.jobs import downloads, live, run_controls
from ui.labels import metric
from ui.links import sweep_button
from ui.overlay import overlay
from ui.paper import definitions, expected_vs_obtained, header, look_at
from ui.shell import ensure_shell
from ui.tables import finals_frame, histories_frame
from ui.widgets import settings

ensure_shell()  # a deep link on a fresh server runs this file alone: app.py's shell first

EXPERIMENT, PREFIX = "resnet", "resnet_"
FIELDS = ["dataset", "model", "width", "setting", "epochs", "batch_size", "eval_every", "seeds", "sparsity_images",
          "device", "precision", "memory_format", "fused_sgd", "compile", "deterministic", "data_dir"]
RUNS_HELP = ("constant: lr throughout. exp-warmup: lr·base^(100 t) until t = at, then /10 until 0.9, then /100 "
             "(the plain setting). step: lr until at, /10 until 0.9, /100 (the state-of-the-art setting).")

header("ResNets on CIFAR: sparse features", "Sec. 3.3, Fig. 1, 7, 12, 13 and 14",
       "A CIFAR-layout ResNet-18/34 trained by SGD (batch 256) with a small constant step or a large step kept "
       "for 10/30/50% of training, then decayed. While the large step keeps the loss up, the features at the "
       "end of each super-block get sparser (feature sparsity: distinct non-zero activations, c = 0.95), and "
       "longer phases generalize better. Without a GPU, `cpu-demo` trains a small ResNet on scikit-learn's "
       "digits in minutes with the same schedules and metrics")
definitions("schedules", "super-block", "feature sparsity (ResNets)", "train loss")


# ---- settings (sidebar widgets and the runs table), bound to the URL so a link reproduces them
@st.cache_resource
def default_preset() -> str:
    """fig7-plain when a GPU and CIFAR-10 are there, else the cpu-demo that runs anywhere."""
    return "fig7-plain" if torch.cuda.is_available() and cifar.available("cifar10") else "cpu-demo"


presets = {default_preset(): resnet.PRESETS[default_preset()], **resnet.PRESETS}  # the first is the default
preset, config = settings(presets, resnet.Config, PREFIX, FIELDS, runs_help=RUNS_HELP)


# ---- data: CIFAR is read from the data root, downloaded only when the user asks
@st.cache_resource
def download_tasks() -> dict:
    """Downloads running in background threads, shared by every session (one per data set and folder)."""
    return {}


def data_panel(dataset: str, data_dir: str) -> bool:
    """Where the data comes from, a download button for CIFAR (also when its folder does not exist yet, as on a
    fresh checkout: the download creates it); True when the data set is on disk."""
    if dataset == "digits":
        return True
    name = cifar.LABELS[dataset]
    where = f"`{data_dir}` in the data root" if data_dir else "the data root"
    try:
        cifar.resolve_folder(data_dir)
        missing_folder = False
    except ValueError as exc:  # outside the data root: nothing to download into
        st.error(str(exc))
        return False
    except FileNotFoundError:
        missing_folder = True
    if not missing_folder and cifar.available(dataset, data_dir):
        st.caption(f"{name}: read from {where}.")
        return True
    st.warning(f"{name} is not in {where}" + (" (the folder does not exist yet: the download creates it)"
                                               if missing_folder else "")
               + ". Download it (~170 MB, through torchvision's URL) or extract the archive there yourself; "
               "`cpu-demo` needs no download.")
    target = cifar.data_root() / data_dir   # inside the root: resolve_folder said so
    tasks = download_tasks()
    task = tasks.get((dataset, str(target)))
    if st.button(f"Download {name}", key="resnet_download", disabled=task is not None and not task.done):
        target.mkdir(parents=True, exist_ok=True)
        task = tasks[(dataset, str(target))] = cifar.Download(dataset, root=target)

    # A fragment polls the download thread without re-running the page; the timer stops once it ends.
    @st.fragment(run_every=0.5 if task is not None and not task.done else None)
    def progress() -> None:
        if task is None:
            return
        if task.error:
            st.error(task.error)
        elif task.done and cifar.available(dataset, data_dir):
            st.success(f"{name} downloaded.")
            st.rerun()
        elif task.done:  # no rerun loop: say what is wrong
            st.error(f"The download ended, but {name} is still not readable in {where}.")
        else:
            st.progress(task.progress, text=f"Downloading {name}: {task.progress:.0%}")

    progress()
    return False


try:
    pick_device(config.device)
except RuntimeError as exc:
    st.warning(f"{exc}. A full CIFAR run on a CPU takes days.")
    st.stop()
if not data_panel(config.dataset, config.data_dir):
    st.stop()
job = run_controls(EXPERIMENT, config, preset,
                   extra=lambda: sweep_button(EXPERIMENT, preset, presets[preset].config, config))


# ---- drawing
def decay_marks(view: dict) -> pd.DataFrame:
    rows = [dict(label=r["label"], step=s) for r in view["runs"] for s in r["snapshots"].get("decay_steps", [])]
    return pd.DataFrame(rows, columns=["label", "step"])


def live_numbers(view: dict) -> None:
    """Epoch, images/s and ETA of the run that trains now (queue place is in the status line)."""
    current = next((r for r in view["runs"] if r["status"] == "running"), None)
    if view["status"] != "running" or current is None or not current["history"]["step"]:
        return
    hist = current["history"]
    rate = next((v for v in reversed(hist.get("images_per_s", [])) if v), None)
    cols = st.columns(4)
    cols[0].metric("Training", current["name"])
    cols[1].metric("Epoch", f"{hist['epoch'][-1]:.1f} / {config.epochs}")
    cols[2].metric("Images/s", f"{rate:,.0f}" if rate else "-")
    cols[3].metric("ETA", f"{view['eta'] / 60:.1f} min" if view.get("eta") else "-")


def tile_grid(weights: np.ndarray, scale: int = 8) -> np.ndarray:
    """Conv kernels (out, in, k, k) as one image. A 1- or 3-channel stem: one tile per filter (RGB for 3
    channels) in a near-square grid; a later layer: a row per filter, a grey tile per input channel.
    Each tile is scaled to [0, 1] on its own."""
    w = np.asarray(weights, dtype=float)
    out, inp, k, _ = w.shape
    if inp in (1, 3):
        side = int(np.ceil(np.sqrt(out)))
        tiles = np.full((side * side, k, k, inp), np.nan)
        tiles[:out] = w.transpose(0, 2, 3, 1)
        tiles = tiles.reshape(side, side, k, k, inp)
    else:
        tiles = w[..., None]                                        # (out, in, k, k, 1)
    empty = np.isnan(tiles)  # the unused cells of the last grid row
    tiles = np.where(empty, 0.0, tiles)
    lo = tiles.min(axis=(2, 3, 4), keepdims=True)
    hi = tiles.max(axis=(2, 3, 4), keepdims=True)
    tiles = np.where(empty, 1.0, (tiles - lo) / np.where(hi > lo, hi - lo, 1))
    tiles = np.pad(tiles, ((0, 0), (0, 0), (0, 1), (0, 1), (0, 0)), constant_values=1)  # white gaps
    rows, cols = tiles.shape[:2]
    grid = tiles.transpose(0, 2, 1, 3, 4).reshape(rows * (k + 1), cols * (k + 1), tiles.shape[-1])
    grid = np.kron(grid, np.ones((scale, scale, 1)))
    return grid[..., 0] if grid.shape[-1] == 1 else grid


def filter_view(view: dict) -> None:
    """Fig. 12: a run's filters at init and now, and every layer's distance from its init."""
    runs = [r for r in view["runs"] if r["snapshots"].get("filters")]
    if not runs:
        return
    st.subheader("Filters (Fig. 12)")
    look_at("with the small step the early filters stay close to their random init (no feature learning); with "
            "a long large-step phase they change visibly, and every layer moves further from its init.")
    name = st.selectbox("Run", [r["name"] for r in runs], key="resnet_filter_run")
    run = next(r for r in runs if r["name"] == name)
    snap = run["snapshots"]["filters"]
    st.caption(f"Iteration {snap['step']:,}. Each tile is one 3x3 kernel scaled to its own range; later layer: "
               "16 filters (rows) x their first 16 input channels.")
    for layer, pair in snap["layers"].items():
        left, right = st.columns(2)
        title = "stem conv" if layer == "conv1" else f"{layer} (super-block 2)"
        left.image(tile_grid(pair["init"]), caption=f"{title}, at init", clamp=True)
        right.image(tile_grid(pair["now"]), caption=f"{title}, now", clamp=True)
    rows = [dict(run=r["label"], layer=layer, distance=d) for r in view["runs"]
            if r["snapshots"].get("distance_from_init")
            for layer, d in r["snapshots"]["distance_from_init"][-1]["value"].items()]
    if rows:
        frame = pd.DataFrame(rows)
        order = list(dict.fromkeys(frame["layer"]))
        chart = alt.Chart(frame).mark_line(point=True).encode(
            x=alt.X("layer:N", sort=order, title=None, axis=alt.Axis(labelAngle=-60)),
            y=alt.Y("distance:Q", title="‖W − W₀‖ / ‖W₀‖", axis=alt.Axis(format=".3~g")),
            color=color(run_order(view), field="run"),
            tooltip=["run", "layer", alt.Tooltip("distance:Q", format=".3g")],
        ).properties(title="Each layer's relative distance from its init (last checkpoint)", height=280)
        st.altair_chart(chart, width="stretch")


def draw(view: dict) -> None:
    waiting(view, "loading the data, building the model" + (" and compiling it" if config.compile else ""))
    live_numbers(view)
    long = histories_frame(view)
    if long.empty:
        return
    long["value"] = pd.to_numeric(long["value"])  # a metric that is still all None makes the column object
    labels, rules = run_order(view), decay_marks(view)
    for r in view["runs"]:
        if r["status"] == "diverged":
            st.warning(f"{r['name']} diverged: {r['message']}")
    look_at("the train loss stabilizes while the step is large (dashed: decays), then drops at the decay; the "
            "longer the large-step phase, the lower the final test error.")
    top = [("train_loss", "Train loss", True), ("train_error", "Train error", False),
           ("test_error", "Test error", False), ("lr", "Step size η", True)]
    for row in (top[:2], top[2:]):
        cols = st.columns(2)
        for col, (name, title, log) in zip(cols, row, strict=True):
            col.altair_chart(metric_chart(long, name, title, labels, log=log, rules=rules), width="stretch")
    look_at("feature sparsity at the end of super-blocks 1-4 (post-ReLU, ≤ 1000 random units, c = 0.95; colours as "
            "above): it falls during the large-step phase, most clearly at super-blocks 3 and 4 (Fig. 14).")
    cols = st.columns(4)
    for i, col in enumerate(cols, start=1):
        chart = metric_chart(long, f"sparsity_block{i}", f"Super-block {i}", labels, rules=rules, height=200,
                             y_title="feature sparsity", legend=False)  # colours as in the charts above
        col.altair_chart(chart, width="stretch")
    filter_view(view)
    if view["status"] != "running":
        expected_vs_obtained(EXPERIMENT, preset, view)
        st.subheader("Final values")
        metrics = ["train_loss", "train_error", "test_error", *(f"sparsity_block{i}" for i in range(1, 5))]
        st.dataframe(finals_frame(view, metrics).rename(columns=metric), hide_index=True, width="stretch",
                     column_config={metric(m): st.column_config.NumberColumn(format="%.4g") for m in metrics})
        downloads(view, f"resnet_{preset}")


live(job, draw, "Press Run to queue the runs of the table (one job at a time on the GPU / long lane).")
overlay(EXPERIMENT, job, [("test_error", "Test error", False), ("train_loss", "Train loss", True),
                          ("sparsity_block4", "Feature sparsity, block 4", False),
                          ("sparsity_block1", "Feature sparsity, block 1", False)])
