"""Metric names in the paper's notation, for axis titles, legends and table headers."""

METRICS = {
    "train_loss": "train loss", "test_loss": "test loss", "ntk_rank": "rank φ(X)", "l0_norm": "‖u ⊙ v‖₀",
    "feature_sparsity": "feature sparsity", "feature_sparsity_l1": "feature sparsity, layer 1",
    "feature_sparsity_l2": "feature sparsity, layer 2", "kinks": "kinks",
    "alignment": "neurons aligned with the teacher",
    "lr": "step size η", "train_error": "train error", "test_error": "test error",
    **{f"sparsity_block{k}": f"feature sparsity, block {k}" for k in range(1, 5)},
}


def metric(name: str) -> str:
    """The paper's name of a metric (the engine's name when it has none)."""
    return METRICS.get(name, name.replace("_", " "))
