"""Diagonal linear networks (paper Sec. 3.1, Fig. 2, 3, 8): config and presets, the authors' data, the compiled
training loop and its simulator, the Fig. 3 plane, the edge-of-stability finder, the figures' claims.
"""
