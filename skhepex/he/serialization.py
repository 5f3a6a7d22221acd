"""Pickle-free byte container and the byte form of compiled plans.

Container layout (all integers little-endian)::

    b"SKHEPEX\\x02" | sha256 (32 bytes) | header length (uint64) | JSON header | payload

The SHA-256 digest covers everything after it, so accidental corruption
(truncation, bit flips) is an error.  The JSON header names the kind of
object, its fields and every array (name, dtype, shape); the payload is the
arrays' raw bytes, back to back.  Nothing is compressed and no pickle is ever
read: sizes are checked against the header before anything is allocated, and
arrays are read as views of the input bytes.  (The digest detects accidents,
not a malicious sender, who can recompute it.)
"""
from __future__ import annotations

import hashlib
import json
import struct

import numpy as np

from ..tiling.shapes import block_shape, check_tile_shape
from .params import CKKSParams, validate_params
from .packing import stage_steps
from .plan import CompiledPlan, PtKey, RowPlan, StagePlan

__all__ = ["MAGIC", "SerializationError", "pack", "unpack", "plan_to_payload",
           "plan_from_payload", "plan_to_bytes", "plan_from_bytes"]

#: Magic prefix (with format version) of every skhepex byte string.
MAGIC = b"SKHEPEX\x02"
_DIGEST = 32
_ALLOWED_DTYPES = {"<f8": np.float64, "|b1": np.bool_, "|u1": np.uint8, "<i8": np.int64}
#: Largest JSON header accepted (bytes).
MAX_HEADER_BYTES = 64 << 20


class SerializationError(ValueError):
    """Bytes that are not a valid skhepex object of the expected kind."""


def pack(kind: str, header: dict, arrays: dict) -> bytes:
    """Serialise a JSON header and NumPy arrays to bytes (no pickle, no compression).

    Parameters
    ----------
    kind : str
        Object kind, checked by :func:`unpack`.
    header : dict
        JSON-serialisable fields.
    arrays : dict
        Name -> ndarray (float64, bool, uint8 or int64) or bytes (stored as uint8).

    Returns
    -------
    data : bytes
    """
    specs, chunks = [], []
    for name, arr in arrays.items():
        if isinstance(arr, (bytes, bytearray)):
            arr = np.frombuffer(bytes(arr), dtype=np.uint8)
        arr = np.ascontiguousarray(arr)
        if arr.dtype.str not in _ALLOWED_DTYPES:
            raise TypeError(f"array {name!r} has unsupported dtype {arr.dtype}")
        specs.append([str(name), arr.dtype.str, [int(v) for v in arr.shape]])
        chunks.append(arr.tobytes())
    hdr = json.dumps(dict(kind=kind, fields=header, arrays=specs)).encode("utf-8")
    body = struct.pack("<Q", len(hdr)) + hdr + b"".join(chunks)
    return MAGIC + hashlib.sha256(body).digest() + body


def unpack(data, kind: str, max_header_bytes=MAX_HEADER_BYTES):
    """Inverse of :func:`pack`, validating sizes before any allocation.

    Parameters
    ----------
    data : bytes
        Untrusted bytes.
    kind : str
        Expected kind.
    max_header_bytes : int, default=MAX_HEADER_BYTES
        Largest JSON header accepted (parsing takes up to ~20x its size).

    Returns
    -------
    header : dict
    arrays : dict
        Name -> read-only ndarray (a view of ``data``).

    Raises
    ------
    SerializationError
        Wrong magic or kind, checksum mismatch, inconsistent sizes, unsupported
        dtypes, malformed header.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes, got {type(data).__name__}")
    mv = memoryview(data).cast("B")
    if bytes(mv[:len(MAGIC)]) != MAGIC:
        raise SerializationError("not skhepex bytes of this version (bad magic prefix)")
    start = len(MAGIC) + _DIGEST
    if len(mv) < start + 8:
        raise SerializationError("truncated skhepex bytes")
    if hashlib.sha256(mv[start:]).digest() != bytes(mv[len(MAGIC):start]):
        raise SerializationError("checksum mismatch: the bytes are corrupted or truncated")
    (hlen,) = struct.unpack("<Q", mv[start:start + 8])
    pos = start + 8
    if hlen > min(max_header_bytes, len(mv) - pos):
        raise SerializationError(f"header length {hlen} exceeds the data")
    try:
        meta = json.loads(bytes(mv[pos:pos + hlen]).decode("utf-8"))
        fields, specs, got = meta["fields"], meta["arrays"], meta["kind"]
        if not isinstance(fields, dict) or not isinstance(specs, list):
            raise TypeError("fields/arrays")
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise SerializationError(f"malformed header ({type(exc).__name__})") from None
    if got != kind:
        raise SerializationError(f"bytes hold a {got!r}, expected {kind!r}")
    pos += hlen
    arrays, sizes = {}, []
    for spec in specs:
        try:
            name, dt, shape = spec
            dtype = np.dtype(_ALLOWED_DTYPES[dt])
            shape = tuple(int(v) for v in shape)
            if any(v < 0 for v in shape) or len(shape) > 32:
                raise ValueError("negative dimension or too many dimensions")
        except (ValueError, KeyError, TypeError, OverflowError) as exc:
            raise SerializationError(f"malformed array spec {spec!r} ({exc})") from None
        n = dtype.itemsize
        for v in shape:
            if v > len(mv):
                raise SerializationError(f"array {name!r} larger than the data")
            n *= v
            if n > len(mv):
                raise SerializationError(f"array {name!r} larger than the data")
        sizes.append((str(name), dtype, shape, n))
    if sum(s[3] for s in sizes) != len(mv) - pos:
        raise SerializationError("array sizes do not match the payload length")
    for name, dtype, shape, n in sizes:
        arrays[name] = np.frombuffer(mv[pos:pos + n], dtype=dtype).reshape(shape)
        pos += n
    return fields, arrays


def plan_to_payload(plan: CompiledPlan, drop_keys=(), drop_constants=False):
    """JSON header and arrays of a plan; plaintexts stored compactly (one tile each).

    Parameters
    ----------
    plan : CompiledPlan
    drop_keys : iterable of PtKey, default=()
        Plaintexts not to store (e.g. encrypted weights).
    drop_constants : bool, default=False
        Leave out the compile-time constant output rows.

    Returns
    -------
    header : dict
    arrays : dict
    """
    drop = set(drop_keys)
    keys = [k for k in plan.pt_spec if k not in drop]
    arrays = {}
    if plan.scalar_plaintexts:
        arrays["pt_scalars"] = np.array([plan.plaintexts[k][0] for k in keys], np.float64)
    else:
        for i, k in enumerate(keys):
            arrays[f"pt{i}"] = np.asarray(plan.plaintexts[k]).reshape(-1, plan.batch)[:, 0]
    stages = []
    for s_i, st in enumerate(plan.stages):
        arrays[f"tm{s_i}"] = np.asarray(st.tile_mask, dtype=bool)
        const = {} if drop_constants else st.const_out
        for p, v in const.items():
            arrays[f"co{s_i}_{p}"] = np.asarray(v, dtype=np.float64)
        stages.append(dict(
            name=st.name, orientation=st.orientation, n_in=int(st.n_in), n_out=int(st.n_out),
            live_in=[int(v) for v in st.live_in],
            rows=[[int(r.p), [[int(q), str(k)] for q, k in r.terms]]
                  + [None if k is None else str(k)
                     for k in (r.bias_key, r.mask_key, r.lin_key, r.const_key)]
                  for r in st.rows],
            const_out=[int(p) for p in const], act_sign=int(st.act_sign),
            encrypted=bool(st.encrypted), defer_rescale=bool(st.defer_rescale)))
    header = dict(
        params=plan.params.to_dict(), tile_shape=[int(v) for v in plan.tile_shape],
        n_features=int(plan.n_features), stages=stages, pt_keys=[str(k) for k in keys],
        pt_spec=[[str(k), int(lvl), float(sc)] for k, (lvl, sc) in plan.pt_spec.items()],
        primes=[int(v) for v in plan.primes], depth=int(plan.depth),
        op_counts=plan.op_counts,
        level_ops=[[[op, int(lvl), int(n)] for (op, lvl), n in d.items()]
                   for d in plan.level_ops],
        encrypted_weights=bool(plan.encrypted_weights))
    return header, arrays


def _stage_from(d, s_i, arrays, tile_shape, batch, prev):
    """One StagePlan from its header record (derived fields recomputed)."""
    orient = str(d["orientation"])
    if orient not in ("W", "WT") or (prev is not None and prev.orientation == orient):
        raise SerializationError(f"stage {s_i}: bad orientation {orient!r}")
    t1 = tile_shape[0]
    r, c = block_shape(orient, tile_shape)
    n_in, n_out = int(d["n_in"]), int(d["n_out"])
    grid = (-(-n_out // r), -(-n_in // c))
    tmask = np.array(arrays[f"tm{s_i}"], dtype=bool)
    if tmask.shape != grid or n_in < 1 or n_out < 1:
        raise SerializationError(f"stage {s_i}: tile mask {tmask.shape} != grid {grid}")
    rows = []
    for rec in d["rows"]:
        p, terms = int(rec[0]), [(int(q), PtKey.parse(k)) for q, k in rec[1]]
        extra = [None if k is None else PtKey.parse(k) for k in rec[2:6]]
        if not (0 <= p < grid[0]) or any(not 0 <= q < grid[1] for q, _ in terms):
            raise SerializationError(f"stage {s_i}: tile index out of range")
        can_gather = orient == "W" and prev is not None and t1 > 1
        if any(k.i >= t1 or not can_gather for _, k in terms if k.i >= 0):
            raise SerializationError(f"stage {s_i}: lane index out of range")
        rows.append(RowPlan(p, terms, *extra))
    const = {int(p): np.array(arrays[f"co{s_i}_{p}"], dtype=np.float64)
             for p in d["const_out"]}
    masked = any(r.mask_key is not None for r in rows)
    lanes = [k.i >= 0 for r in rows for _, k in r.terms]
    gather = bool(lanes) and all(lanes)
    if any(lanes) and not gather:
        raise SerializationError(f"stage {s_i}: a stage is gathered in every term or none")
    if gather and prev is not None and prev.masked:
        raise SerializationError(f"stage {s_i}: a gathered stage needs an unmasked input")
    act_sign = int(d["act_sign"])
    if act_sign not in (-1, 0, 1):
        raise SerializationError(f"stage {s_i}: act_sign must be -1, 0 or 1")
    live_in = [int(v) for v in d["live_in"]]
    if any(not 0 <= q < grid[1] for q in live_in):
        raise SerializationError(f"stage {s_i}: live input chunk out of range")
    defer = d.get("defer_rescale", False)
    if not isinstance(defer, bool) or (defer and (prev is not None or act_sign == 0 or masked
                                                 or bool(d["encrypted"]))):
        raise SerializationError(f"stage {s_i}: only an unmasked first stage with a square "
                                 f"activation and plaintext weights defers its rescale")
    red, rep, merge = stage_steps(orient, tile_shape, batch, masked, gather)
    return StagePlan(str(d["name"]), orient, n_in, n_out, grid, tmask, live_in, rows, const,
                     red, rep, act_sign, masked, c, r, encrypted=bool(d["encrypted"]),
                     gather=gather, merge_steps=merge, defer_rescale=defer)


def plan_from_payload(header: dict, arrays: dict) -> CompiledPlan:
    """Rebuild a plan from :func:`plan_to_payload` output, validating every field.

    Derived fields (batch, grids, rotation steps, masks) are recomputed from
    the parameters and the tile shape rather than trusted.

    Parameters
    ----------
    header : dict
    arrays : dict

    Returns
    -------
    plan : CompiledPlan

    Raises
    ------
    SerializationError
        Missing, mistyped or inconsistent fields.
    """
    try:
        params = validate_params(CKKSParams.from_dict(header["params"]))
        tile_shape = check_tile_shape(header["tile_shape"])
        if tile_shape[0] * tile_shape[1] > params.n_slots:
            raise ValueError("tile larger than a ciphertext")
        batch = params.n_slots // (tile_shape[0] * tile_shape[1])
        scalar = tile_shape == (1, 1)
        stages = []
        for s_i, d in enumerate(header["stages"]):
            stages.append(_stage_from(d, s_i, arrays, tile_shape, batch,
                                      stages[-1] if stages else None))
        if not stages or stages[0].n_in != int(header["n_features"]):
            raise ValueError("stages do not match n_features")
        for a, b in zip(stages, stages[1:]):
            if a.n_out != b.n_in:
                raise ValueError("consecutive stages do not chain")
        keys = [PtKey.parse(k) for k in header["pt_keys"]]
        width = 1 if scalar else tile_shape[0] * tile_shape[1]
        pts = {}
        for i, k in enumerate(keys):
            v = arrays["pt_scalars"][i:i + 1] if scalar else arrays[f"pt{i}"]
            if v.shape != (width,):
                raise ValueError(f"plaintext {k} has {v.size} values, expected {width}")
            pts[k] = np.array(v, dtype=np.float64) if scalar else np.repeat(v, batch)
        spec = {PtKey.parse(k): (int(lvl), float(sc)) for k, lvl, sc in header["pt_spec"]}
        primes = tuple(int(v) for v in header["primes"])
        depth = int(header["depth"])
        if len(primes) != len(params.coeff_mod_bit_sizes) - 1 or not 0 <= depth < len(primes):
            raise ValueError("primes / depth do not match the parameters")
        used = {k for st in stages for r in st.rows for k in r.keys()}
        enc = bool(header["encrypted_weights"])
        plain = {k for k in spec if not (enc and k.kind in ("w", "b"))}
        if not used <= set(spec) or set(pts) not in (set(spec), plain):
            raise ValueError("plaintext keys and rows disagree")
        if any(not 0 <= lvl < len(primes) for lvl, _ in spec.values()):
            raise ValueError("plaintext level out of range")
        level_ops = [{(str(op), int(lvl)): int(n) for op, lvl, n in d}
                     for d in header["level_ops"]]
        op_counts = [dict(d) for d in header["op_counts"]]
    except SerializationError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, OverflowError) as exc:
        raise SerializationError(f"malformed plan: {type(exc).__name__}: {exc}") from None
    return CompiledPlan(params=params, primes=primes, tile_shape=tile_shape, batch=batch,
                        n_features=stages[0].n_in, n_outputs=stages[-1].n_out, stages=stages,
                        plaintexts=pts, pt_spec=spec, depth=depth, level_ops=level_ops,
                        op_counts=op_counts, encrypted_weights=enc, scalar_plaintexts=scalar)


def plan_to_bytes(plan: CompiledPlan) -> bytes:
    """Bytes of a whole plan (client-side copy, e.g. inside a pickled predictor).

    Parameters
    ----------
    plan : CompiledPlan

    Returns
    -------
    data : bytes
    """
    return pack("CompiledPlan", *plan_to_payload(plan))


def plan_from_bytes(data) -> CompiledPlan:
    """Inverse of :func:`plan_to_bytes`.

    Parameters
    ----------
    data : bytes

    Returns
    -------
    plan : CompiledPlan
    """
    return plan_from_payload(*unpack(data, "CompiledPlan"))
