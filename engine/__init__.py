"""Headless engine for 'SGD with large step sizes learns sparse features' (ICML 2023).

No Streamlit import anywhere in this package: pages, the CLI and tests all drive it the same way.
"""

# Bump when a change alters results: cached results of another version are misses.
ENGINE_VERSION = "1"
