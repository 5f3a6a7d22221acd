"""Choice of the tile shape and CKKS parameters with the cost model."""
from __future__ import annotations

import logging
import os

from ..estimators import get_tile_shape
from ..tiling import TileLayout, block_shape, check_tile_shape, layer_orientation
from .build import resolve_variant
from .costs import client_latency, memory_estimate, predict_latency
from .stages import build_stages

__all__ = ["choose_tile_shape", "evaluate_tile_shape", "resolve_tile_shape", "memory_budget",
           "AUTO_MAX_TILE_SLOTS", "MAX_AUTO_MEMORY", "MAX_AUTO_TILES",
           "AUTO_TILE_SIDES", "AUTO_LATENCY_TOLERANCE", "AUTO_MEMORY_TOLERANCE",
           "select_candidate"]

logger = logging.getLogger("skhepex")

#: Largest packed model + keys (bytes) the automatic tile-shape choice accepts
#: by default: a quarter of the machine's physical memory, at most 8 GiB (1 GiB
#: when the physical memory is unknown; a container's cgroup limit counts when
#: lower).  ``HEPredictor(max_memory=...)`` overrides it.
MAX_AUTO_MEMORY = 8 << 30
#: Largest number of weight tiles (plaintexts) the automatic choice considers
#: (bounds the time of the symbolic packing).
MAX_AUTO_TILES = 65536
#: Candidate tile sides of the automatic choice (powers of two); a tile may fill a
#: whole ciphertext (t1 * t2 up to the slots of N=32768), which suits small requests.
AUTO_TILE_SIDES = tuple(2 ** k for k in range(14))
#: Largest tile (slots) the automatic choice considers.
AUTO_MAX_TILE_SLOTS = 16384
#: Candidates whose predicted latency is within this factor of the best are
#: considered equal in speed (:func:`select_candidate`).
AUTO_LATENCY_TOLERANCE = 1.10
#: Among those, candidates whose memory is within this factor of the smallest
#: are considered equal in memory, and the fastest of them wins: a shape is
#: traded for a slower one only for a real memory saving.  (Before: the
#: smallest memory won outright, so for 0.5% less memory 784-256-128-10 at
#: 256 samples got a layout predicted 8% and measured 12% slower end to end.)
AUTO_MEMORY_TOLERANCE = 1.10


def memory_budget(max_memory="auto"):
    """Byte budget of a packed model + keys for the automatic tile-shape choice.

    Parameters
    ----------
    max_memory : int or "auto", default="auto"
        Explicit budget in bytes, or ``"auto"``: a quarter of the physical
        memory, at most :data:`MAX_AUTO_MEMORY` (1 GiB if unknown).

    Returns
    -------
    budget : int
        Bytes.
    """
    if max_memory != "auto":
        return int(max_memory)
    try:
        phys = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):   # not POSIX
        phys = -1
    for path in ("/sys/fs/cgroup/memory.max",        # a container's limit, if lower
                 "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as fh:
                limit = int(fh.read().strip())
        except (OSError, ValueError):               # absent, or "max"
            continue
        phys = limit if phys <= 0 else min(phys, limit)
    if phys <= 0:
        return 1 << 30
    return int(min(phys // 4, MAX_AUTO_MEMORY))


def _n_tiles(shapes, tile_shape):
    n = 0
    for i, (n_out, n_in) in enumerate(shapes):
        r, c = block_shape(layer_orientation(i), tile_shape)
        n += -(-n_out // r) * -(-n_in // c)
    return n


def evaluate_tile_shape(estimator, tile_shape, *, param_kw=None, encrypt_weights=False,
                        batch_size="auto", n_stages=None, measure=True, input_range=None):
    """Parameters, counting plan and predicted cost of one tile shape.

    The evaluation variant (gathered last stage or not) is the cheaper one
    (:func:`~skhepex.he.build.resolve_variant`).

    Parameters
    ----------
    estimator : estimator
        Fitted network (or a wrapper holding one).
    tile_shape : (int, int)
        The shape to evaluate.
    param_kw : dict, optional
        ``poly_modulus_degree, coeff_mod_bit_sizes, scale_bits, security_level``.
    encrypt_weights : bool, default=False
        Price the weights as ciphertexts (ct x ct products).
    batch_size : int or "auto", default="auto"
        Samples per request; "auto" = full ciphertexts.
    n_stages : int, optional
        Only the first stages.
    measure : bool, default=True
        Measured (True) or tabulated (False) unit costs.
    input_range : (ndarray, ndarray), optional
        Box of the encoded inputs: the first prime keeps room for the largest
        value the network reaches on it (:mod:`skhepex.he.bounds`).

    Returns
    -------
    record : dict
        ``tile_shape, params, plan, seconds_per_batch, samples_per_batch,
        seconds_per_sample, memory_bytes, value_bound``.
    """
    stages = build_stages(estimator, tile_shape, n_stages)
    rec = resolve_variant({"predict": stages}, tile_shape, dict(param_kw or {}), input_range,
                          encrypt_weights, measure=measure)
    params, plan, costs = rec["params"], rec["plans"]["predict"], rec["costs"]
    bound = rec["bounds"]["predict"]
    server = float(sum(predict_latency(plan, costs)))
    client = client_latency(plan, costs)
    per_batch = server + client
    samples = plan.batch if batch_size in (None, "auto") else min(int(batch_size), plan.batch)
    mem = memory_estimate(plan)
    total_mem = mem["packed_model_bytes"] + mem["galois_key_bytes"] + mem["relin_key_bytes"]
    return dict(tile_shape=tuple(tile_shape), params=params, plan=plan,
                seconds_per_batch=per_batch, server_seconds_per_batch=server,
                client_seconds_per_batch=client, samples_per_batch=samples,
                seconds_per_sample=per_batch / samples, memory_bytes=int(total_mem),
                value_bound=bound)


def choose_tile_shape(estimator, *, param_kw=None, encrypt_weights=False, batch_size="auto",
                      candidates=None, max_memory="auto", max_tiles=MAX_AUTO_TILES,
                      measure=True, input_range=None, n_stages=None):
    """Choose the tile shape with the lowest predicted latency per sample.

    Every power-of-two shape ``(t1, t2)`` (sides in :data:`AUTO_TILE_SIDES`,
    ``t1 * t2`` up to :data:`AUTO_MAX_TILE_SLOTS`, so a tile may fill a whole
    ciphertext, at most ``max_tiles`` weight tiles) is packed symbolically
    with its own CKKS parameters and priced with the cost model: server
    evaluation plus the client's encoding, encryption, decryption and
    decoding.  Latency per sample is the predicted latency of one ciphertext
    batch divided by the samples it carries: ``slots / (t1 t2)`` for ``batch_size="auto"`` (throughput), else
    ``min(batch_size, slots / (t1 t2))``.  Shapes whose packed model + keys
    exceed ``max_memory`` are skipped; the choice among the others is
    :func:`select_candidate`'s (speed first, memory when it saves over 10%).

    Parameters
    ----------
    estimator : estimator
        Fitted network (or Pipeline / HEPEx ending in one).
    param_kw : dict, optional
        ``poly_modulus_degree, coeff_mod_bit_sizes, scale_bits, security_level``.
    encrypt_weights : bool, default=False
        Price the weights as ciphertexts (ct x ct products).
    batch_size : int or "auto", default="auto"
        Samples expected per request.
    candidates : list of (int, int), optional
        Shapes to compare instead of the default grid.
    max_memory : int or "auto", default="auto"
        Byte budget of packed model + keys (see :func:`memory_budget`).
    max_tiles : int
        Skip shapes with more weight tiles.
    measure : bool, default=True
        Measured (True) or tabulated (False) unit costs.
    input_range : (ndarray, ndarray), optional
        Box of the encoded inputs (see :func:`evaluate_tile_shape`).
    n_stages : int, optional
        Only the first stages (e.g. the transform prefix).

    Returns
    -------
    tile_shape : (int, int)
        The chosen shape.
    table : list of dict
        One record per evaluated candidate (``tile_shape, poly_modulus_degree,
        seconds_per_sample, seconds_per_batch, samples_per_batch, memory_bytes``).
    """
    layout = TileLayout(estimator, (1, 1) if candidates is None else candidates[0])
    shapes = [m.shape for m, _ in layout.matrices()]
    if candidates is None:
        candidates = [(a, b) for a in AUTO_TILE_SIDES for b in AUTO_TILE_SIDES
                      if a * b <= AUTO_MAX_TILE_SLOTS]
    max_memory = memory_budget(max_memory)
    table, best, errors = [], [], []
    for shape in candidates:
        if _n_tiles(shapes, shape) > max_tiles:
            continue
        try:
            rec = evaluate_tile_shape(estimator, shape, param_kw=param_kw,
                                      encrypt_weights=encrypt_weights, batch_size=batch_size,
                                      measure=measure, input_range=input_range,
                                      n_stages=n_stages)
        except ValueError as exc:   # e.g. explicit params too small for this shape
            if "not a polynomial" in str(exc):
                raise
            logger.debug("tile shape %s rejected: %s", shape, exc)
            errors.append(str(exc))
            continue
        table.append({k: rec[k] for k in ("tile_shape", "seconds_per_sample",
                                          "seconds_per_batch", "server_seconds_per_batch",
                                          "client_seconds_per_batch", "samples_per_batch",
                                          "memory_bytes")})
        table[-1]["poly_modulus_degree"] = rec["params"].poly_modulus_degree
        if rec["memory_bytes"] <= max_memory:
            best.append(table[-1])
    if not best:
        if not table:
            reason = (errors[0] if errors and all(e == errors[0] for e in errors)
                      else "; ".join(dict.fromkeys(errors))[:500])
            explicit = any(v != "auto" for k, v in (param_kw or {}).items()
                           if k != "security_level")
            hint = ("check the explicit CKKS parameters or pass tile_shape" if explicit
                    else "the network is too deep for 128-bit CKKS parameters at any "
                         "candidate tile shape; use fewer layers")
            raise ValueError(f"no tile shape fits: {hint} ({reason})")
        best = [min(table, key=lambda r: r["memory_bytes"])]
    chosen = select_candidate(best)
    logger.info("auto tile shape %s: %.3g ms/sample predicted, %.1f MB", chosen["tile_shape"],
                chosen["seconds_per_sample"] * 1e3, chosen["memory_bytes"] / 2**20)
    return chosen["tile_shape"], table


def select_candidate(records):
    """The chosen record: fast first, then lean, then fast again.

    Records within :data:`AUTO_LATENCY_TOLERANCE` of the fastest are equal in
    speed; among them, those within :data:`AUTO_MEMORY_TOLERANCE` of the
    smallest memory are equal in memory; the fastest of those wins (ties:
    smaller memory, then the tile shape).

    Parameters
    ----------
    records : list of dict
        With ``seconds_per_sample``, ``memory_bytes`` and ``tile_shape``.

    Returns
    -------
    record : dict
        One of ``records``.
    """
    if not records:
        raise ValueError("no candidate to select from")
    fastest = min(r["seconds_per_sample"] for r in records)
    near = [r for r in records if r["seconds_per_sample"] <= AUTO_LATENCY_TOLERANCE * fastest]
    smallest = min(r["memory_bytes"] for r in near)
    lean = [r for r in near if r["memory_bytes"] <= AUTO_MEMORY_TOLERANCE * smallest]
    return min(lean, key=lambda r: (r["seconds_per_sample"], r["memory_bytes"],
                                    r["tile_shape"]))


def resolve_tile_shape(estimator, tile_shape="auto", **kwargs):
    """The tile shape to pack ``estimator`` with.

    An explicit ``tile_shape`` is validated (with a warning when it differs
    from the shape the estimator was pruned for); ``"auto"`` takes the shape
    the estimator carries (an ``HEPEx``'s), else :func:`choose_tile_shape`.

    Parameters
    ----------
    estimator : estimator
        Fitted network or a wrapper of one.
    tile_shape : (int, int) or "auto", default="auto"
        Explicit shape, or ``"auto"``.
    **kwargs : dict
        Passed to :func:`choose_tile_shape` (``param_kw``, ``encrypt_weights``,
        ``batch_size``, ``measure``).

    Returns
    -------
    tile_shape : (int, int)
        The shape to pack with.
    """
    carried = get_tile_shape(estimator)
    if not isinstance(tile_shape, str):
        ts = check_tile_shape(tile_shape)
        if carried is not None and tuple(carried) != ts:
            logger.warning("tile_shape %s differs from the HEPEx's %s: tiles emptied by "
                           "pruning may not be empty in this packing", ts, carried)
        return ts
    if tile_shape != "auto":
        raise ValueError(f"tile_shape must be (t1, t2) or 'auto'; got {tile_shape!r}")
    if carried is not None:
        return tuple(carried)
    return tuple(choose_tile_shape(estimator, **kwargs)[0])
