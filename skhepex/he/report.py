"""Cost and memory report of encrypted inference, and the automatic tile shape.

Everything here works without keys: the network is packed symbolically
(:func:`~skhepex.he.engine.compile_stages` with ``materialize=False``), the op
counts per layer come from the same op sequence the SEAL backend executes, and
latency is predicted as op counts x unit costs measured on this machine
(:func:`~skhepex.he.engine.measure_unit_costs`, cached per parameter set in
the process).
"""
from __future__ import annotations

import logging
from numbers import Integral

import numpy as np

from ..tiling import TileLayout, default_tile_shape, final_network
from .engine import compile_stages, measure_unit_costs, memory_estimate, predict_latency
from .params import CKKSParams, choose_params, validate_params

__all__ = ["HECostReport", "he_cost_report", "build_stages", "choose_tile_shape",
           "unit_costs", "resolve_params"]

logger = logging.getLogger("skhepex")

#: Largest packed model + keys (bytes) the automatic tile-shape choice accepts.
MAX_AUTO_MEMORY = 1 << 30
#: Largest number of weight tiles (plaintexts) the automatic choice considers
#: (bounds the time of the symbolic packing; 1x1 tiles of the 64-128-128-10 MLP
#: are 25856, the CNN 50432 of which most are structurally empty).
MAX_AUTO_TILES = 65536
#: Candidate tile sides of the automatic choice (powers of two).
AUTO_TILE_SIDES = (1, 2, 4, 8, 16, 32, 64)
#: Candidates whose predicted latency is within this factor of the best are
#: considered equal; the one with the smallest memory wins.
AUTO_LATENCY_TOLERANCE = 1.10

_UNIT_COSTS = {}
_OPS_FIELDS = ("mul_plain", "mul_ct", "rotate", "rescale", "relinearize")


def unit_costs(params: CKKSParams, repeats: int = 5) -> dict:
    """Unit costs of SEAL primitives for ``params``, measured once per process.

    Parameters
    ----------
    params : CKKSParams
    repeats : int, default=5
        Timing repetitions per op and level (first measurement only).

    Returns
    -------
    dict
        ``{op: {level: seconds}}`` (see :func:`~skhepex.he.engine.measure_unit_costs`).
    """
    key = (params.poly_modulus_degree, params.coeff_mod_bit_sizes, params.scale_bits)
    if key not in _UNIT_COSTS:
        logger.info("measuring CKKS unit costs for N=%d %s", params.poly_modulus_degree,
                    list(params.coeff_mod_bit_sizes))
        _UNIT_COSTS[key] = measure_unit_costs(params, repeats=repeats)
    return _UNIT_COSTS[key]


def _activation_spec(stage, layer):
    act = stage.activation
    if act is None:
        return None
    poly = act.polynomial()
    if poly is None:
        raise ValueError(
            f"layer {layer.name!r} (weight layer {layer.index}) is followed by the "
            f"activation {act.name!r}, which is not a polynomial and cannot be evaluated "
            f"under CKKS encryption; train the network with activation='square' or "
            f"activation='poly' (a*x**2 + b*x + c) instead")
    if act.name == "square":
        return ("square",)
    return ("poly",) + tuple(float(v) for v in poly)


def build_stages(estimator, tile_shape, n_stages=None, layout=None):
    """Engine stage dicts of a fitted network, following its :class:`TileLayout`.

    Parameters
    ----------
    estimator : estimator
        Fitted network, or a Pipeline / HEPEx ending in one.
    tile_shape : (int, int)
    n_stages : int, optional
        Keep only the first ``n_stages`` stages (e.g. an encoder).
    layout : TileLayout, optional
        Precomputed layout for ``tile_shape``.

    Returns
    -------
    list of dict
        ``name, matrix, bias, orientation, block_shape, tile_mask, activation``.

    Raises
    ------
    ValueError
        If a stage's activation is not a polynomial (naming the layer).
    """
    layout = TileLayout(estimator, tile_shape) if layout is None else layout
    n = len(layout.layers) if n_stages is None else int(n_stages)
    out = []
    for i in range(n):
        layer, st = layout.layers[i], layout.stages[i]
        M, b = layout.matrices()[i]
        act = _activation_spec(st, layer)
        out.append(dict(name=layer.name, matrix=M, bias=b, orientation=layer.orientation,
                        block_shape=layer.block_shape, tile_mask=layer.tile_mask,
                        activation=act))
    return out


def resolve_params(depth, tile_shape, poly_modulus_degree="auto", coeff_mod_bit_sizes="auto",
                   scale_bits="auto", security_level=128):
    """CKKS parameters from user settings: "auto" parts are chosen, explicit ones validated.

    Parameters
    ----------
    depth : int
        Multiplicative depth the network needs.
    tile_shape : (int, int)
    poly_modulus_degree, coeff_mod_bit_sizes, scale_bits : int, tuple or "auto"
    security_level : int, default=128
        Only 128 is supported.

    Returns
    -------
    CKKSParams

    Raises
    ------
    ValueError
        Insecure or insufficient explicit parameters, or another security level.
    """
    if security_level != 128:
        raise ValueError(f"security_level={security_level!r} is not supported: only 128-bit "
                         f"security (HE standard bounds) is implemented")
    slots = int(tile_shape[0]) * int(tile_shape[1])
    if coeff_mod_bit_sizes != "auto":
        bits = tuple(int(b) for b in coeff_mod_bit_sizes)
        n = 8192 if poly_modulus_degree == "auto" else int(poly_modulus_degree)
        if poly_modulus_degree == "auto":
            from .params import MAX_LOG_Q
            n = next((k for k in sorted(MAX_LOG_Q) if k >= 8192 and sum(bits) <= MAX_LOG_Q[k]
                      and k // 2 >= slots), 8192)
        s = (min(bits[1:-1]) if len(bits) > 2 else bits[0] - 10) if scale_bits == "auto" \
            else int(scale_bits)
        if scale_bits == "auto" and len(bits) > 2 and s >= bits[0]:
            raise ValueError(
                f"coeff_mod_bit_sizes={list(bits)}: the scale is taken from the middle primes "
                f"({s} bits), which leaves the first prime ({bits[0]} bits) no room for the "
                f"integer part of the results; use a first prime larger than the middle ones "
                f"(e.g. {[s + 9] + list(bits[1:])}) or pass scale_bits")
        return validate_params(CKKSParams(n, bits, s), depth=depth, min_slots=slots)
    kw = {}
    if poly_modulus_degree != "auto":
        kw["min_poly_modulus_degree"] = int(poly_modulus_degree)
    if scale_bits != "auto":
        kw["min_scale_bits"] = kw["max_scale_bits"] = int(scale_bits)
    p = choose_params(depth, slots, **kw)
    if poly_modulus_degree != "auto" and p.poly_modulus_degree != int(poly_modulus_degree):
        raise ValueError(f"depth {depth} does not fit poly_modulus_degree="
                         f"{poly_modulus_degree} at 128-bit security with the requested scale; "
                         f"use a larger poly_modulus_degree or 'auto'")
    return p


def _n_tiles(layout_shapes, tile_shape):
    t1, t2 = tile_shape
    n = 0
    for i, (n_out, n_in) in enumerate(layout_shapes):
        r, c = (t1, t2) if i % 2 == 0 else (t2, t1)
        n += -(-n_out // r) * -(-n_in // c)
    return n


def _evaluate_candidate(estimator, tile_shape, param_kw, encrypt_weights, batch, n_stages=None):
    stages = build_stages(estimator, tile_shape, n_stages)
    from .engine import required_depth
    depth = required_depth(stages, tile_shape)
    params = resolve_params(depth, tile_shape, **param_kw)
    plan = compile_stages(stages, tile_shape, params, encrypt_weights=encrypt_weights,
                          materialize=False)
    uc = unit_costs(params)
    per_batch = float(sum(predict_latency(plan, uc)))
    samples = plan.batch if batch in (None, "auto") else min(int(batch), plan.batch)
    mem = memory_estimate(plan)
    total_mem = mem["packed_model_bytes"] + mem["galois_key_bytes"] + mem["relin_key_bytes"]
    return dict(tile_shape=tuple(tile_shape), params=params, plan=plan,
                seconds_per_batch=per_batch, samples_per_batch=samples,
                seconds_per_sample=per_batch / samples, memory_bytes=int(total_mem))


def choose_tile_shape(estimator, *, param_kw=None, encrypt_weights=False, batch_size="auto",
                      candidates=None, max_memory=MAX_AUTO_MEMORY, max_tiles=MAX_AUTO_TILES):
    """Choose the tile shape with the lowest predicted latency per sample.

    Every power-of-two shape ``(t1, t2)`` (sides in :data:`AUTO_TILE_SIDES`,
    at most ``max_tiles`` weight tiles) is packed symbolically with its own
    CKKS parameters (``t1 == 1`` saves the mask level of "WT" layers, which can
    keep a network at N=8192) and timed with the cost model.  Latency per sample
    is the predicted latency of one ciphertext batch divided by the samples it
    carries: ``slots / (t1 t2)`` for ``batch_size="auto"`` (throughput), else
    ``min(batch_size, slots / (t1 t2))``.  Shapes whose packed model + keys
    exceed ``max_memory`` are skipped; among shapes within 10% of the fastest
    the smallest memory wins.

    Parameters
    ----------
    estimator : estimator
        Fitted network (or Pipeline / HEPEx ending in one).
    param_kw : dict, optional
        ``poly_modulus_degree, coeff_mod_bit_sizes, scale_bits, security_level``.
    encrypt_weights : bool, default=False
    batch_size : int or "auto", default="auto"
        Samples expected per request.
    candidates : list of (int, int), optional
        Shapes to compare instead of the default grid.
    max_memory : int
        Byte budget of packed model + keys.
    max_tiles : int
        Skip shapes with more weight tiles.

    Returns
    -------
    tile_shape : (int, int)
    table : list of dict
        One record per evaluated candidate (``tile_shape, poly_modulus_degree,
        seconds_per_sample, seconds_per_batch, samples_per_batch, memory_bytes``).
    """
    param_kw = dict(param_kw or {})
    layout = TileLayout(estimator, (1, 1) if candidates is None else candidates[0])
    shapes = [m.shape for m, _ in layout.matrices()]
    if candidates is None:
        candidates = [(a, b) for a in AUTO_TILE_SIDES for b in AUTO_TILE_SIDES
                      if a * b <= 1024]
    table, best, errors = [], [], []
    for shape in candidates:
        if _n_tiles(shapes, shape) > max_tiles:
            continue
        try:
            rec = _evaluate_candidate(estimator, shape, param_kw, encrypt_weights, batch_size)
        except ValueError as exc:   # e.g. explicit params too small for this shape
            if "not a polynomial" in str(exc):
                raise
            logger.debug("tile shape %s rejected: %s", shape, exc)
            errors.append(str(exc))
            continue
        table.append(dict(tile_shape=rec["tile_shape"],
                          poly_modulus_degree=rec["params"].poly_modulus_degree,
                          seconds_per_sample=rec["seconds_per_sample"],
                          seconds_per_batch=rec["seconds_per_batch"],
                          samples_per_batch=rec["samples_per_batch"],
                          memory_bytes=rec["memory_bytes"]))
        if rec["memory_bytes"] <= max_memory:
            best.append(table[-1])
    if not best:
        if not table:
            # the same message for every shape means the parameters themselves are wrong
            reason = (errors[0] if errors and all(e == errors[0] for e in errors)
                      else "; ".join(dict.fromkeys(errors))[:500])
            raise ValueError("no tile shape fits the CKKS parameters; check the explicit "
                             f"parameters or pass tile_shape ({reason})")
        best = [min(table, key=lambda r: r["memory_bytes"])]
    fastest = min(r["seconds_per_sample"] for r in best)
    near = [r for r in best if r["seconds_per_sample"] <= AUTO_LATENCY_TOLERANCE * fastest]
    chosen = min(near, key=lambda r: (r["memory_bytes"], r["seconds_per_sample"]))
    logger.info("auto tile shape %s: %.3g ms/sample predicted, %.1f MB", chosen["tile_shape"],
                chosen["seconds_per_sample"] * 1e3, chosen["memory_bytes"] / 2**20)
    return chosen["tile_shape"], table


class HECostReport:
    """Per-layer op counts, memory and latency of encrypted inference.

    Built by :func:`he_cost_report` (no keys) or by :class:`HEPredictor`
    (``report_``), which also fills in measured latencies after ``predict``.

    Attributes
    ----------
    tile_shape : (int, int)
    params : CKKSParams
    batch : int
        Samples per ciphertext (slots / (t1 t2)).
    depth : int
        Levels consumed.
    layers : list of dict
        Per layer: ``name, orientation, grid, n_tiles, n_nonzero_tiles,
        n_packed_tiles, mul_plain, mul_ct, rotate, rescale, relinearize,
        levels_used, plaintext_bytes, weight_ciphertext_bytes,
        predicted_seconds`` (per ciphertext batch) and, once measured,
        ``measured_seconds`` (per ciphertext batch).
    memory : dict
        Packed weights, Galois keys, relin keys and one input batch (bytes).
    predicted_seconds_per_batch, predicted_seconds_per_sample : float
    measured : dict or None
        ``n_samples, n_batches, seconds, seconds_per_batch, seconds_per_sample,
        encrypt_seconds, decrypt_seconds`` of the last measured run.
    """

    def __init__(self, plan, unit_costs_=None, encrypted_weights=False):
        self.tile_shape = tuple(plan.tile_shape)
        self.params = plan.params
        self.batch = int(plan.batch)
        self.depth = int(plan.depth)
        self.encrypted_weights = bool(encrypted_weights or plan.encrypted_weights)
        self.memory = memory_estimate(plan)
        pred = predict_latency(plan, unit_costs_) if unit_costs_ is not None else None
        self.layers = []
        for i, oc in enumerate(plan.op_counts):
            rec = {k: oc[k] for k in ("stage", "orientation", "n_tiles", "n_nonzero_tiles",
                                      "n_packed_tiles", "n_skipped_tiles", "n_live_rows",
                                      "n_const_rows", "levels_used", "plaintext_bytes",
                                      "weight_ciphertext_bytes", "add", "add_plain",
                                      "negate") + _OPS_FIELDS}
            rec["name"] = rec.pop("stage")
            rec["grid"] = tuple(int(v) for v in plan.stages[i].grid)
            rec["predicted_seconds"] = None if pred is None else float(pred[i])
            rec["measured_seconds"] = None
            self.layers.append(rec)
        self.predicted_seconds_per_batch = None if pred is None else float(sum(pred))
        self.predicted_seconds_per_sample = (None if pred is None
                                             else self.predicted_seconds_per_batch / self.batch)
        self.measured = None

    # ------------------------------------------------------------ measured
    def record_run(self, timings, n_samples, n_batches, encrypt_seconds=None,
                   decrypt_seconds=None):
        """Store measured per-layer times of a server evaluation.

        Parameters
        ----------
        timings : list of dict
            ``ServerModel.timings_`` (seconds per stage over all batches).
        n_samples, n_batches : int
        encrypt_seconds, decrypt_seconds : float, optional
            Client-side times.
        """
        nb = max(int(n_batches), 1)
        total = 0.0
        for rec, t in zip(self.layers, timings):
            rec["measured_seconds"] = float(t["seconds"]) / nb
            total += float(t["seconds"])
        self.measured = dict(n_samples=int(n_samples), n_batches=nb, seconds=total,
                             seconds_per_batch=total / nb,
                             seconds_per_sample=total / max(int(n_samples), 1),
                             encrypt_seconds=encrypt_seconds, decrypt_seconds=decrypt_seconds)
        if self.predicted_seconds_per_batch:
            self.measured["measured_over_predicted"] = (total / nb
                                                        / self.predicted_seconds_per_batch)

    # -------------------------------------------------------------- output
    @property
    def n_tiles(self):
        """int : Weight tiles over all layers."""
        return sum(r["n_tiles"] for r in self.layers)

    @property
    def n_weight_ciphertexts(self):
        """int : Packed weight tiles (plaintexts, or ciphertexts with encrypt_weights)."""
        return sum(r["n_packed_tiles"] for r in self.layers)

    def totals(self):
        """Op counts summed over layers (per ciphertext batch)."""
        return {op: int(sum(r[op] for r in self.layers)) for op in _OPS_FIELDS}

    def to_dict(self):
        """JSON-friendly dictionary of the whole report."""
        return dict(tile_shape=list(self.tile_shape), params=self.params.to_dict(),
                    batch=self.batch, depth=self.depth,
                    encrypted_weights=self.encrypted_weights,
                    n_tiles=self.n_tiles, n_weight_ciphertexts=self.n_weight_ciphertexts,
                    layers=[dict(r, grid=list(r["grid"])) for r in self.layers],
                    totals=self.totals(), memory=dict(self.memory),
                    predicted_seconds_per_batch=self.predicted_seconds_per_batch,
                    predicted_seconds_per_sample=self.predicted_seconds_per_sample,
                    measured=None if self.measured is None else dict(self.measured))

    def __str__(self):
        p = self.params
        mb = 2.0 ** 20
        ms = lambda v: "-" if v is None else f"{v * 1e3:.1f}"  # noqa: E731
        lines = [f"HE cost report: tile {self.tile_shape[0]}x{self.tile_shape[1]}, "
                 f"N={p.poly_modulus_degree}, primes {list(p.coeff_mod_bit_sizes)}, "
                 f"scale 2^{p.scale_bits}, depth {self.depth}, {self.batch} samples/ciphertext"
                 + (", encrypted weights" if self.encrypted_weights else ""),
                 f"{'layer':<10}{'orient':>6}{'grid':>8}{'tiles':>7}{'nz':>6}{'ct*pt':>7}"
                 f"{'ct*ct':>7}{'rot':>6}{'resc':>6}{'lvls':>5}{'weights MB':>11}"
                 f"{'pred ms':>9}{'meas ms':>9}"]
        for r in self.layers:
            g = "x".join(map(str, r["grid"]))
            wmb = (r["plaintext_bytes"] + r["weight_ciphertext_bytes"]) / mb
            lines.append(f"{r['name']:<10}{r['orientation']:>6}{g:>8}{r['n_tiles']:>7}"
                         f"{r['n_packed_tiles']:>6}{r['mul_plain']:>7}{r['mul_ct']:>7}"
                         f"{r['rotate']:>6}{r['rescale']:>6}{r['levels_used']:>5}"
                         f"{wmb:>11.1f}{ms(r['predicted_seconds']):>9}"
                         f"{ms(r['measured_seconds']):>9}")
        t = self.totals()
        m = self.memory
        lines.append(f"{'total':<24}{self.n_tiles:>7}{self.n_weight_ciphertexts:>6}"
                     f"{t['mul_plain']:>7}{t['mul_ct']:>7}{t['rotate']:>6}{t['rescale']:>6}"
                     f"{'':>5}{m['packed_model_bytes'] / mb:>11.1f}"
                     f"{ms(self.predicted_seconds_per_batch):>9}"
                     f"{ms(None if self.measured is None else self.measured['seconds_per_batch']):>9}")
        lines.append(f"memory: packed weights {m['packed_model_bytes'] / mb:.1f} MB, "
                     f"Galois keys {m['galois_key_bytes'] / mb:.1f} MB ({m['n_galois_keys']}), "
                     f"relin key {m['relin_key_bytes'] / mb:.1f} MB, one input batch "
                     f"{m['input_batch_bytes'] / mb:.1f} MB ({m['n_input_ciphertexts']} ct)")
        if self.predicted_seconds_per_sample is not None:
            lines.append(f"predicted: {ms(self.predicted_seconds_per_batch)} ms per batch, "
                         f"{ms(self.predicted_seconds_per_sample)} ms per sample (full batch)")
        if self.measured is not None:
            me = self.measured
            extra = (f", measured/predicted {me['measured_over_predicted']:.2f}"
                     if "measured_over_predicted" in me else "")
            lines.append(f"measured: {me['n_samples']} samples in {me['n_batches']} batch(es), "
                         f"{ms(me['seconds_per_batch'])} ms per batch, "
                         f"{ms(me['seconds_per_sample'])} ms per sample{extra}")
        return "\n".join(lines)

    def __repr__(self):
        return (f"HECostReport(tile_shape={self.tile_shape}, N={self.params.poly_modulus_degree}, "
                f"n_weight_ciphertexts={self.n_weight_ciphertexts})")


def he_cost_report(estimator, tile_shape="auto", params="auto", *, encrypt_weights=False,
                   batch_size="auto", n_stages=None, measure=True):
    """Op counts, memory and predicted latency of encrypted inference, without keys.

    Parameters
    ----------
    estimator : estimator
        Fitted network, or a Pipeline / HEPEx ending in one.
    tile_shape : (int, int) or "auto", default="auto"
        ``"auto"``: the HEPEx's tile shape if there is one, else chosen with the
        cost model (:func:`choose_tile_shape`).
    params : CKKSParams, dict or "auto", default="auto"
        Explicit parameters are validated (128-bit security).  A dict may hold
        ``poly_modulus_degree, coeff_mod_bit_sizes, scale_bits``.
    encrypt_weights : bool, default=False
    batch_size : int or "auto", default="auto"
        Samples expected per request (auto tile-shape choice only).
    n_stages : int, optional
        Only the first ``n_stages`` stages (e.g. an autoencoder's encoder).
    measure : bool, default=True
        Measure unit costs (cached per params) to predict latency.

    Returns
    -------
    HECostReport
    """
    param_kw = _param_kw(params)
    if isinstance(tile_shape, str):
        if tile_shape != "auto":
            raise ValueError("tile_shape must be (t1, t2) or 'auto'")
        tile_shape = default_tile_shape(estimator)
        if tile_shape is None:
            tile_shape, _ = choose_tile_shape(final_network(estimator), param_kw=param_kw,
                                              encrypt_weights=encrypt_weights,
                                              batch_size=batch_size)
    tile_shape = tuple(int(v) for v in tile_shape)
    stages = build_stages(estimator, tile_shape, n_stages)
    from .engine import required_depth
    p = params if isinstance(params, CKKSParams) else resolve_params(
        required_depth(stages, tile_shape), tile_shape, **param_kw)
    plan = compile_stages(stages, tile_shape, p, encrypt_weights=encrypt_weights,
                          materialize=False)
    return HECostReport(plan, unit_costs(plan.params) if measure else None)


def _param_kw(params):
    if isinstance(params, CKKSParams):
        return dict(poly_modulus_degree=params.poly_modulus_degree,
                    coeff_mod_bit_sizes=params.coeff_mod_bit_sizes,
                    scale_bits=params.scale_bits)
    if isinstance(params, str):
        if params != "auto":
            raise ValueError("params must be a CKKSParams, a dict or 'auto'")
        return {}
    if isinstance(params, dict):
        return dict(params)
    raise ValueError("params must be a CKKSParams, a dict or 'auto'")
