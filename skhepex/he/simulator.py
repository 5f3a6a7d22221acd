"""Plaintext simulation of the packed network, and the float64 reference."""
from __future__ import annotations

import numpy as np

from .backends import NumpyBackend
from .compiler import poly_value
from .packing import decode_output, encode_input
from .program import run_program

__all__ = ["PlainSimulator", "reference_forward"]


class PlainSimulator:
    """Run the packed op sequence on NumPy slot vectors (no encryption).

    Same packing, same ops, same order as the encrypted engine; rotations are
    ``np.roll``.  Use it to check layouts fast: it matches the matrix math up to
    float64 rounding.

    Parameters
    ----------
    plan : CompiledPlan
        A materialised plan (``compile_stages(..., materialize=True)``).
    """

    def __init__(self, plan):
        if any(v is None for v in plan.plaintexts.values()):
            raise ValueError("PlainSimulator needs a materialised plan "
                             "(compile_stages(..., materialize=True))")
        self.plan = plan
        self._be = NumpyBackend(plan.plaintexts)

    def predict(self, X) -> np.ndarray:
        """Raw outputs of the packed network.

        Parameters
        ----------
        X : array-like of shape (n_samples, plan.n_features)
            Encoded network inputs (converted to float64), packed
            ``plan.batch`` samples per slot vector.

        Returns
        -------
        Y : ndarray of shape (n_samples, plan.n_outputs)
            Float64 raw outputs decoded from the packed slot vectors.
        """
        X = np.asarray(X, dtype=np.float64)
        b = self.plan.batch
        out = []
        for bi, chunks in enumerate(encode_input(self.plan, X)):
            chunks = run_program(self.plan.stages, chunks, self._be)
            out.append(decode_output(self.plan, chunks, min(b, X.shape[0] - bi * b)))
        return np.vstack(out) if out else np.zeros((0, self.plan.n_outputs))


def reference_forward(stages, X) -> np.ndarray:
    """Plain float64 forward pass of a stage list (the ground truth in tests).

    Parameters
    ----------
    stages : list of dict
        Stage dicts (see :func:`~skhepex.he.compiler.compile_stages`).
    X : array-like of shape (n_samples, n_in)
        Inputs of the first stage (converted to float64).

    Returns
    -------
    Y : ndarray of shape (n_samples, n_out)
        Float64 outputs of the last stage: ``h @ matrix.T + bias`` then the
        stage's polynomial activation, stage by stage, without packing.
    """
    h = np.asarray(X, dtype=np.float64)
    for st in stages:
        h = h @ np.asarray(st["matrix"], dtype=np.float64).T + np.asarray(st["bias"])
        h = poly_value(h, st.get("activation"))
    return h
