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

__all__ = ["tile_vector", "encode_input", "decode_output", "n_batches", "zero_input_slots",
           "sentinel_deviation", "has_static_sentinels", "stage_steps", "lane_rows"]


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
        blk = arr[0, st.out_rows, :] if st.orientation == "W" else arr[:, 0, :]   # (r, b)
        Y[:, p * r:(p + 1) * r] = blk[:, :n].T
    for p, v in st.const_out.items():
        Y[:, p * r:(p + 1) * r] = v[None, :]
    return Y[:, :st.n_out]


def zero_input_slots(plan):
    """Decoded slot vectors of the last stage when every input is zero.

    Every slot of a sample whose inputs are all zero (the padding samples of a
    partial batch) is known in advance: these are the client's sentinels.

    Parameters
    ----------
    plan : CompiledPlan
        A materialised plan.

    Returns
    -------
    slots : dict
        Live output tile-row -> slot vector.
    """
    from .backends import NumpyBackend
    from .program import run_program

    chunks = encode_input(plan, np.zeros((1, plan.n_features)))[0]
    return run_program(plan.stages, chunks, NumpyBackend(plan.plaintexts))


def sentinel_deviation(plan, vecs, n, zero_slots):
    """Largest deviation of the slots whose decoded value is known in advance.

    Known slots: every slot of the padding samples (``k >= n``: all-zero
    inputs), the replicated copies of a "W" last stage (equal along ``j``),
    and the padding rows of the last tile-row (independent of the input).  A
    decryption that wrapped around modulo the first prime moves every slot
    (the error is a multiple of ``q0 / scale`` times a root of unity per
    slot), so these slots reveal it.

    Parameters
    ----------
    plan : CompiledPlan
    vecs : dict
        Live output tile-row -> decoded slot vector of one ciphertext batch.
    n : int
        Real samples in this batch.
    zero_slots : dict
        From :func:`zero_input_slots`.

    Returns
    -------
    deviation : float
        Max absolute deviation (0.0 when the batch has no known slot).
    n_known : int
        Number of known slots checked.
    """
    t1, t2 = plan.tile_shape
    b = plan.batch
    st = plan.stages[-1]
    r = st.out_chunk
    worst, known = 0.0, 0
    for p, vec in vecs.items():
        arr = np.asarray(vec[:t1 * t2 * b]).reshape(t2, t1, b)
        zero = np.asarray(zero_slots[p][:t1 * t2 * b]).reshape(t2, t1, b)
        parts = []
        if n < b:
            parts.append(arr[:, :, n:] - zero[:, :, n:])
        nv = min(r, st.n_out - p * r)
        if st.orientation == "W":
            if t2 > 1:
                parts.append(arr[1:, :, :n] - arr[:1, :, :n])
            if nv < r:
                pad = st.out_rows[nv:]
                parts.append(arr[:, pad, :n] - zero[:, pad, :n])
        elif nv < r:
            parts.append(arr[nv:, 0, :n] - zero[nv:, 0, :n])
        for d in parts:
            if d.size:
                worst = max(worst, float(np.max(np.abs(d))))
                known += d.size
    return worst, known


def has_static_sentinels(plan):
    """Whether every result ciphertext has known slots even when its batch is full.

    Parameters
    ----------
    plan : CompiledPlan

    Returns
    -------
    bool
        True when the last stage replicates its outputs ("W" with ``t2 > 1``)
        or its last tile-row has padding rows.
    """
    st = plan.stages[-1]
    if st.orientation == "W" and plan.tile_shape[1] > 1:
        return True
    return bool(st.rows) and st.n_out % st.out_chunk != 0 and \
        max(r.p for r in st.rows) == st.grid[0] - 1


def stage_steps(orientation, tile_shape, batch, masked=False, gather=False):
    """Rotation steps of a stage: reduction, re-replication and lane merge.

    Parameters
    ----------
    orientation : {"W", "WT"}
        The stage's orientation.
    tile_shape : (int, int)
        ``(t1, t2)``.
    batch : int
        Samples per ciphertext ``b``.
    masked : bool, default=False
        A "WT" stage whose output is masked and re-replicated.
    gather : bool, default=False
        A gathered "W" stage.

    Returns
    -------
    reduce, replicate, merge : list of int
        "W": ``t1 b 2**k`` (``k < log2 t2``); "WT": ``b 2**k`` (``k < log2 t1``);
        replicate ``-b 2**k`` when masked; merge ``b 2**k`` when gathered.
    """
    t1, t2 = (int(v) for v in tile_shape)
    inner = [int(batch) * (1 << k) for k in range(int(np.log2(t1)))]
    if orientation == "W":
        red = [t1 * int(batch) * (1 << k) for k in range(int(np.log2(t2)))]
    else:
        red = list(inner)
    rep = [-s for s in inner] if masked else []
    return red, rep, (list(inner) if gather else [])


def lane_rows(t1, gather):
    """Row (inner tile index) holding output ``i`` of a "W" stage's tile-row.

    Parameters
    ----------
    t1 : int
        Output chunk length of the stage.
    gather : bool
        Gathered stage: lane ``i`` travels ``i`` rows left, to ``(-i) mod t1``.

    Returns
    -------
    rows : ndarray of shape (t1,)
    """
    rows = np.arange(int(t1))
    return (-rows) % int(t1) if gather else rows
