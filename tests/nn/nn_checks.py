"""Finite-difference helper shared by the tests of :mod:`skhepex.nn`."""

import numpy as np

EPS = 1e-6
RTOL, ATOL = 1e-5, 1e-7


def num_grad(f, arr, eps=EPS, idx=None):
    """Central-difference gradient of the scalar ``f()`` w.r.t. entries of ``arr``.

    ``idx`` (flat indices) restricts it to some coordinates; the result then
    has one value per index, else the shape of ``arr``.
    """
    flat = range(arr.size) if idx is None else idx
    g = np.zeros(arr.shape) if idx is None else np.empty(len(idx))
    for j, i in enumerate(flat):
        old = arr.flat[i]
        arr.flat[i] = old + eps
        fp = f()
        arr.flat[i] = old - eps
        fm = f()
        arr.flat[i] = old
        g.flat[i if idx is None else j] = (fp - fm) / (2 * eps)
    return g
