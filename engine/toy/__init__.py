"""The toy 1D model h(x) = x theta^2 (paper Sec. 2.2, Prop. 3): loss stabilization by bouncing, and SGD as GD plus
label noise (Prop. 1, Lemma 2).
"""
