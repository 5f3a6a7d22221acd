"""Tile-tensor CKKS inference engine on TenSEAL / SEAL primitives.

Packing (HElayers-style tile tensors).  A ciphertext holds one tile of
``t1 * t2`` slots times a batch of ``b = S // (t1*t2)`` samples, slot index
``(j*t1 + i)*b + k`` with ``j in [0, t2)`` outer, ``i in [0, t1)`` inner and
``k`` the sample.

* Stage "W" (W cut into (t1, t2) blocks): input chunk q is indexed along j and
  replicated along i.  ``acc_p = sum_q ct_q * pt_pq``, rescale, then rotations by
  ``t1*b*2^r`` (r < log2 t2) sum over j; they wrap the whole ciphertext so the
  result is duplicated along j: output chunk p is indexed along i, replicated
  along j (input format of a "WT" stage).  No mask.
* Stage "WT" (W^T cut into (t1, t2) blocks): input indexed along i, replicated
  along j; rotations by ``b*2^r`` (r < log2 t1) sum over i, valid at i=0 only.
  If a stage follows, a 0/1 mask keeps i=0 (one level) and rotations by
  ``-b*2^r`` replicate it along i: output indexed along j = "W" input format.
* Bias: plaintext add at the exact level/scale met.  Activations: ``square`` and
  ``poly a z^2 + b z + c`` both cost ONE level: ``sqrt|a|`` is folded into the
  stage's weights and bias at compile time, so ``a z^2 + b z + c =
  sign(a) z'^2 + (b/sqrt|a|) z' + c`` is one ct*ct (+ one ct*pt at the same
  level, whose plaintext is encoded at the ciphertext's scale so both terms
  share the scale ``s^2``), one relinearisation and one rescale.  ``a == 0`` is
  folded entirely into the weights (zero levels).  Masked (WT, not last)
  activations cost mask + activation = 2 levels.
* Weight and mask plaintexts are encoded at a scale equal to the prime the next
  rescale drops, so the ciphertext scale is preserved exactly through every
  linear stage; bias/constant plaintexts at the ciphertext's exact scale.
* Tiles whose ``tile_mask`` is False are neither encoded nor multiplied.  An
  output tile-row with no live tile is a constant (``act(bias)``): it is folded
  at compile time into the next stage's bias (or returned in clear for the last
  stage), which also removes its rotations.

One op sequence (:func:`_run_stage`) drives three backends: a symbolic one
(levels, scales, op counts -- no keys), :class:`PlainSimulator` (NumPy slot
vectors, ``np.roll`` rotations) and the SEAL backend used by
:class:`ServerModel`.

With ``t1 == 1`` a "WT" stage has nothing to reduce: no rotation, no mask and
no mask level (one level less per WT stage -- it can keep a network at N=8192).

1x1 tiles (``t1 == t2 == 1``): every ciphertext holds one neuron for a batch of
``S`` samples and every plaintext is one value in all slots.  No rotation, no
Galois key; the plan stores the scalars (8 bytes each) and the SEAL backend
encodes each when it is used (``encode_scalar``, ~10 us vs ~0.4 ms for the
ct*pt multiply at N=8192), so the packed model is tiny although the tile count is
the weight count.  Per sample, the multiplies cost what they cost with any tile
shape (``n_out n_in / S``); the rotations and per-row relinearisations that
dominate larger tiles are gone (64-128-128-10 MLP, N=8192: 2.9 ms/sample at 1x1
vs 8.4 ms at 1x8, measured in one process).  The price is latency: one batch is
``S`` samples, so 1x1 suits throughput; small requests take larger tiles (the
cost model's ``batch_size``).

Tiles whose weights all encode to zero at the smallest rescale prime
(``|w| * q < 1/2``, e.g. the weights of an input feature that is always 0) are
skipped like pruned tiles: SEAL rejects the exactly-zero ("transparent") product.

Measured and kept out: relinearising after the rescale (one level lower, ~25%
cheaper) raised the error of a depth-5, 2^28-scale network from 4e-4 to 2e-3
(key-switching noise relative to ``s`` instead of ``s^2``).

``encrypt_weights``: weight tiles and biases are ciphertexts under the client's
key; products become ct*ct (summed per tile-row, rescaled, then relinearised
once), bias adds ct+ct.  Masks and activation coefficients stay plaintexts
(they reveal the architecture only, which the tile structure reveals anyway).

Serialization: no pickle anywhere.  Bytes are ``_MAGIC`` + an ``.npz``
archive holding a JSON header and numeric arrays, read back with
``allow_pickle=False``; SEAL/TenSEAL objects are stored in their own native
formats as ``uint8`` arrays.  A :class:`ServerModel` is stored as the public
TenSEAL context (no secret key), the SEAL Galois keys and the plan with one tile
of each plaintext slot vector (the rest is replication along the batch); the
plaintexts are re-encoded at load time (~0.6 ms each at N=8192).
"""
from __future__ import annotations

import io
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from .params import CKKSParams, choose_params, validate_params

try:  # imported lazily-friendly: PlainSimulator / count_ops work without SEAL
    import tenseal as ts
    import tenseal.sealapi as sealapi
except ImportError:  # pragma: no cover
    ts = None
    sealapi = None

__all__ = [
    "CompiledPlan", "StagePlan", "compile_stages", "count_ops", "required_depth",
    "PlainSimulator", "Client", "ServerModel", "EncryptedBatch", "EncryptedResult",
    "measure_unit_costs", "predict_latency", "memory_estimate",
]

OPS = ("mul_plain", "mul_ct", "rotate", "rescale", "relinearize", "add", "add_plain",
       "negate", "encode_scalar")


# --------------------------------------------------------------------------- plan
def _is_pow2(x: int) -> bool:
    return x >= 1 and (x & (x - 1)) == 0


def _parse_activation(act, name):
    """Return (a, b, c) of the polynomial activation, or None."""
    if act is None:
        return None
    if isinstance(act, str):
        act = (act,)
    kind = act[0]
    if kind == "square":
        return (1.0, 0.0, 0.0)
    if kind == "poly":
        if len(act) != 4:
            raise ValueError(f"stage {name!r}: poly activation is ('poly', a, b, c)")
        return tuple(float(v) for v in act[1:])
    raise ValueError(f"stage {name!r}: activation {act!r} cannot be evaluated under CKKS; "
                     f"use None, ('square',) or ('poly', a, b, c)")


def _act_plain(z, abc):
    if abc is None:
        return z
    a, b, c = abc
    return a * z * z + b * z + c


@dataclass
class RowPlan:
    """Op-level plan of one live output tile-row ``p`` of a stage."""

    p: int
    terms: List[Tuple[int, str]]      # (input chunk q, weight plaintext key)
    bias_key: Optional[str]
    mask_key: Optional[str]
    lin_key: Optional[str]            # b' plaintext (poly), multiplies the ct
    const_key: Optional[str]          # c (after activation)


@dataclass
class StagePlan:
    """Compiled plan of one linear stage (+ bias, activation).

    Attributes
    ----------
    name, orientation : str
    n_in, n_out : int
    grid : (int, int)
        Tile grid (output tile-rows, input tile-columns) in (out, in) coordinates.
    tile_mask : ndarray of bool
    live_in : list of int
        Input chunks that are ciphertexts (others are compile-time constants).
    rows : list of RowPlan
        Live output tile-rows (encrypted outputs).
    const_out : dict
        Output chunk -> constant value vector (chunk length), folded away.
    reduce_steps, replicate_steps : list of int
        Rotation steps (SEAL convention: positive = left).
    act_sign : int
        0 no activation, +1 / -1 sign of the folded square term.
    """

    name: str
    orientation: str
    n_in: int
    n_out: int
    grid: Tuple[int, int]
    tile_mask: np.ndarray
    live_in: List[int]
    rows: List[RowPlan]
    const_out: Dict[int, np.ndarray]
    reduce_steps: List[int]
    replicate_steps: List[int]
    act_sign: int
    masked: bool
    in_chunk: int        # input chunk length (t2 for W, t1 for WT)
    out_chunk: int       # output chunk length (t1 for W, t2 for WT)
    encrypted: bool = False   # weights/biases are ciphertexts (ct x ct products)


@dataclass
class CompiledPlan:
    """Everything needed to run a network under CKKS, minus keys.

    Attributes
    ----------
    params : CKKSParams
    tile_shape : (int, int)
    batch : int
        Samples per ciphertext, ``S // (t1*t2)``.
    stages : list of StagePlan
    plaintexts : dict
        key -> (slot vector float64, role) with role in {"mul", "add", "coef"}.
    pt_spec : dict
        key -> (level, scale) at which the plaintext is encoded.
    rotation_steps : list of int
        Exactly the steps whose Galois keys are generated.
    depth : int
        Levels consumed.
    op_counts : list of dict
        Per stage: predicted op counts (see :func:`count_ops`).
    primes : list of int
        Data primes q0..qL of the coefficient modulus.
    """

    params: CKKSParams
    tile_shape: Tuple[int, int]
    batch: int
    n_features: int
    n_outputs: int
    stages: List[StagePlan]
    plaintexts: Dict[str, Tuple[np.ndarray, str]]
    pt_spec: Dict[str, Tuple[int, float]] = field(default_factory=dict)
    rotation_steps: List[int] = field(default_factory=list)
    depth: int = 0
    op_counts: List[dict] = field(default_factory=list)
    primes: List[int] = field(default_factory=list)
    level_ops: List[dict] = field(default_factory=list)
    encrypted_weights: bool = False
    scalar_plaintexts: bool = False

    def encrypted_keys(self) -> List[str]:
        """Keys of the weight and bias vectors that are encrypted (if any)."""
        if not self.encrypted_weights:
            return []
        return [k for k in self.pt_spec if k.split(":")[1] in ("w", "b")]

    def weight_bytes(self) -> int:
        """Bytes of the packed model: plaintexts, plus ciphertexts (2x) when encrypted."""
        enc = set(self.encrypted_keys())
        N, L = self.params.poly_modulus_degree, len(self.primes)
        return self.plaintext_bytes() + int(sum(2 * (L - lvl) * N * 8
                                                for k, (lvl, _) in self.pt_spec.items()
                                                if k in enc))

    @property
    def n_slots(self) -> int:
        return self.params.n_slots

    def slot_index(self, j, i, k=0):
        """Slot of tile position (j, i) and batch sample k."""
        t1, _ = self.tile_shape
        return (np.asarray(j) * t1 + np.asarray(i)) * self.batch + np.asarray(k)

    def plaintext_bytes(self) -> int:
        """Bytes of all encoded plaintexts (NTT form, N*8 bytes per prime).

        With scalar plaintexts (1x1 tiles) the server keeps one float64 per
        plaintext and encodes it when it is used (~10 us): 8 bytes each.
        """
        N, L = self.params.poly_modulus_degree, len(self.primes)
        enc = set(self.encrypted_keys())
        if self.scalar_plaintexts:
            return 8 * sum(1 for k in self.pt_spec if k not in enc)
        return int(sum((L - lvl) * N * 8 for k, (lvl, _) in self.pt_spec.items()
                       if k not in enc))


def _tile_vec(plan_dims, fill):
    """Build a slot vector from a (t2, t1) array ``fill[j, i]`` replicated over k."""
    t1, t2, b = plan_dims
    return np.repeat(np.asarray(fill, dtype=np.float64).reshape(t2 * t1), b)


def _needs_mask(st, last, tile_shape=None) -> bool:
    """Whether a stage's output must be masked and re-replicated.

    Only a "WT" stage that is followed by another stage, and only when the
    reduced (inner) tile dimension ``t1`` is larger than one: with ``t1 == 1``
    there is nothing to reduce, the output is already clean and the mask (and
    its level) is skipped.
    """
    if st["orientation"] != "WT" or last:
        return False
    if tile_shape is not None:
        return int(tile_shape[0]) > 1
    bs = st.get("block_shape")
    return bs is None or int(bs[1]) > 1


def required_depth(stages, tile_shape=None) -> int:
    """Multiplicative depth (rescalings) the packed network consumes.

    Per stage: 1 (weights) + 1 if a square/poly activation with a != 0
    + 1 for the mask of a "WT" stage that is followed by another stage (not
    needed when ``t1 == 1``).

    Parameters
    ----------
    stages : list of dict
        Stage dicts (see :func:`compile_stages`).
    tile_shape : (int, int), optional
        Tile shape; read from the stages' ``block_shape`` when omitted.

    Returns
    -------
    int
    """
    d = 0
    for s_i, st in enumerate(stages):
        abc = _parse_activation(st.get("activation"), st.get("name", s_i))
        d += 1
        if abc is not None and abc[0] != 0.0:
            d += 1
        if _needs_mask(st, s_i == len(stages) - 1, tile_shape):
            d += 1
    return d


def _build(stages, tile_shape, slots, materialize=True, encrypt_weights=False,
           zero_tol=0.0) -> CompiledPlan:
    t1, t2 = (int(v) for v in tile_shape)
    if not (_is_pow2(t1) and _is_pow2(t2)):
        raise ValueError(f"tile_shape must be powers of two, got {tile_shape}")
    if t1 * t2 > slots:
        raise ValueError(f"tile {t1}x{t2} needs {t1*t2} slots > {slots}")
    b = slots // (t1 * t2)
    dims = (t1, t2, b)
    # 1x1 tiles: every plaintext is one value replicated over all slots (the
    # batch): store the scalar, encode it when used (no NTT-form plaintexts)
    scalar = t1 == 1 and t2 == 1

    def vec(fill):
        if not materialize:
            return None
        if scalar:
            return np.asarray(fill, dtype=np.float64).reshape(1)
        return _tile_vec(dims, fill)

    if len(stages) == 0:
        raise ValueError("empty network")
    pts: Dict[str, Tuple[np.ndarray, str]] = {}
    plans: List[StagePlan] = []
    const_in: Dict[int, np.ndarray] = {}       # constant input chunks of next stage
    live_prev = None
    n_stages = len(stages)
    for s_i, st in enumerate(stages):
        name = str(st.get("name", f"stage{s_i}"))
        W = np.asarray(st["matrix"], dtype=np.float64)
        beta = np.asarray(st["bias"], dtype=np.float64).reshape(-1)
        n_out, n_in = W.shape
        if beta.shape[0] != n_out:
            raise ValueError(f"stage {name!r}: bias length {beta.shape[0]} != {n_out}")
        orient = st["orientation"]
        if orient not in ("W", "WT"):
            raise ValueError(f"stage {name!r}: orientation must be 'W' or 'WT'")
        if s_i > 0 and orient == plans[-1].orientation:
            raise ValueError(f"stage {name!r}: orientations must alternate W, WT, W, ...")
        r, c = (t1, t2) if orient == "W" else (t2, t1)
        if tuple(st.get("block_shape", (r, c))) != (r, c):
            raise ValueError(f"stage {name!r}: block_shape {st.get('block_shape')} does not "
                             f"match orientation {orient} with tile {tile_shape} "
                             f"(expected {(r, c)})")
        if s_i > 0 and n_in != plans[-1].n_out:
            raise ValueError(f"stage {name!r}: n_in {n_in} != previous n_out {plans[-1].n_out}")
        P, Q = -(-n_out // r), -(-n_in // c)
        tmask = st.get("tile_mask")
        tmask = np.ones((P, Q), bool) if tmask is None else np.asarray(tmask, bool)
        if tmask.shape != (P, Q):
            raise ValueError(f"stage {name!r}: tile_mask shape {tmask.shape} != grid {(P, Q)}")
        Wp = np.zeros((P * r, Q * c))
        Wp[:n_out, :n_in] = W
        blocks = Wp.reshape(P, r, Q, c).transpose(0, 2, 1, 3)      # (P, Q, r, c)
        dead_nz = np.abs(blocks[~tmask]).max(initial=0.0)
        if dead_nz != 0.0:
            raise ValueError(f"stage {name!r}: tiles with tile_mask False must be all-zero "
                             f"(max |w| = {dead_nz:g})")
        abc = _parse_activation(st.get("activation"), name)
        last = s_i == n_stages - 1
        live_in = list(range(Q)) if s_i == 0 else list(live_prev)
        # constant folding of constant input chunks into the bias
        xc = np.zeros(Q * c)
        for q, v in const_in.items():
            xc[q * c:(q + 1) * c] = v
        beff = np.zeros(P * r)
        beff[:n_out] = beta
        beff = beff + Wp @ xc
        # fold the activation's leading coefficient
        sign, lin, cst, fac = 0, 0.0, 0.0, 1.0
        if abc is not None:
            a, bb, cc = abc
            if a == 0.0:
                fac, cst = bb, cc
            else:
                fac = np.sqrt(abs(a))
                sign = 1 if a > 0 else -1
                lin, cst = bb / fac, cc
        masked = orient == "WT" and not last and t1 > 1
        rows, const_out = [], {}
        live_set = set(live_in)
        # a tile whose weights all encode to 0 (|w| * prime < 1/2) would make SEAL's
        # product "transparent" (exactly zero): skip it like a pruned tile
        tile_max = np.abs(blocks).max(axis=(2, 3)) * abs(fac)
        for p in range(P):
            qs = [q for q in range(Q)
                  if tmask[p, q] and q in live_set and tile_max[p, q] > zero_tol]
            if not qs:
                const_out[p] = _act_plain(beff[p * r:(p + 1) * r], abc)
                continue
            terms = []
            for q in qs:
                blk = blocks[p, q] * fac                            # (r, c) (out, in)
                # W: slot(j,i) = W[p t1 + i, q t2 + j] = blk[i, j] -> fill[j, i] = blk.T
                # WT: slot(j,i) = W[p t2 + j, q t1 + i] = blk[j, i] -> fill = blk
                fill = blk.T if orient == "W" else blk
                key = f"{s_i}:w:{p}:{q}"
                pts[key] = (vec(fill), "mul")
                terms.append((q, key))
            bvals = beff[p * r:(p + 1) * r] * fac + (cst if abc is not None and abc[0] == 0.0 else 0.0)
            if orient == "W":
                bfill = np.tile(bvals[None, :], (t2, 1))               # indexed along i
            else:
                bfill = np.zeros((t2, t1))
                bfill[:, 0] = bvals                                    # valid at i = 0
            bias_key = None
            if np.any(bvals != 0.0):
                bias_key = f"{s_i}:b:{p}"
                pts[bias_key] = (vec(bfill), "add")
            m_valid = np.zeros((t2, t1))
            m_valid[:, 0] = 1.0
            mask_key = None
            if masked:
                mask_key = f"{s_i}:m:{p}"
                pts[mask_key] = (vec(m_valid), "mul")
            lin_key = const_key = None
            if sign != 0 and lin != 0.0:
                lin_key = f"{s_i}:l:{p}"
                pts[lin_key] = (vec(np.full((t2, t1), lin)), "coef")
            if sign != 0 and cst != 0.0:
                const_key = f"{s_i}:c:{p}"
                cfill = m_valid * cst if masked else np.full((t2, t1), cst)
                pts[const_key] = (vec(cfill), "add")
            rows.append(RowPlan(p, terms, bias_key, mask_key, lin_key, const_key))
        if orient == "W":
            red = [t1 * b * (1 << k) for k in range(int(np.log2(t2)))]
            rep = []
        else:
            red = [b * (1 << k) for k in range(int(np.log2(t1)))]
            rep = [-(b * (1 << k)) for k in range(int(np.log2(t1)))] if masked else []
        if not rows:
            red, rep = [], []
        plans.append(StagePlan(name, orient, n_in, n_out, (P, Q), tmask, live_in, rows,
                               const_out, red, rep, sign, masked, c, r,
                               encrypted=bool(encrypt_weights)))
        const_in = const_out
        live_prev = [row.p for row in rows]
    return CompiledPlan(params=None, tile_shape=(t1, t2), batch=b,
                        n_features=plans[0].n_in, n_outputs=plans[-1].n_out,
                        stages=plans, plaintexts=pts, encrypted_weights=bool(encrypt_weights),
                        scalar_plaintexts=scalar)


# ------------------------------------------------------------------ op sequence
def _run_stage(st: StagePlan, chunks: dict, be) -> dict:
    """Run one stage on live input chunks (dict q -> ct) with backend ``be``."""
    outs = {}
    for row in st.rows:
        acc = None
        for q, key in row.terms:
            if st.encrypted:
                t = be.mul_cipher(chunks[q], key)
            else:
                t = be.mul_plain(chunks[q], key)
            acc = t if acc is None else be.add(acc, t)
        acc = be.rescale(acc)
        if st.encrypted:          # one relinearisation per row, after the rescale
            acc = be.relinearize(acc)
        for step in st.reduce_steps:
            acc = be.add(acc, be.rotate(acc, step))
        if row.bias_key is not None:
            if st.encrypted:
                acc = be.add_cipher(acc, row.bias_key)
            else:
                acc = be.add_plain(acc, row.bias_key)
        if row.mask_key is not None:
            acc = be.rescale(be.mul_plain(acc, row.mask_key))
        if st.act_sign != 0:
            sq = be.square(acc)
            if st.act_sign < 0:
                sq = be.negate(sq)
            if row.lin_key is not None:
                sq = be.add(sq, be.mul_plain(acc, row.lin_key))
            # relinearise before the rescale: after it, the key-switching noise
            # is relative to s instead of s^2 (measured 2e-3 vs 4e-4 at 2^28)
            acc = be.rescale(be.relinearize(sq))
            if row.const_key is not None:
                acc = be.add_plain(acc, row.const_key)
        for step in st.replicate_steps:
            acc = be.add(acc, be.rotate(acc, step))
        outs[row.p] = acc
    return outs


class _Counter:
    """Per-stage op counters keyed by (op, level)."""

    def __init__(self):
        self.stage = 0
        self.counts: List[dict] = []

    def begin(self, stage_idx):
        self.stage = stage_idx
        while len(self.counts) <= stage_idx:
            self.counts.append({})

    def tick(self, op, level):
        d = self.counts[self.stage]
        d[(op, level)] = d.get((op, level), 0) + 1

    def totals(self):
        out = []
        for d in self.counts:
            t = {op: 0 for op in OPS}
            for (op, _), n in d.items():
                t[op] += n
            out.append(t)
        return out


class _SymbolicBackend(_Counter):
    """Tracks (level, scale, size) exactly as SEAL does; records plaintext specs."""

    def __init__(self, primes, pts, scale, scalar=False):
        super().__init__()
        self.scalar = bool(scalar)
        self.primes = primes            # data primes q0..qL
        self.L = len(primes) - 1
        self.pts = pts
        self.spec = {}
        self.fresh = (0, float(scale), 2)
        self.max_level = 0

    def _drop_prime(self, lvl):
        if lvl >= self.L:
            raise ValueError("out of levels: the network needs more depth than the "
                             "coefficient modulus provides")
        return float(self.primes[self.L - lvl])

    def _need(self, key, spec):
        old = self.spec.get(key)
        if old is not None and old != spec:
            raise RuntimeError(f"plaintext {key} needed at two levels/scales")
        self.spec[key] = spec

    def mul_plain(self, ct, key):
        lvl, sc, size = ct
        role = self.pts[key][1]
        ps = self._drop_prime(lvl) if role == "mul" else sc
        self._need(key, (lvl, ps))
        if self.scalar:
            self.tick("encode_scalar", lvl)
        self.tick("mul_plain", lvl)
        return (lvl, sc * ps, size)

    def mul_cipher(self, ct, key):
        lvl, sc, size = ct
        ps = self._drop_prime(lvl)
        self._need(key, (lvl, ps))
        self.tick("mul_ct", lvl)
        return (lvl, sc * ps, 3)

    def add_cipher(self, ct, key):
        self._need(key, (ct[0], ct[1]))
        self.tick("add", ct[0])
        return ct

    def add(self, a, b):
        if a[0] != b[0] or not np.isclose(a[1], b[1], rtol=1e-12, atol=0):
            raise RuntimeError(f"add of mismatched ciphertexts {a} {b}")
        self.tick("add", a[0])
        return (a[0], a[1], max(a[2], b[2]))

    def add_plain(self, ct, key):
        self._need(key, (ct[0], ct[1]))
        if self.scalar:
            self.tick("encode_scalar", ct[0])
        self.tick("add_plain", ct[0])
        return ct

    def rotate(self, ct, step):
        assert ct[2] == 2
        self.tick("rotate", ct[0])
        return ct

    def rescale(self, ct):
        lvl, sc, size = ct
        q = self._drop_prime(lvl)
        self.tick("rescale", lvl)
        self.max_level = max(self.max_level, lvl + 1)
        return (lvl + 1, sc / q, size)

    def square(self, ct):
        self.tick("mul_ct", ct[0])
        return (ct[0], ct[1] * ct[1], 3)

    def negate(self, ct):
        self.tick("negate", ct[0])
        return ct

    def relinearize(self, ct):
        self.tick("relinearize", ct[0])
        return (ct[0], ct[1], 2)


def _primes_for(params: CKKSParams) -> List[int]:
    if sealapi is not None:
        mods = sealapi.CoeffModulus.Create(params.poly_modulus_degree,
                                           list(params.coeff_mod_bit_sizes))
        return [m.value() for m in mods][:-1]
    return [float(2 ** b) for b in params.coeff_mod_bit_sizes[:-1]]  # pragma: no cover


def compile_stages(stages, tile_shape, params="auto", *, encrypt_weights=False,
                   materialize=True) -> CompiledPlan:
    """Compile a list of linear stages into a packed CKKS plan (no keys).

    Parameters
    ----------
    stages : list of dict
        ``name, matrix (n_out, n_in), bias (n_out,), orientation ("W"/"WT"),
        block_shape, tile_mask, activation (None | ("square",) | ("poly",a,b,c))``.
    tile_shape : (int, int)
        ``(t1, t2)``, powers of two.
    params : CKKSParams or "auto"
        Explicit parameters are validated (128-bit bound, depth, slots).
    encrypt_weights : bool, default=False
        Weights and biases become ciphertexts under the client's key: products
        are ciphertext x ciphertext (one relinearisation per output tile-row).
    materialize : bool, default=True
        Build the slot vectors of the plaintexts.  ``False`` gives a plan that
        only counts (levels, op counts, memory): fast, for cost estimates.

    Returns
    -------
    CompiledPlan
    """
    depth = required_depth(stages, tile_shape)
    t1, t2 = tile_shape
    if isinstance(params, str):
        if params != "auto":
            raise ValueError("params must be a CKKSParams or 'auto'")
        params = choose_params(depth, t1 * t2)
    else:
        validate_params(params, depth=depth, min_slots=t1 * t2)
    primes = _primes_for(params)
    plan = _build(stages, tile_shape, params.n_slots, materialize=materialize,
                  encrypt_weights=encrypt_weights,
                  zero_tol=0.5 / float(min(primes[1:] or primes)))
    plan.params = params
    plan.primes = primes
    sym = _SymbolicBackend(plan.primes, plan.plaintexts, params.scale,
                           scalar=plan.scalar_plaintexts)
    chunks = {q: sym.fresh for q in plan.stages[0].live_in}
    for s_i, st in enumerate(plan.stages):
        sym.begin(s_i)
        chunks = _run_stage(st, chunks, sym)
    plan.depth = sym.max_level
    plan.pt_spec = sym.spec
    plan.level_ops = sym.counts
    steps = []
    for st in plan.stages:
        if st.rows:
            steps += st.reduce_steps + st.replicate_steps
    plan.rotation_steps = sorted(set(steps))
    N = params.poly_modulus_degree
    L = len(plan.primes)
    totals = sym.totals()
    plan.op_counts = []
    for s_i, st in enumerate(plan.stages):
        enc = set(plan.encrypted_keys())
        all_keys = [k for k in plan.pt_spec if k.startswith(f"{s_i}:")]
        keys = [k for k in all_keys if k not in enc]
        ckeys = [k for k in all_keys if k in enc]
        levels = [k[1] for k in sym.counts[s_i] if k[0] == "rescale"]
        d = dict(stage=st.name, orientation=st.orientation,
                 n_tiles=int(st.tile_mask.size), n_nonzero_tiles=int(st.tile_mask.sum()),
                 n_packed_tiles=int(sum(len(r.terms) for r in st.rows)),
                 n_skipped_tiles=int(st.tile_mask.size - sum(len(r.terms) for r in st.rows)),
                 n_live_rows=len(st.rows), n_const_rows=len(st.const_out),
                 levels_used=(len(set(levels))),
                 plaintext_bytes=int(8 * len(keys) if plan.scalar_plaintexts else
                                     sum((L - plan.pt_spec[k][0]) * N * 8 for k in keys)),
                 n_plaintexts=len(keys),
                 weight_ciphertext_bytes=int(sum(2 * (L - plan.pt_spec[k][0]) * N * 8
                                                 for k in ckeys)),
                 n_weight_ciphertexts=len(ckeys))
        d.update(totals[s_i])
        plan.op_counts.append(d)
    return plan


def count_ops(stages, tile_shape, params="auto", *, encrypt_weights=False) -> List[dict]:
    """Per-stage op counts of the packed network, computed without keys.

    Returns
    -------
    list of dict
        Per stage: ``n_tiles, n_nonzero_tiles, n_packed_tiles, n_skipped_tiles,
        mul_plain (ct*pt), mul_ct (ct*ct), rotate, rescale, relinearize, add,
        add_plain, negate, levels_used, plaintext_bytes`` -- per batch of
        ``plan.batch`` samples.
    """
    return compile_stages(stages, tile_shape, params, encrypt_weights=encrypt_weights,
                          materialize=False).op_counts


# ----------------------------------------------------------------- plaintext sim
def _encode_input(plan: CompiledPlan, X: np.ndarray) -> List[Dict[int, np.ndarray]]:
    """Slot vectors of the client's input, per batch of ``plan.batch`` samples."""
    t1, t2 = plan.tile_shape
    b = plan.batch
    st0 = plan.stages[0]
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != plan.n_features:
        raise ValueError(f"X must have shape (n_samples, {plan.n_features}), got {X.shape}")
    c = st0.in_chunk
    Q = st0.grid[1]
    Xp = np.zeros((X.shape[0], Q * c))
    Xp[:, :X.shape[1]] = X
    batches = []
    for start in range(0, X.shape[0], b):
        xb = np.zeros((b, Q * c))
        xb[:min(b, X.shape[0] - start)] = Xp[start:start + b]
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


def _decode_output(plan: CompiledPlan, outs: Dict[int, np.ndarray], n: int) -> np.ndarray:
    """Output (n, n_out) from decoded slot vectors of the final chunks."""
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


class _NumpyBackend:
    def __init__(self, pts):
        self.pts = pts

    def begin(self, s_i):
        pass

    def mul_plain(self, ct, key):
        return ct * self.pts[key][0]

    mul_cipher = mul_plain

    def add(self, a, b):
        return a + b

    def add_plain(self, ct, key):
        return ct + self.pts[key][0]

    add_cipher = add_plain

    def rotate(self, ct, step):
        return np.roll(ct, -step)

    def rescale(self, ct):
        return ct

    def square(self, ct):
        return ct * ct

    def negate(self, ct):
        return -ct

    def relinearize(self, ct):
        return ct


class PlainSimulator:
    """Run the packed op sequence on NumPy slot vectors (no encryption).

    Same packing, same ops, same order as the encrypted engine; rotations are
    ``np.roll``.  Use it to check layouts fast: it matches the matrix math up to
    float64 rounding.

    Parameters
    ----------
    plan : CompiledPlan
    """

    def __init__(self, plan: CompiledPlan):
        self.plan = plan
        self._be = _NumpyBackend(plan.plaintexts)

    def predict(self, X) -> np.ndarray:
        """Raw outputs (n_samples, n_out)."""
        X = np.asarray(X, dtype=np.float64)
        b = self.plan.batch
        out = []
        for bi, chunks in enumerate(_encode_input(self.plan, X)):
            for s_i, st in enumerate(self.plan.stages):
                chunks = _run_stage(st, chunks, self._be)
            n = min(b, X.shape[0] - bi * b)
            out.append(_decode_output(self.plan, chunks, n))
        return np.vstack(out) if out else np.zeros((0, self.plan.n_outputs))


def reference_forward(stages, X) -> np.ndarray:
    """Plain float64 forward pass of the stage list (for tests)."""
    h = np.asarray(X, dtype=np.float64)
    for s_i, st in enumerate(stages):
        h = h @ np.asarray(st["matrix"], dtype=np.float64).T + np.asarray(st["bias"])
        h = _act_plain(h, _parse_activation(st.get("activation"), s_i))
    return h


# ------------------------------------------------------------- safe byte format
#: Magic prefix of every skhepex byte string (server model, batches, results).
_MAGIC = b"SKHEPEX\x01"


def _pack(kind: str, header: dict, arrays: dict) -> bytes:
    """Serialise a JSON header and NumPy arrays to bytes (no pickle).

    The container is ``_MAGIC`` + an ``.npz`` archive holding the UTF-8 JSON
    header and plain numeric arrays; raw byte strings (SEAL / TenSEAL objects)
    are stored as ``uint8`` arrays.  Loading uses ``allow_pickle=False``, so
    untrusted bytes can never execute code.
    """
    buf = io.BytesIO()
    hdr = json.dumps(dict(header, kind=kind)).encode("utf-8")
    payload = {"header": np.frombuffer(hdr, dtype=np.uint8)}
    for i, (name, arr) in enumerate(arrays.items()):
        if isinstance(arr, (bytes, bytearray)):
            arr = np.frombuffer(bytes(arr), dtype=np.uint8)
        arr = np.asarray(arr)
        if arr.dtype == object:
            raise TypeError(f"array {name!r} has dtype object")
        payload[f"a{i}"] = arr
    payload["names"] = np.frombuffer(json.dumps(list(arrays)).encode("utf-8"), dtype=np.uint8)
    np.savez(buf, **payload)
    return _MAGIC + buf.getvalue()


def _unpack(data: bytes, kind: str):
    """Inverse of :func:`_pack`; returns ``(header, arrays)``."""
    data = bytes(data)
    if not data.startswith(_MAGIC):
        raise ValueError("not skhepex bytes (bad magic prefix)")
    with np.load(io.BytesIO(data[len(_MAGIC):]), allow_pickle=False) as z:
        header = json.loads(bytes(z["header"]).decode("utf-8"))
        names = json.loads(bytes(z["names"]).decode("utf-8"))
        arrays = {name: z[f"a{i}"] for i, name in enumerate(names)}
    if header.get("kind") != kind:
        raise ValueError(f"bytes hold a {header.get('kind')!r}, expected {kind!r}")
    return header, arrays


def _plan_to_payload(plan: CompiledPlan, drop_keys=(), drop_constants=False):
    """JSON header + arrays of a plan; plaintexts stored compactly (one tile)."""
    drop = set(drop_keys)
    arrays = {}
    keys = [k for k in plan.plaintexts if k not in drop]
    if plan.scalar_plaintexts:       # one value per plaintext: a single array
        arrays["pt_scalars"] = np.array([plan.plaintexts[k][0][0] for k in keys],
                                        dtype=np.float64)
    else:
        for i, k in enumerate(keys):
            v = plan.plaintexts[k][0]
            arrays[f"pt{i}"] = np.asarray(v).reshape(-1, plan.batch)[:, 0]
    stages = []
    for s_i, st in enumerate(plan.stages):
        arrays[f"tm{s_i}"] = np.asarray(st.tile_mask, dtype=bool)
        const = {} if drop_constants else st.const_out
        for p, v in const.items():
            arrays[f"co{s_i}_{p}"] = np.asarray(v, dtype=np.float64)
        stages.append(dict(
            name=st.name, orientation=st.orientation, n_in=int(st.n_in), n_out=int(st.n_out),
            grid=[int(v) for v in st.grid], live_in=[int(v) for v in st.live_in],
            rows=[[int(r.p), [[int(q), k] for q, k in r.terms], r.bias_key, r.mask_key,
                   r.lin_key, r.const_key] for r in st.rows],
            const_out=[int(p) for p in const], reduce_steps=[int(v) for v in st.reduce_steps],
            replicate_steps=[int(v) for v in st.replicate_steps], act_sign=int(st.act_sign),
            masked=bool(st.masked), in_chunk=int(st.in_chunk), out_chunk=int(st.out_chunk),
            encrypted=bool(st.encrypted)))
    header = dict(
        params=plan.params.to_dict(), tile_shape=[int(v) for v in plan.tile_shape],
        batch=int(plan.batch), n_features=int(plan.n_features), n_outputs=int(plan.n_outputs),
        stages=stages, pt_keys=keys, pt_roles=[plan.plaintexts[k][1] for k in keys],
        pt_spec={k: [int(lvl), float(sc)] for k, (lvl, sc) in plan.pt_spec.items()},
        rotation_steps=[int(v) for v in plan.rotation_steps], depth=int(plan.depth),
        op_counts=plan.op_counts, primes=[int(v) for v in plan.primes],
        level_ops=[[[op, int(lvl), int(n)] for (op, lvl), n in d.items()]
                   for d in plan.level_ops],
        encrypted_weights=bool(plan.encrypted_weights),
        scalar_plaintexts=bool(plan.scalar_plaintexts))
    return header, arrays


def _plan_from_payload(h: dict, arrays: dict) -> CompiledPlan:
    b = int(h["batch"])
    stages = []
    for s_i, d in enumerate(h["stages"]):
        rows = [RowPlan(int(p), [(int(q), str(k)) for q, k in terms], bk, mk, lk, ck)
                for p, terms, bk, mk, lk, ck in d["rows"]]
        const = {int(p): arrays[f"co{s_i}_{p}"] for p in d["const_out"]}
        stages.append(StagePlan(
            str(d["name"]), str(d["orientation"]), int(d["n_in"]), int(d["n_out"]),
            tuple(d["grid"]), arrays[f"tm{s_i}"].astype(bool), list(d["live_in"]), rows, const,
            list(d["reduce_steps"]), list(d["replicate_steps"]), int(d["act_sign"]),
            bool(d["masked"]), int(d["in_chunk"]), int(d["out_chunk"]),
            encrypted=bool(d["encrypted"])))
    scalar = bool(h.get("scalar_plaintexts", False))
    if scalar:
        vals = arrays["pt_scalars"].astype(np.float64) if h["pt_keys"] else np.zeros(0)
        pts = {k: (vals[i:i + 1].copy(), str(role))
               for i, (k, role) in enumerate(zip(h["pt_keys"], h["pt_roles"]))}
    else:
        pts = {k: (np.repeat(arrays[f"pt{i}"].astype(np.float64), b), str(role))
               for i, (k, role) in enumerate(zip(h["pt_keys"], h["pt_roles"]))}
    plan = CompiledPlan(
        params=CKKSParams.from_dict(h["params"]), tile_shape=tuple(h["tile_shape"]), batch=b,
        n_features=int(h["n_features"]), n_outputs=int(h["n_outputs"]), stages=stages,
        plaintexts=pts,
        pt_spec={k: (int(v[0]), float(v[1])) for k, v in h["pt_spec"].items()},
        rotation_steps=list(h["rotation_steps"]), depth=int(h["depth"]),
        op_counts=list(h["op_counts"]), primes=[int(v) for v in h["primes"]],
        level_ops=[{(str(op), int(lvl)): int(n) for op, lvl, n in d} for d in h["level_ops"]],
        encrypted_weights=bool(h["encrypted_weights"]), scalar_plaintexts=scalar)
    return plan


# ------------------------------------------------------------------ SEAL objects
def _save_seal(obj) -> bytes:
    fd, path = tempfile.mkstemp(prefix="skhepex_")
    os.close(fd)
    try:
        obj.save(path)
        with open(path, "rb") as f:
            return f.read()
    finally:
        os.unlink(path)


def _load_seal(obj, seal_ctx, data: bytes):
    fd, path = tempfile.mkstemp(prefix="skhepex_")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(bytes(data))
        obj.load(seal_ctx, path)
    finally:
        os.unlink(path)
    return obj


def _chain(seal_ctx):
    """parms_id per level (0 = fresh / first data level)."""
    ids = []
    cd = seal_ctx.first_context_data()
    while cd is not None:
        ids.append(cd.parms_id())
        cd = cd.next_context_data()
    return ids


def _make_context(params: CKKSParams):
    ctx = ts.context(ts.SCHEME_TYPE.CKKS, params.poly_modulus_degree,
                     coeff_mod_bit_sizes=list(params.coeff_mod_bit_sizes))
    ctx.global_scale = params.scale
    return ctx


@dataclass
class EncryptedBatch:
    """Encrypted input: per batch of ``plan.batch`` samples, ciphertexts per chunk.

    Attributes
    ----------
    batches : list of dict
        chunk index -> SEAL ciphertext.
    n_samples : int
    tag : str
        Which server model produced it (results) -- e.g. ``"predict"`` or
        ``"transform"``; empty for inputs.
    """

    batches: List[Dict[int, object]]
    n_samples: int
    tag: str = ""

    _kind = "EncryptedBatch"

    def serialize(self) -> bytes:
        """Bytes of all ciphertexts (SEAL's compressed format) in a pickle-free container."""
        arrays, index = {}, []
        for bi, d in enumerate(self.batches):
            index.append([int(q) for q in d])
            for q, ct in d.items():
                arrays[f"{bi}_{q}"] = _save_seal(ct)
        return _pack(self._kind, dict(n_samples=int(self.n_samples), tag=self.tag,
                                      index=index), arrays)

    @classmethod
    def load(cls, data: bytes, context) -> "EncryptedBatch":
        """Load with a TenSEAL context (public or private) of the same params.

        Parameters
        ----------
        data : bytes
            Output of :meth:`serialize`.
        context : tenseal.Context
            E.g. ``server.context`` (server side) or the client's context.
        """
        h, arrays = _unpack(data, cls._kind)
        sd = context.seal_context().data
        batches = [{int(q): _load_seal(sealapi.Ciphertext(), sd, arrays[f"{bi}_{q}"].tobytes())
                    for q in qs} for bi, qs in enumerate(h["index"])]
        return cls(batches, int(h["n_samples"]), str(h.get("tag", "")))


class EncryptedResult(EncryptedBatch):
    """Encrypted output of :meth:`ServerModel.evaluate` (same structure)."""

    _kind = "EncryptedResult"


class _SealBackend(_Counter):
    def __init__(self, sd, evaluator, pts, galois, relin, L, wcts=None):
        super().__init__()
        self.sd, self.ev, self.pts, self.gk, self.rk, self.L = sd, evaluator, pts, galois, relin, L
        self.wcts = wcts or {}
        self.encoder = sealapi.CKKSEncoder(sd)
        self._scratch = sealapi.Plaintext()

    def _lvl(self, ct):
        return self.L - ct.coeff_modulus_size()

    def _new(self):
        return sealapi.Ciphertext(self.sd)

    def _pt(self, key, lvl):
        pt = self.pts[key]
        if isinstance(pt, _ScalarPlain):      # 1x1 tiles: encode the value now
            self.encoder.encode(pt.value, pt.parms_id, pt.scale, self._scratch)
            self.tick("encode_scalar", lvl)
            return self._scratch
        return pt

    def mul_plain(self, ct, key):
        out = self._new()
        lvl = self._lvl(ct)
        self.ev.multiply_plain(ct, self._pt(key, lvl), out)
        self.tick("mul_plain", lvl)
        return out

    def mul_cipher(self, ct, key):
        out = self._new()
        self.ev.multiply(ct, self.wcts[key], out)
        self.tick("mul_ct", self._lvl(ct))
        return out

    def add(self, a, b):
        self.ev.add_inplace(a, b)
        self.tick("add", self._lvl(a))
        return a

    def add_plain(self, ct, key):
        lvl = self._lvl(ct)
        self.ev.add_plain_inplace(ct, self._pt(key, lvl))
        self.tick("add_plain", lvl)
        return ct

    def add_cipher(self, ct, key):
        self.ev.add_inplace(ct, self.wcts[key])
        self.tick("add", self._lvl(ct))
        return ct

    def rotate(self, ct, step):
        out = self._new()
        self.ev.rotate_vector(ct, step, self.gk, out)
        self.tick("rotate", self._lvl(ct))
        return out

    def rescale(self, ct):
        lvl = self._lvl(ct)
        self.ev.rescale_to_next_inplace(ct)
        self.tick("rescale", lvl)
        return ct

    def square(self, ct):
        out = self._new()
        self.ev.square(ct, out)
        self.tick("mul_ct", self._lvl(ct))
        return out

    def negate(self, ct):
        self.ev.negate_inplace(ct)
        self.tick("negate", self._lvl(ct))
        return ct

    def relinearize(self, ct):
        self.ev.relinearize_inplace(ct, self.rk)
        self.tick("relinearize", self._lvl(ct))
        return ct


@dataclass
class _ScalarPlain:
    """A plaintext that is one value in every slot, encoded when used."""

    value: float
    parms_id: object
    scale: float


def _encode_vec(encoder, vec, parms_id, scale, pt):
    """Encode a slot vector, or a length-1 vector as that value in every slot."""
    vec = np.asarray(vec, dtype=np.float64).reshape(-1)
    if vec.shape[0] == 1:
        encoder.encode(float(vec[0]), parms_id, scale, pt)
    else:
        encoder.encode(vec.tolist(), parms_id, scale, pt)
    return pt


def _encode_plaintexts(plan: CompiledPlan, seal_ctx, skip=()) -> dict:
    enc = sealapi.CKKSEncoder(seal_ctx)
    ids = _chain(seal_ctx)
    skip = set(skip)
    out = {}
    for key, (lvl, scale) in plan.pt_spec.items():
        if key in skip:
            continue
        if plan.scalar_plaintexts:
            out[key] = _ScalarPlain(float(plan.plaintexts[key][0][0]), ids[lvl], float(scale))
            continue
        pt = sealapi.Plaintext()
        enc.encode(plan.plaintexts[key][0].tolist(), ids[lvl], scale, pt)
        out[key] = pt
    return out


def _galois_elts(seal_ctx, steps):
    gt = seal_ctx.key_context_data().galois_tool()
    return [gt.get_elt_from_step(int(s)) for s in steps]


def _check_plan_context(plan: CompiledPlan, seal_ctx):
    got = [m.value() for m in seal_ctx.first_context_data().parms().coeff_modulus()]
    if list(got) != list(plan.primes):
        raise ValueError("the context's primes differ from the compiled plan's")


class ServerModel:
    """Server side: public context, Galois/relin keys and the packed model.

    Holds no secret key.  Build with :meth:`Client.server_model` or
    :meth:`ServerModel.load`.

    Parameters
    ----------
    plan : CompiledPlan
        With ``encrypt_weights``, a plan without the weight/bias vectors.
    public_context : tenseal.Context
        Context without secret key (raises otherwise).
    galois_keys : seal GaloisKeys
    weight_ciphertexts : dict, optional
        key -> SEAL ciphertext of each weight tile / bias (``encrypt_weights``).
    name : str, default=""
        Tag copied to every :class:`EncryptedResult`.

    Attributes
    ----------
    plan : CompiledPlan
    context : tenseal.Context (public)
    timings_ : list of dict
        Per stage, seconds spent in the last :meth:`evaluate` (all batches).
    op_counts_ : list of dict
        Ops actually executed by the last :meth:`evaluate` (per batch).
    """

    _kind = "ServerModel"

    def __init__(self, plan: CompiledPlan, public_context, galois_keys,
                 weight_ciphertexts=None, name=""):
        if public_context.has_secret_key():
            raise ValueError("ServerModel must get a public context (no secret key)")
        self.plan = plan
        self.name = str(name)
        self.context = public_context
        self._sd = public_context.seal_context().data
        _check_plan_context(plan, self._sd)
        self.galois_keys = galois_keys
        self._evaluator = sealapi.Evaluator(self._sd)
        enc_keys = plan.encrypted_keys()
        self.weight_ciphertexts = dict(weight_ciphertexts or {})
        missing = set(enc_keys) - set(self.weight_ciphertexts)
        if missing:
            raise ValueError(f"{len(missing)} weight ciphertexts missing for an "
                             f"encrypt_weights plan")
        self._pts = _encode_plaintexts(plan, self._sd, skip=enc_keys)
        self.timings_ = []
        self.op_counts_ = []
        self.level_ops_ = []

    def evaluate(self, enc: EncryptedBatch) -> EncryptedResult:
        """Evaluate the network on an encrypted batch.

        Parameters
        ----------
        enc : EncryptedBatch

        Returns
        -------
        EncryptedResult
        """
        be = _SealBackend(self._sd, self._evaluator, self._pts, self.galois_keys,
                          self.context.relin_keys().data if self.context.has_relin_keys() else None,
                          len(self.plan.primes), self.weight_ciphertexts)
        times = np.zeros(len(self.plan.stages))
        outs = []
        for chunks in enc.batches:
            # copy the dict: stages return new dicts; inputs are not modified in
            # place by the first stage (multiply_plain writes to a new ciphertext)
            chunks = dict(chunks)
            for s_i, st in enumerate(self.plan.stages):
                be.begin(s_i)
                t0 = time.perf_counter()
                chunks = _run_stage(st, chunks, be)
                times[s_i] += time.perf_counter() - t0
            outs.append(chunks)
        nb = max(len(enc.batches), 1)
        self.timings_ = [dict(stage=st.name, seconds=float(times[i]),
                              seconds_per_batch=float(times[i] / nb))
                         for i, st in enumerate(self.plan.stages)]
        self.op_counts_ = [{k: v // nb for k, v in t.items()} for t in be.totals()]
        self.level_ops_ = [{k: v // nb for k, v in d.items()} for d in be.counts]
        return EncryptedResult(outs, enc.n_samples, self.name)

    def load_batch(self, data: bytes) -> EncryptedBatch:
        """Load an :class:`EncryptedBatch` from bytes with this server's context."""
        return EncryptedBatch.load(data, self.context)

    def memory_report(self) -> dict:
        """Bytes of packed plaintexts/ciphertexts, Galois keys, relin keys, one input batch.

        Sizes are the in-memory sizes of the SEAL objects (uint64 coefficients):
        plaintext = primes(level) * N * 8; ciphertext twice that; key-switching
        key = (#data primes) x 2 x (#primes incl. special) x N x 8.
        """
        return memory_estimate(self.plan)

    def serialize(self) -> bytes:
        """Public context + Galois keys + plan (+ weight ciphertexts); no pickle.

        Plaintexts are re-encoded on load (one tile of each is stored).
        """
        enc_keys = self.plan.encrypted_keys()
        header, arrays = _plan_to_payload(self.plan, drop_keys=enc_keys,
                                          drop_constants=self.plan.encrypted_weights)
        arrays["context"] = self.context.serialize(save_public_key=True, save_secret_key=False,
                                                   save_galois_keys=False,
                                                   save_relin_keys=True)
        # no rotations (e.g. 1x1 tiles): no Galois keys (SEAL cannot load an empty set)
        arrays["galois"] = (_save_seal(self.galois_keys) if self.plan.rotation_steps
                            else np.zeros(0, np.uint8))
        for i, k in enumerate(enc_keys):
            arrays[f"wct{i}"] = _save_seal(self.weight_ciphertexts[k])
        header = dict(plan=header, name=self.name, wct_keys=list(enc_keys))
        return _pack(self._kind, header, arrays)

    @classmethod
    def load(cls, data: bytes) -> "ServerModel":
        """Rebuild from :meth:`serialize` bytes (re-encodes the plaintexts).

        Refuses a context that carries a secret key.
        """
        h, arrays = _unpack(data, cls._kind)
        plan = _plan_from_payload(h["plan"], arrays)
        ctx = ts.context_from(arrays["context"].tobytes())
        sd = ctx.seal_context().data
        gk = (_load_seal(sealapi.GaloisKeys(), sd, arrays["galois"].tobytes())
              if arrays["galois"].size else sealapi.GaloisKeys())
        wcts = {k: _load_seal(sealapi.Ciphertext(), sd, arrays[f"wct{i}"].tobytes())
                for i, k in enumerate(h["wct_keys"])}
        return cls(plan, ctx, gk, wcts, h.get("name", ""))


def memory_estimate(plan: CompiledPlan) -> dict:
    """Memory of the packed model, keys and one input batch, from the plan alone.

    Parameters
    ----------
    plan : CompiledPlan

    Returns
    -------
    dict
        ``plaintext_bytes, n_plaintexts, weight_ciphertext_bytes,
        n_weight_ciphertexts, packed_model_bytes, galois_key_bytes,
        n_galois_keys, relin_key_bytes, input_batch_bytes, n_input_ciphertexts``.
    """
    N = plan.params.poly_modulus_degree
    Ld = len(plan.primes)
    ksk = Ld * 2 * (Ld + 1) * N * 8
    n_in = len(plan.stages[0].live_in)
    enc = set(plan.encrypted_keys())
    pt_b = plan.plaintext_bytes()
    ct_b = plan.weight_bytes() - pt_b
    return dict(plaintext_bytes=int(pt_b), n_plaintexts=len(plan.pt_spec) - len(enc),
                weight_ciphertext_bytes=int(ct_b), n_weight_ciphertexts=len(enc),
                packed_model_bytes=int(pt_b + ct_b),
                galois_key_bytes=len(plan.rotation_steps) * ksk,
                n_galois_keys=len(plan.rotation_steps),
                relin_key_bytes=ksk,
                input_batch_bytes=n_in * 2 * Ld * N * 8,
                n_input_ciphertexts=n_in)


class Client:
    """Key owner: encrypts inputs, decrypts outputs, builds the server model.

    Parameters
    ----------
    plan : CompiledPlan
        The main plan; its parameters define the context.
    extra_plans : list of CompiledPlan, optional
        Further plans with the same parameters and tile shape (e.g. the
        encoder of an autoencoder) that share the keys; Galois keys cover the
        union of their rotation steps.

    Attributes
    ----------
    context : tenseal.Context
        Private context (secret key, public key, relin keys).
    galois_keys : seal GaloisKeys
        Keys for exactly the plans' rotation steps.
    """

    def __init__(self, plan: CompiledPlan, extra_plans=()):
        if ts is None:  # pragma: no cover
            raise ImportError("tenseal is required for encrypted inference")
        self.plan = plan
        self.context = _make_context(plan.params)
        self._sd = self.context.seal_context().data
        steps = set(plan.rotation_steps)
        for p in extra_plans:
            if p.params != plan.params or tuple(p.tile_shape) != tuple(plan.tile_shape):
                raise ValueError("extra plans must share the params and tile shape")
            steps |= set(p.rotation_steps)
        for p in (plan, *extra_plans):
            _check_plan_context(p, self._sd)
        self.rotation_steps = sorted(steps)
        sk = self.context.secret_key().data
        self._keygen = sealapi.KeyGenerator(self._sd, sk)
        self.galois_keys = sealapi.GaloisKeys()
        if self.rotation_steps:
            self._keygen.create_galois_keys(_galois_elts(self._sd, self.rotation_steps),
                                            self.galois_keys)
        self._encoder = sealapi.CKKSEncoder(self._sd)
        self._encryptor = sealapi.Encryptor(self._sd, self.context.public_key().data)
        self._decryptor = sealapi.Decryptor(self._sd, sk)

    def public_context(self):
        """Copy of the context without the secret key."""
        pub = self.context.copy()
        pub.make_context_public(generate_galois_keys=False, generate_relin_keys=False)
        return pub

    def _encrypt_vec(self, vec, lvl=0, scale=None):
        pt = sealapi.Plaintext()
        ids = _chain(self._sd)
        scale = self.plan.params.scale if scale is None else scale
        _encode_vec(self._encoder, vec, ids[lvl], scale, pt)
        ct = sealapi.Ciphertext(self._sd)
        self._encryptor.encrypt(pt, ct)
        return ct

    def server_model(self, plan: Optional[CompiledPlan] = None, name="") -> ServerModel:
        """ServerModel with public context, Galois keys and the packed model.

        With ``plan.encrypted_weights`` the weight tiles and biases are
        encrypted here (under this client's key, at the level and scale each
        meets) and removed from the server's copy of the plan.
        """
        plan = self.plan if plan is None else plan
        wcts = {}
        enc_keys = plan.encrypted_keys()
        if enc_keys:
            for k in enc_keys:
                lvl, scale = plan.pt_spec[k]
                wcts[k] = self._encrypt_vec(plan.plaintexts[k][0], lvl, scale)
            h, arrays = _plan_to_payload(plan, drop_keys=enc_keys, drop_constants=True)
            plan = _plan_from_payload(h, arrays)
        return ServerModel(plan, self.public_context(), self.galois_keys, wcts, name)

    def encrypt(self, X) -> EncryptedBatch:
        """Encode (replication along the tile, batch along k) and encrypt X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        EncryptedBatch
        """
        X = np.asarray(X, dtype=np.float64)
        batches = [{q: self._encrypt_vec(vec) for q, vec in d.items()}
                   for d in _encode_input(self.plan, X)]
        return EncryptedBatch(batches, X.shape[0])

    def decrypt(self, result: EncryptedResult, plan: Optional[CompiledPlan] = None) -> np.ndarray:
        """Decrypt and decode the raw outputs, shape (n_samples, n_out).

        Parameters
        ----------
        result : EncryptedResult
        plan : CompiledPlan, optional
            The plan that produced ``result`` (default: the main plan).
        """
        plan = self.plan if plan is None else plan
        out = []
        b = plan.batch
        for bi, chunks in enumerate(result.batches):
            vecs = {}
            for p, ct in chunks.items():
                pt = sealapi.Plaintext()
                self._decryptor.decrypt(ct, pt)
                vecs[p] = np.asarray(self._encoder.decode_double(pt))
            n = min(b, result.n_samples - bi * b)
            out.append(_decode_output(plan, vecs, n))
        return np.vstack(out) if out else np.zeros((0, plan.n_outputs))


# --------------------------------------------------------------- cost model
def measure_unit_costs(params: CKKSParams, repeats: int = 10) -> dict:
    """Time SEAL primitives on ``params`` at every level, on this machine.

    Returns
    -------
    dict
        ``{op: {level: seconds}}`` for ops ``mul_plain, mul_ct, rotate, rescale,
        relinearize, add, add_plain, negate, encode``.
    """
    ctx = _make_context(params)
    sd = ctx.seal_context().data
    ids = _chain(sd)
    kg = sealapi.KeyGenerator(sd, ctx.secret_key().data)
    gk = sealapi.GaloisKeys()
    kg.create_galois_keys(_galois_elts(sd, [1]), gk)
    rk = ctx.relin_keys().data
    ev = sealapi.Evaluator(sd)
    enc = sealapi.CKKSEncoder(sd)
    encr = sealapi.Encryptor(sd, ctx.public_key().data)
    rng = np.random.default_rng(0)
    vec = rng.uniform(-1, 1, params.n_slots).tolist()
    res = {op: {} for op in OPS + ("encode",)}

    def tm(fn):
        fn()
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        return (time.perf_counter() - t0) / repeats

    sc = 2.0 ** 16        # small scales keep every op in bounds at every level
    for lvl, pid in enumerate(ids):
        pt = sealapi.Plaintext()
        enc.encode(vec, pid, sc, pt)
        ct = sealapi.Ciphertext(sd)
        encr.encrypt(pt, ct)   # a plaintext of level ``lvl`` encrypts at that level
        out = sealapi.Ciphertext(sd)
        res["encode"][lvl] = tm(lambda: enc.encode(vec, pid, sc, sealapi.Plaintext()))
        pts_ = sealapi.Plaintext()
        res["encode_scalar"][lvl] = tm(lambda: enc.encode(0.123, pid, sc, pts_))
        res["mul_plain"][lvl] = tm(lambda: ev.multiply_plain(ct, pt, out))
        res["add"][lvl] = tm(lambda: ev.add(ct, ct, out))
        res["add_plain"][lvl] = tm(lambda: ev.add_plain(ct, pt, out))
        res["negate"][lvl] = tm(lambda: ev.negate(ct, out))
        res["rotate"][lvl] = tm(lambda: ev.rotate_vector(ct, 1, gk, out))
        res["mul_ct"][lvl] = tm(lambda: ev.square(ct, out))
        o3 = sealapi.Ciphertext(sd)
        ev.square(ct, o3)
        res["relinearize"][lvl] = tm(lambda: ev.relinearize(o3, rk, out))
        if lvl < len(ids) - 1:
            q = float(sd.get_context_data(pid).parms().coeff_modulus()[-1].value())
            ptq = sealapi.Plaintext()
            enc.encode(vec, pid, q, ptq)
            big = sealapi.Ciphertext(sd)
            ev.multiply_plain(ct, ptq, big)
            res["rescale"][lvl] = tm(lambda: ev.rescale_to_next(big, out))
    return res


def predict_latency(plan: CompiledPlan, unit_costs: dict, level_ops=None) -> List[float]:
    """Predicted seconds per batch and stage: sum of op counts x unit costs."""
    level_ops = plan.level_ops if level_ops is None else level_ops
    out = []
    for d in level_ops:
        t = 0.0
        for (op, lvl), n in d.items():
            t += n * unit_costs.get(op, {}).get(lvl, 0.0)
        out.append(t)
    return out
