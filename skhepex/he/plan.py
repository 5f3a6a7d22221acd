"""The compiled plan: everything needed to run a network under CKKS, minus keys.

Packing (HElayers-style tile tensors).  A ciphertext holds one tile of
``t1 * t2`` slots times a batch of ``b = S // (t1*t2)`` samples, slot index
``(j*t1 + i)*b + k`` with ``j in [0, t2)`` outer, ``i in [0, t1)`` inner and
``k`` the sample.  How a stage is evaluated on that layout is described in
:mod:`skhepex.he.program`; how a network becomes a plan in
:mod:`skhepex.he.compiler`.

Plan objects are frozen: a plan is built once by the compiler (or read back by
:mod:`skhepex.he.serialization`) and never patched.  Plaintext keys are typed
(:class:`PtKey`); their role in the op sequence is derived from their kind.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from .packing import lane_rows
from .params import CKKSParams

__all__ = ["PtKey", "RowPlan", "StagePlan", "CompiledPlan", "plaintext_nbytes",
           "ciphertext_nbytes", "key_nbytes"]

#: Role of each plaintext kind in the op sequence: ``"mul"`` plaintexts are
#: encoded at the scale of the prime the next rescale drops (weights, masks),
#: ``"add"`` and ``"coef"`` ones at the scale of the ciphertext they meet.
_KIND_ROLES = {"w": "mul", "m": "mul", "b": "add", "c": "add", "l": "coef"}


def plaintext_nbytes(poly_modulus_degree, n_primes):
    """Bytes of one NTT-form plaintext with ``n_primes`` primes (8 bytes per coefficient).

    Parameters
    ----------
    poly_modulus_degree : int
        Ring dimension N.
    n_primes : int
        Primes of the coefficient modulus at the plaintext's level.

    Returns
    -------
    nbytes : int
        ``n_primes * N * 8``.
    """
    return int(n_primes) * int(poly_modulus_degree) * 8


def ciphertext_nbytes(poly_modulus_degree, n_primes, size=2):
    """Bytes of one ciphertext of ``size`` polynomials with ``n_primes`` primes.

    Parameters
    ----------
    poly_modulus_degree : int
        Ring dimension N.
    n_primes : int
        Primes of the coefficient modulus at the ciphertext's level.
    size : int, default=2
        Polynomials (2 after relinearisation).

    Returns
    -------
    nbytes : int
        ``size * n_primes * N * 8``.
    """
    return int(size) * plaintext_nbytes(poly_modulus_degree, n_primes)


def key_nbytes(key, level, params, n_primes, *, encrypted_weights=False,
               scalar_plaintexts=False):
    """Server-side bytes of one plaintext (or encrypted weight) of a plan.

    Parameters
    ----------
    key : PtKey
        The plaintext's key.
    level : int
        Level at which it is encoded.
    params : CKKSParams
        The plan's parameters.
    n_primes : int
        Data primes of the chain.
    encrypted_weights : bool, default=False
        Weights and biases are ciphertexts.
    scalar_plaintexts : bool, default=False
        1x1 tiles: the server keeps one float64 and encodes it when used.

    Returns
    -------
    nbytes : int
        Size of one ciphertext at ``level`` for an encrypted weight or bias,
        8 for a scalar plaintext, otherwise the NTT-form plaintext at
        ``level`` (8 bytes per coefficient and prime).
    """
    N, n = params.poly_modulus_degree, int(n_primes) - int(level)
    if encrypted_weights and key.kind in ("w", "b"):
        return ciphertext_nbytes(N, n)
    if scalar_plaintexts:
        return 8
    return plaintext_nbytes(N, n)


class PtKey(NamedTuple):
    """Typed key of one plaintext (or weight ciphertext) of a plan.

    Parameters
    ----------
    stage : int
        Stage index.
    kind : {"w", "b", "m", "l", "c"}
        Weight tile, bias, mask, linear coefficient of a poly activation,
        constant of a poly activation.
    p : int
        Output tile-row.
    q : int
        Input tile-column (weights only; -1 otherwise).
    i : int
        Output lane within the tile-row of a gathered stage's weight
        (:attr:`StagePlan.gather`; -1 otherwise).
    """

    stage: int
    kind: str
    p: int
    q: int = -1
    i: int = -1

    @property
    def role(self) -> str:
        """str : ``"mul"``, ``"add"`` or ``"coef"`` (how the op sequence uses it)."""
        return _KIND_ROLES[self.kind]

    def __str__(self) -> str:
        base = f"{self.stage}:{self.kind}:{self.p}"
        if self.i >= 0:
            return base + f":{self.q}:{self.i}"
        return base + (f":{self.q}" if self.q >= 0 else "")

    @classmethod
    def parse(cls, text) -> "PtKey":
        """Inverse of ``str(key)``; raises ``ValueError`` on malformed text.

        Parameters
        ----------
        text : str
            ``"stage:kind:p"``, ``"stage:kind:p:q"`` or ``"stage:kind:p:q:i"``.

        Returns
        -------
        key : PtKey
        """
        parts = str(text).split(":")
        if len(parts) not in (3, 4, 5) or parts[1] not in _KIND_ROLES:
            raise ValueError(f"malformed plaintext key {text!r}")
        try:
            nums = [int(v) for v in (parts[0], *parts[2:])]
        except ValueError:
            raise ValueError(f"malformed plaintext key {text!r}") from None
        if min(nums) < 0:
            raise ValueError(f"malformed plaintext key {text!r}")
        return cls(nums[0], parts[1], *nums[1:])


@dataclass(frozen=True, eq=False)
class RowPlan:
    """Op-level plan of one live output tile-row ``p`` of a stage.

    Attributes
    ----------
    p : int
        Output tile-row.
    terms : list of (int, PtKey)
        Input chunk and weight key of every multiply (in a gathered stage,
        the key's ``i`` is the output lane it accumulates into).
    bias_key, mask_key, lin_key, const_key : PtKey or None
        Bias, mask, linear coefficient (poly) and constant (after the
        activation) plaintexts.
    """

    p: int
    terms: List[Tuple[int, PtKey]]
    bias_key: Optional[PtKey] = None
    mask_key: Optional[PtKey] = None
    lin_key: Optional[PtKey] = None
    const_key: Optional[PtKey] = None

    def keys(self):
        """Every plaintext key this row uses, in op order.

        Returns
        -------
        keys : list of PtKey
        """
        ks = [k for _, k in self.terms]
        return ks + [k for k in (self.bias_key, self.mask_key, self.lin_key, self.const_key)
                     if k is not None]


@dataclass(frozen=True, eq=False)
class StagePlan:
    """Compiled plan of one linear stage (+ bias, activation).

    Attributes
    ----------
    name : str
        Layer name.
    orientation : {"W", "WT"}
        Which of W or W^T is cut into ``(t1, t2)`` tiles.
    n_in, n_out : int
        Matrix shape (out, in).
    grid : (int, int)
        Tile grid (output tile-rows, input tile-columns) in (out, in) coordinates.
    tile_mask : ndarray of bool
        Non-zero tiles.
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
    masked : bool
        Whether the output is masked and re-replicated.
    in_chunk, out_chunk : int
        Input / output chunk lengths (t2 / t1 for "W", t1 / t2 for "WT").
    encrypted : bool
        Weights and biases are ciphertexts (ct x ct products).
    gather : bool
        A "W" stage whose input is valid at ``i = 0`` only (the previous
        "WT" stage is neither masked nor replicated): one weight vector per
        output lane ``i``, zero off ``i = 0``, and ``merge_steps`` rotations
        that move lane ``i`` to row ``(-i) mod t1`` (:attr:`out_rows`, see
        :mod:`skhepex.he.program`).
    merge_steps : list of int
        Rotation steps of the lane merge (``b * 2**k``, ``k < log2 t1``: the
        reduction steps of the "WT" stage before, no Galois key of their own).
    defer_rescale : bool
        The products are not rescaled: the square activation's rescale drops
        the prime for both (first stage only, see
        :func:`~skhepex.he.compiler.compile_stages`).
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
    in_chunk: int
    out_chunk: int
    encrypted: bool = False
    gather: bool = False
    merge_steps: List[int] = field(default_factory=list)
    defer_rescale: bool = False

    @property
    def rotation_steps(self):
        """list of int : Rotation steps this stage uses (none without live rows)."""
        if not self.rows:
            return []
        return list(self.reduce_steps) + list(self.replicate_steps) + list(self.merge_steps)

    @property
    def out_rows(self):
        """ndarray : Row (inner tile index) of output ``i`` of a tile-row: ``i``, or
        ``(-i) mod t1`` in a gathered stage (lane ``i`` travels ``i`` rows left)."""
        return lane_rows(self.out_chunk, self.gather)

    @property
    def n_packed_tiles(self) -> int:
        """int : Weight tiles actually multiplied (a gathered tile counts once)."""
        return int(sum(len({q for q, _ in r.terms}) for r in self.rows))


@dataclass(frozen=True, eq=False)
class CompiledPlan:
    """Everything needed to run a network under CKKS, minus keys.

    Attributes
    ----------
    params : CKKSParams
        CKKS parameters.
    primes : tuple of int
        Data primes q0..qL of the coefficient modulus (values).
    tile_shape : (int, int)
        ``(t1, t2)``.
    batch : int
        Samples per ciphertext, ``S // (t1*t2)``.
    n_features, n_outputs : int
        Input and output widths.
    stages : list of StagePlan
        One per linear stage.
    plaintexts : dict
        PtKey -> slot vector (float64; one value for scalar plaintexts), or
        ``None`` for a counting-only plan.
    pt_spec : dict
        PtKey -> (level, scale) at which it is encoded.
    depth : int
        Levels consumed.
    level_ops : list of dict
        Per stage: ``{(op, level): count}`` per batch.
    op_counts : list of dict
        Per stage: tile counts, op totals and bytes (see
        :func:`~skhepex.he.compiler.count_ops`).
    encrypted_weights : bool
        Weights and biases are ciphertexts under the client's key.
    scalar_plaintexts : bool
        1x1 tiles: every plaintext is one value in every slot, encoded when used.
    """

    params: CKKSParams
    primes: Tuple[int, ...]
    tile_shape: Tuple[int, int]
    batch: int
    n_features: int
    n_outputs: int
    stages: List[StagePlan]
    plaintexts: Dict[PtKey, Optional[np.ndarray]]
    pt_spec: Dict[PtKey, Tuple[int, float]]
    depth: int
    level_ops: List[dict] = field(default_factory=list)
    op_counts: List[dict] = field(default_factory=list)
    encrypted_weights: bool = False
    scalar_plaintexts: bool = False

    @property
    def n_slots(self) -> int:
        """int : Slots per ciphertext."""
        return self.params.n_slots

    @property
    def rotation_steps(self):
        """list of int : Exactly the steps whose Galois keys are needed."""
        return sorted({s for st in self.stages for s in st.rotation_steps})

    def encrypted_keys(self):
        """Keys of the weight and bias vectors that are encrypted (if any).

        Returns
        -------
        keys : list of PtKey
            Keys of kind ``"w"`` and ``"b"`` in ``pt_spec`` order when the
            plan has ``encrypted_weights``; empty otherwise.
        """
        if not self.encrypted_weights:
            return []
        return [k for k in self.pt_spec if k.kind in ("w", "b")]

    def key_nbytes(self, key) -> int:
        """Server-side bytes of one plaintext / weight ciphertext of this plan.

        Parameters
        ----------
        key : PtKey
            A key of ``pt_spec`` (its level is read there).

        Returns
        -------
        nbytes : int
            8 for a scalar plaintext (1x1 tiles: one float64, encoded when
            used); an NTT-form plaintext at its level otherwise; twice that
            for an encrypted weight.
        """
        return key_nbytes(key, self.pt_spec[key][0], self.params, len(self.primes),
                          encrypted_weights=self.encrypted_weights,
                          scalar_plaintexts=self.scalar_plaintexts)

    def plaintext_bytes(self) -> int:
        """Bytes of all plaintexts the server keeps (encrypted weights excluded).

        Returns
        -------
        nbytes : int
            Sum of :meth:`key_nbytes` over the plaintexts (weight and bias
            ciphertexts of an ``encrypted_weights`` plan are not counted).
        """
        enc = set(self.encrypted_keys())
        return int(sum(self.key_nbytes(k) for k in self.pt_spec if k not in enc))

    def weight_bytes(self) -> int:
        """Bytes of the packed model: plaintexts plus encrypted weights.

        Returns
        -------
        nbytes : int
            Sum of :meth:`key_nbytes` over every key of ``pt_spec``.
        """
        return int(sum(self.key_nbytes(k) for k in self.pt_spec))

    def slot_index(self, j, i, k=0):
        """Slot of tile position (j, i) and batch sample k.

        Parameters
        ----------
        j, i : int or array-like
            Outer and inner tile coordinates.
        k : int or array-like, default=0
            Sample within the batch.

        Returns
        -------
        index : int or ndarray
            Slot ``(j * t1 + i) * batch + k`` (broadcast over array inputs).
        """
        t1, _ = self.tile_shape
        return (np.asarray(j) * t1 + np.asarray(i)) * self.batch + np.asarray(k)
