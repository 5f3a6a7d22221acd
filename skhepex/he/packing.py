"""Slot layout of inputs and outputs: client-side encoding and decoding.

A ciphertext holds one tile of ``t1 * t2`` slots times a batch of ``b``
samples, slot ``(j*t1 + i)*b + k`` (``j`` outer, ``i`` inner, ``k`` sample).
The first stage's input chunk ``q`` is indexed along ``j`` and replicated
along ``i`` for a "W" stage, the other way round for a "WT" stage; the last
stage's output chunk ``p`` is read at ``j = 0`` ("W") or ``i = 0`` ("WT").
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np

__all__ = ["tile_vector", "encode_input", "decode_output", "n_batches"]


def tile_vector(tile_shape, batch, fill):
    """Slot vector of a ``(t2, t1)`` array ``fill[j, i]`` replicated over the batch.

    Parameters
    ----------
    tile_shape : (int, int)
        ``(t1, t2)``.
    batch : int
        Samples per ciphertext.
    fill : array-like of shape (t2, t1)
        Value of every tile position.

    Returns
    -------
    vector : ndarray of shape (t1 * t2 * batch,)
    """
    t1, t2 = tile_shape
    return np.repeat(np.asarray(fill, dtype=np.float64).reshape(t2 * t1), batch)


def n_batches(plan, n_samples):
    """Ciphertext batches needed for ``n_samples`` samples.

    Parameters
    ----------
    plan : CompiledPlan
    n_samples : int

    Returns
    -------
    n : int
    """
    return -(-int(n_samples) // plan.batch)


def encode_input(plan, X) -> List[Dict[int, np.ndarray]]:
    """Slot vectors of the client's input, per batch of ``plan.batch`` samples.

    Parameters
    ----------
    plan : CompiledPlan
        The plan the input is packed for.
    X : array-like of shape (n_samples, plan.n_features)
        Encoded network inputs (see the networks' ``encode_input``).

    Returns
    -------
    batches : list of dict
        Per batch: live input chunk -> slot vector.
    """
    t1, t2 = plan.tile_shape
    b = plan.batch
    st0 = plan.stages[0]
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != plan.n_features:
        raise ValueError(f"X must have shape (n_samples, {plan.n_features}), got {X.shape}")
    c = st0.in_chunk
    Q = st0.grid[1]
    batches = []
    for start in range(0, X.shape[0], b):
        xb = np.zeros((b, Q * c))
        part = X[start:start + b]
        xb[:part.shape[0], :part.shape[1]] = part
        d = {}
        for q in st0.live_in:
            v = xb[:, q * c:(q + 1) * c].T                       # (c, b)
            if st0.orientation == "W":   # indexed along j, replicated along i
                arr = np.broadcast_to(v[:, None, :], (t2, t1, b))
            else:                        # indexed along i, replicated along j
                arr = np.broadcast_to(v[None, :, :], (t2, t1, b))
            d[q] = np.ascontiguousarray(arr).reshape(-1)
        batches.append(d)
    return batches


def decode_output(plan, outs: Dict[int, np.ndarray], n: int) -> np.ndarray:
    """Outputs ``(n, n_outputs)`` from the decoded slot vectors of the last stage.

    Parameters
    ----------
    plan : CompiledPlan
    outs : dict
        Live output tile-row -> decoded slot vector.
    n : int
        Samples in this batch.

    Returns
    -------
    Y : ndarray of shape (n, plan.n_outputs)
        Compile-time constant rows are filled in from the plan.
    """
    t1, t2 = plan.tile_shape
    b = plan.batch
    st = plan.stages[-1]
    r = st.out_chunk
    Y = np.zeros((n, st.grid[0] * r))
    for p, vec in outs.items():
        arr = np.asarray(vec[:t1 * t2 * b]).reshape(t2, t1, b)
        blk = arr[0, :, :] if st.orientation == "W" else arr[:, 0, :]   # (r, b)
        Y[:, p * r:(p + 1) * r] = blk[:, :n].T
    for p, v in st.const_out.items():
        Y[:, p * r:(p + 1) * r] = v[None, :]
    return Y[:, :st.n_out]
