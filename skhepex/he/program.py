"""The one op sequence of encrypted inference, and the backend protocol it drives.

Per live output tile-row of a stage:

* Stage "W" (W cut into (t1, t2) blocks): input chunk q is indexed along j and
  replicated along i.  ``acc_p = sum_q ct_q * pt_pq``, rescale, then rotations by
  ``t1*b*2^r`` (r < log2 t2) sum over j; they wrap the whole ciphertext so the
  result is duplicated along j: output chunk p is indexed along i, replicated
  along j (input format of a "WT" stage).  No mask.
* Stage "WT" (W^T cut into (t1, t2) blocks): input indexed along i, replicated
  along j; rotations by ``b*2^r`` (r < log2 t1) sum over i, valid at i=0 only.
  If a stage follows, a 0/1 mask keeps i=0 (one level) and rotations by
  ``-b*2^r`` replicate it along i: output indexed along j = "W" input format.
* Gathered "W" stage (a "W" stage after a "WT" stage, usually the last,
  with few outputs): the "WT" stage skips its mask and replication (one level
  and ``log2 t1`` rotations per row less, and every earlier op runs on one
  prime less); its output is valid at ``i = 0`` only.  Each output lane ``i``
  of a tile-row gets its own weight vector ``W[p t1 + i, q t2 + j]`` at
  ``(j, i=0)``, zero elsewhere (which clears the unmasked slots),
  ``lane_i = sum_q ct_q * pt_pqi``; ``lanes - 1`` rotations by ``b*2^k`` (the
  "WT" stage's own reduction keys: no Galois key of its own) move lane ``i``
  to row ``(-i) mod t1`` and sum the lanes, then one rescale and the "W"
  reduction over j.  Costs ``t1`` times the plaintext multiplies of the stage.
* Bias: plaintext add at the exact level/scale met.  Activation
  ``a z^2 + b z + c`` costs ONE level: ``sqrt|a|`` is folded into the stage's
  weights and bias at compile time, so it is ``sign(a) z'^2 + (b/sqrt|a|) z' + c``:
  one ct*ct (+ one ct*pt at the same level, whose plaintext is encoded at the
  ciphertext's scale so both terms share the scale ``s^2``), one
  relinearisation and one rescale.  ``a == 0`` is folded entirely into the
  weights (zero levels).

Relinearising after the rescale (one level lower, ~25% cheaper) was measured
and kept out: it raised the error of a depth-5, 2^28-scale network from 4e-4
to 2e-3 (key-switching noise relative to ``s`` instead of ``s^2``).

Every backend (:mod:`skhepex.he.backends`: symbolic levels, NumPy slot vectors,
SEAL) implements :class:`Backend`; :class:`CountingBackend` wraps any of them
and counts the ops per stage and level.
"""
from __future__ import annotations

import time
from typing import Dict, List, Protocol

__all__ = ["OPS", "Backend", "CountingBackend", "run_stage", "run_program"]

#: Operations the op sequence issues (and the cost model prices).
OPS = ("mul_plain", "mul_ct", "rotate", "rescale", "relinearize", "add", "add_plain",
       "negate", "encode_scalar")


class Backend(Protocol):
    """What :func:`run_stage` needs from a backend.

    ``ct`` values are backend-specific ciphertext stand-ins; ``key`` values are
    :class:`~skhepex.he.plan.PtKey` of the plan's plaintexts (or, with
    encrypted weights, of the weight ciphertexts).  Methods may modify their
    first argument in place and must return the result.
    """

    def level(self, ct) -> int:
        """Level of ``ct`` (0 = fresh)."""

    def mul_plain(self, ct, key): ...

    def mul_cipher(self, ct, key): ...

    def mul_plain_add(self, acc, ct, key): ...

    def add(self, a, b): ...

    def add_plain(self, ct, key): ...

    def add_cipher(self, ct, key): ...

    def rotate(self, ct, step): ...

    def rescale(self, ct): ...

    def square(self, ct): ...

    def negate(self, ct): ...

    def relinearize(self, ct): ...


class CountingBackend:
    """Wrap a backend and count its ops per stage and level.

    Parameters
    ----------
    inner : Backend
        The backend doing the work.
    scalar_plaintexts : bool, default=False
        Count one ``encode_scalar`` per plaintext use (1x1 tiles encode every
        plaintext when it is used).

    Attributes
    ----------
    counts : list of dict
        Per stage: ``{(op, level): count}``.
    """

    def __init__(self, inner, scalar_plaintexts=False):
        self.inner = inner
        self.scalar = bool(scalar_plaintexts)
        self.stage = 0
        self.counts: List[dict] = []

    def begin(self, stage_idx):
        """Count the following ops for stage ``stage_idx``.

        Parameters
        ----------
        stage_idx : int
        """
        self.stage = stage_idx
        while len(self.counts) <= stage_idx:
            self.counts.append({})

    def _tick(self, op, ct):
        d = self.counts[self.stage]
        key = (op, self.inner.level(ct))
        d[key] = d.get(key, 0) + 1

    def totals(self):
        """Op totals per stage, over levels.

        Returns
        -------
        totals : list of dict
            ``{op: count}`` for every op in :data:`OPS`.
        """
        out = []
        for d in self.counts:
            t = {op: 0 for op in OPS}
            for (op, _), n in d.items():
                t[op] += n
            out.append(t)
        return out

    def level(self, ct):
        """Level of ``ct`` (delegated)."""
        return self.inner.level(ct)

    def mul_plain(self, ct, key):
        """Count and delegate a ciphertext x plaintext multiply."""
        if self.scalar:
            self._tick("encode_scalar", ct)
        self._tick("mul_plain", ct)
        return self.inner.mul_plain(ct, key)

    def mul_plain_add(self, acc, ct, key):
        """Count (``mul_plain`` and ``add``) and delegate a fused multiply-accumulate."""
        if self.scalar:
            self._tick("encode_scalar", ct)
        self._tick("mul_plain", ct)
        self._tick("add", acc)
        return self.inner.mul_plain_add(acc, ct, key)

    def mul_cipher(self, ct, key):
        """Count and delegate a ciphertext x weight-ciphertext multiply."""
        self._tick("mul_ct", ct)
        return self.inner.mul_cipher(ct, key)

    def add(self, a, b):
        """Count and delegate a ciphertext addition."""
        self._tick("add", a)
        return self.inner.add(a, b)

    def add_plain(self, ct, key):
        """Count and delegate a plaintext addition."""
        if self.scalar:
            self._tick("encode_scalar", ct)
        self._tick("add_plain", ct)
        return self.inner.add_plain(ct, key)

    def add_cipher(self, ct, key):
        """Count and delegate the addition of a weight ciphertext."""
        self._tick("add", ct)
        return self.inner.add_cipher(ct, key)

    def rotate(self, ct, step):
        """Count and delegate a rotation."""
        self._tick("rotate", ct)
        return self.inner.rotate(ct, step)

    def rescale(self, ct):
        """Count and delegate a rescale."""
        self._tick("rescale", ct)
        return self.inner.rescale(ct)

    def square(self, ct):
        """Count (as ``mul_ct``) and delegate a square."""
        self._tick("mul_ct", ct)
        return self.inner.square(ct)

    def negate(self, ct):
        """Count and delegate a negation."""
        self._tick("negate", ct)
        return self.inner.negate(ct)

    def relinearize(self, ct):
        """Count and delegate a relinearisation."""
        self._tick("relinearize", ct)
        return self.inner.relinearize(ct)


def _mul_acc(st, be, acc, ct, key):
    """``acc + ct * w[key]`` (``ct * w[key]`` when ``acc`` is None)."""
    if st.encrypted:
        t = be.mul_cipher(ct, key)
        return t if acc is None else be.add(acc, t)
    return be.mul_plain(ct, key) if acc is None else be.mul_plain_add(acc, ct, key)


def _gather_row(st, row, chunks, be):
    """Products of a gathered row, one accumulator per lane, merged into rows ``i``.

    Lane ``i``'s weights are zero off ``i = 0``, which clears what the
    unmasked input holds there.  A left rotation by ``b * i`` moves row 0 of
    column ``j`` to row ``(-i) mod t1`` (:attr:`StagePlan.out_rows`) of column
    ``j - 1`` (the slots wrap around the whole ciphertext), with the rotation
    keys ``b * 2**k`` the "WT" stage before already uses; the column shift is
    absorbed by the reduction over ``j`` that follows.  Accumulators are
    merged by the bits of ``i`` (one rotation per merge), then rescaled once.
    """
    lanes = {}
    for q, key in row.terms:
        lanes[key.i] = _mul_acc(st, be, lanes.get(key.i), chunks[q], key)
    if st.encrypted:              # rotations need size-2 ciphertexts
        lanes = {i: be.relinearize(ct) for i, ct in lanes.items()}
    for k, step in enumerate(st.merge_steps):
        bit = 1 << k
        for i in sorted(i for i in lanes if i & bit):
            moved = be.rotate(lanes.pop(i), step)
            lanes[i - bit] = moved if i - bit not in lanes else be.add(lanes[i - bit], moved)
    (acc,) = lanes.values()
    return be.rescale(acc)


def run_stage(st, chunks: Dict[int, object], be) -> Dict[int, object]:
    """Run one stage on its live input chunks with backend ``be``.

    Parameters
    ----------
    st : StagePlan
        The stage.
    chunks : dict
        Input chunk index -> ciphertext (backend-specific).
    be : Backend
        Backend executing the ops.

    Returns
    -------
    outs : dict
        Output tile-row -> ciphertext, for the stage's live rows.
    """
    outs = {}
    for row in st.rows:
        if st.gather:
            acc = _gather_row(st, row, chunks, be)
        else:
            acc = None
            for q, key in row.terms:
                acc = _mul_acc(st, be, acc, chunks[q], key)
            if not st.defer_rescale:
                acc = be.rescale(acc)
            if st.encrypted:          # one relinearisation per row, after the rescale
                acc = be.relinearize(acc)
        for step in st.reduce_steps:
            acc = be.add(acc, be.rotate(acc, step))
        if row.bias_key is not None:
            acc = (be.add_cipher(acc, row.bias_key) if st.encrypted
                   else be.add_plain(acc, row.bias_key))
        if row.mask_key is not None:
            acc = be.rescale(be.mul_plain(acc, row.mask_key))
        if st.act_sign != 0:
            sq = be.square(acc)
            if st.act_sign < 0:
                sq = be.negate(sq)
            if row.lin_key is not None:
                sq = be.add(sq, be.mul_plain(acc, row.lin_key))
            acc = be.rescale(be.relinearize(sq))
            if row.const_key is not None:
                acc = be.add_plain(acc, row.const_key)
        for step in st.replicate_steps:
            acc = be.add(acc, be.rotate(acc, step))
        outs[row.p] = acc
    return outs


def run_program(stages, chunks, be, timer=None):
    """Run every stage in order.

    Parameters
    ----------
    stages : list of StagePlan
    chunks : dict
        Live input chunks of the first stage.
    be : Backend or CountingBackend
        ``begin(stage)`` is called when the backend has it.
    timer : callable, optional
        ``timer(stage_index, seconds)`` is called after each stage.

    Returns
    -------
    outs : dict
        Live output chunks of the last stage.
    """
    begin = getattr(be, "begin", None)
    for s_i, st in enumerate(stages):
        if begin is not None:
            begin(s_i)
        t0 = time.perf_counter()
        chunks = run_stage(st, chunks, be)
        if timer is not None:
            timer(s_i, time.perf_counter() - t0)
    return chunks
