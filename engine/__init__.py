"""Headless engine for 'SGD with large step sizes learns sparse features' (ICML 2023).

No Streamlit import anywhere in this package: pages, the CLI and tests all drive it the same way. Layers, top to
bottom: the CLI and jobs, sweeps, the registry, the experiment families (toy, diagonal, relu, resnet; independent of
each other), core. Nothing imports upward (import-linter contracts in pyproject.toml).
"""
