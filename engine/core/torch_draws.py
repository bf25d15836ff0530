"""torch's CPU random draws after torch.manual_seed(seed), reproduced in numpy.

The authors' ReLU-net code draws its nets with torch on the CPU right after torch.manual_seed(seed): the
nn.Linear constructors first (kaiming-uniform weights, uniform biases), then torch.rand_like / randn_like.
`TorchRandom` replays that stream (torch's generator is mt19937 seeded like numpy's legacy RandomState) and
the float32 kernels torch 2.x applies to it, so a preset's seed starts from the authors' init without
importing torch (~2 s per process). tests/test_relu1d.py checks it against torch: bit for bit, except randn
of 16 values or more, which agrees to ~1e-5 (torch's float32 log/cos/sin there depend on its build and CPU).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math

import numpy as np


def _libm_float(name: str):
    """The C library's float function (what torch's std::log / cos / sin on a float call), else a float64
    stand-in rounded to float32."""
    path = ctypes.util.find_library("m")
    if path is not None:
        try:
            fn = getattr(ctypes.CDLL(path), name)
            fn.restype, fn.argtypes = ctypes.c_float, [ctypes.c_float]
            return fn
        except (OSError, AttributeError):
            pass
    return lambda v: float(np.float32(getattr(math, name[:-1])(v)))


_LOGF, _COSF, _SINF = (_libm_float(n) for n in ("logf", "cosf", "sinf"))


class TorchRandom:
    """The CPU stream of torch.manual_seed(seed) and the draws of rand, randn and nn.Linear on it (float32)."""

    def __init__(self, seed: int):
        self._rs = np.random.RandomState(seed & 0xFFFFFFFF)   # mt19937, init_genrand(seed): torch's engine
        self._cached_normal: float | None = None              # torch keeps the 2nd Box-Muller value

    def _bits(self, n: int) -> np.ndarray:
        return self._rs.randint(0, 2**32, size=n, dtype=np.uint32).astype(np.uint64)

    def uniform(self, shape, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
        """tensor.uniform_(lo, hi): 24 random bits per value, scaled in double, stored as float32."""
        n = int(np.prod(shape))
        lo32, hi32 = np.float32(lo), np.float32(hi)
        x = (self._bits(n) & 0xFFFFFF).astype(np.float64) * 2.0**-24
        return (x * np.float64(hi32 - lo32) + np.float64(lo32)).astype(np.float32).reshape(shape)

    def rand(self, shape) -> np.ndarray:
        return self.uniform(shape)

    def randn(self, shape) -> np.ndarray:
        """tensor.normal_(): Box-Muller on blocks of 16 float32 uniforms from 16 values on, else one double
        Box-Muller pair per two values (the second kept for the next call)."""
        n = int(np.prod(shape))
        if n >= 16:
            data = self.uniform(n)
            for i in range(0, n - 15, 16):
                data[i:i + 16] = self._fill16(data[i:i + 16])
            if n % 16:
                data[n - 16:] = self._fill16(self.uniform(16))
            return data.reshape(shape)
        return np.array([self._normal() for _ in range(n)], dtype=np.float32).reshape(shape)

    @staticmethod
    def _fill16(u: np.ndarray) -> np.ndarray:
        out = np.empty(16, dtype=np.float32)
        for j in range(8):
            radius = np.float32(math.sqrt(np.float32(-2) * np.float32(_LOGF(np.float32(1) - u[j]))))
            theta = float(np.float32(2.0 * math.pi * float(u[j + 8])))
            out[j] = radius * np.float32(_COSF(theta))
            out[j + 8] = radius * np.float32(_SINF(theta))
        return out

    def _normal(self) -> float:
        if self._cached_normal is not None:
            value, self._cached_normal = self._cached_normal, None
            return value
        bits = self._bits(4)
        u1, u2 = ((((bits[k] << np.uint64(32)) | bits[k + 1]) & np.uint64(2**53 - 1)) * 2.0**-53 for k in (0, 2))
        r = math.sqrt(-2.0 * math.log1p(-float(u2)))
        theta = 2.0 * math.pi * float(u1)
        self._cached_normal = r * math.sin(theta)
        return r * math.cos(theta)

    def linear(self, fan_in: int, fan_out: int, bias: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """nn.Linear(fan_in, fan_out, bias)'s own init: kaiming_uniform_(a=sqrt(5)) weights, U(+-1/sqrt(fan_in))
        biases."""
        gain = math.sqrt(2.0 / (1 + math.sqrt(5) ** 2))
        w_bound = math.sqrt(3.0) * (gain / math.sqrt(fan_in))
        w = self.uniform((fan_out, fan_in), -w_bound, w_bound)
        b_bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        return w, (self.uniform(fan_out, -b_bound, b_bound) if bias else None)
