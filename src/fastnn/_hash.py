"""The counter-based hash behind Dropout's masks (a leaf module: the layers compute keys with it,
both dropout kernels the masks).

Element i of a call with key k is kept iff
    (mix64(k + i * GOLDEN64) >> 32) >= floor(p * 2**32)
with mix64 the splitmix64 finalizer, in wrapping uint64 arithmetic. dropout.pyx and
dropout_numpy.py compute exactly this, so masks are bit-identical across backends and thread
counts; the key is a hash of (seed, layer, step), so a mask is a pure function of
(seed, layer, step, i).
"""
import numpy as np

MASK64 = (1 << 64) - 1
GOLDEN64 = 0x9E3779B97F4A7C15  # 2**64 / golden ratio, splitmix64's counter increment
MIX64_M1 = 0xBF58476D1CE4E5B9
MIX64_M2 = 0x94D049BB133111EB


def mix64(z):
    """The splitmix64 finalizer of a Python int, mod 2**64 (a bijection of 64-bit integers)."""
    z &= MASK64
    z = ((z ^ (z >> 30)) * MIX64_M1) & MASK64
    z = ((z ^ (z >> 27)) * MIX64_M2) & MASK64
    return z ^ (z >> 31)


def dropout_key(seed, layer, step):
    """The 64-bit key of one dropout call, a hash of non-negative integers (seed, layer, step).

    seed is taken mod 2**64. The same arguments give the same key (and mask) on every backend.
    """
    key = 0
    for name, part in (("seed", seed), ("layer", layer), ("step", step)):
        if isinstance(part, bool) or not isinstance(part, (int, np.integer)) or part < 0:
            raise ValueError(f"dropout_key: {name} must be a non-negative integer, got {part!r}")
        key = mix64((key ^ (int(part) & MASK64)) + GOLDEN64)
    return key
