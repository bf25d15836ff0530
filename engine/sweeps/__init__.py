"""Sweeps: grids of configs x seeds (phase diagrams), run on local loky processes or a Dask cluster, each point an
ordinary run cached under its own key; above the families, below the CLI.
"""
