"""The cost report of encrypted inference: per-layer op counts, memory, latency."""
from __future__ import annotations

import copy

from ..estimators import get_tile_shape
from .build import resolve_variant
from .costs import client_latency, memory_estimate, predict_latency
from .params import CKKSParams
from .planner import choose_tile_shape
from .stages import build_stages

__all__ = ["HECostReport", "he_cost_report", "params_kwargs"]

_OPS_FIELDS = ("mul_plain", "mul_ct", "rotate", "rescale", "relinearize")
_LEGEND = ("legend: ct*pt = ciphertext x plaintext multiplies, ct*ct = ciphertext x "
           "ciphertext multiplies (activations, encrypted weights), rot = rotations (key "
           "switches), resc = rescales, lvls = levels (primes) the layer consumes; orient "
           "Wg = gathered last layer (a weight vector per output neuron, no mask before "
           "it); op counts and times are per ciphertext batch")


class HECostReport:
    """Per-layer op counts, memory and latency of encrypted inference.

    Built by :func:`he_cost_report` (no keys) or by
    :class:`~skhepex.he.HEPredictor` (``report_``); measured latencies come
    from :meth:`HEPredictor.measure`, which returns a new report.

    Parameters
    ----------
    plan : CompiledPlan
        The packed network.
    costs : dict, optional
        Unit costs ``{op: {level: seconds}}``; without them no latency is predicted.
    unit_costs_source : str, default="measured"
        Where ``costs`` come from (``"measured"`` or ``"tabulated"``).

    Attributes
    ----------
    tile_shape : (int, int)
    params : CKKSParams
    batch : int
        Samples per ciphertext (slots / (t1 t2)).
    depth : int
        Levels consumed.
    layers : list of dict
        Per layer: ``name, orientation, gathered, grid, n_tiles, n_nonzero_tiles,
        n_packed_tiles, n_plaintexts, mul_plain, mul_ct, rotate, rescale, relinearize,
        levels_used, plaintext_bytes, weight_ciphertext_bytes,
        predicted_seconds`` (per ciphertext batch) and, once measured,
        ``measured_seconds`` (per ciphertext batch).
    memory : dict
        Packed weights, Galois keys, relin keys and one input batch (bytes).
    predicted_seconds_per_batch, predicted_seconds_per_sample : float or None
        Server evaluation, per ciphertext batch and per sample of a full batch.
    predicted_client_seconds_per_batch : float or None
        Client encode + encrypt of the inputs and decrypt + decode of the
        outputs, per ciphertext batch.
    measured : dict or None
        ``n_samples, n_batches, seconds, seconds_per_batch, seconds_per_sample,
        encrypt_seconds, decrypt_seconds, fill`` of a measured run.
    """

    def __init__(self, plan, costs=None, unit_costs_source="measured"):
        self.tile_shape = tuple(plan.tile_shape)
        self.params = plan.params
        self.batch = int(plan.batch)
        self.depth = int(plan.depth)
        self.encrypted_weights = bool(plan.encrypted_weights)
        self.unit_costs_source = unit_costs_source if costs is not None else None
        self.memory = memory_estimate(plan)
        pred = predict_latency(plan, costs) if costs is not None else None
        self.layers = []
        for i, oc in enumerate(plan.op_counts):
            rec = {k: oc[k] for k in ("stage", "orientation", "n_tiles", "n_nonzero_tiles",
                                      "n_packed_tiles", "n_skipped_tiles", "n_live_rows",
                                      "n_const_rows", "levels_used", "plaintext_bytes",
                                      "n_plaintexts",
                                      "weight_ciphertext_bytes", "add", "add_plain",
                                      "negate") + _OPS_FIELDS}
            rec["name"] = rec.pop("stage")
            rec["grid"] = tuple(int(v) for v in plan.stages[i].grid)
            rec["gathered"] = bool(plan.stages[i].gather)
            rec["predicted_seconds"] = None if pred is None else float(pred[i])
            rec["measured_seconds"] = None
            self.layers.append(rec)
        self.predicted_seconds_per_batch = None if pred is None else float(sum(pred))
        self.predicted_client_seconds_per_batch = (None if costs is None
                                                   else client_latency(plan, costs))
        self.predicted_seconds_per_sample = (None if pred is None
                                             else self.predicted_seconds_per_batch / self.batch)
        self.measured = None

    def with_measurement(self, stage_seconds, n_samples, n_batches, encrypt_seconds=None,
                         decrypt_seconds=None):
        """A copy of this report with measured per-layer times filled in.

        Parameters
        ----------
        stage_seconds : list of float
            Seconds per stage, summed over all batches.
        n_samples, n_batches : int
            Samples and ciphertext batches of the run.
        encrypt_seconds, decrypt_seconds : float, optional
            Client-side times.

        Returns
        -------
        report : HECostReport
            A new report; this one is unchanged.
        """
        rep = copy.deepcopy(self)
        nb = max(int(n_batches), 1)
        for rec, s in zip(rep.layers, stage_seconds):
            rec["measured_seconds"] = float(s) / nb
        total = float(sum(stage_seconds))
        n = max(int(n_samples), 1)
        rep.measured = dict(n_samples=int(n_samples), n_batches=nb, seconds=total,
                            seconds_per_batch=total / nb, seconds_per_sample=total / n,
                            encrypt_seconds=encrypt_seconds, decrypt_seconds=decrypt_seconds,
                            fill=n / (nb * self.batch))
        if self.predicted_seconds_per_batch:
            rep.measured["measured_over_predicted"] = (total / nb
                                                       / self.predicted_seconds_per_batch)
        return rep

    @property
    def n_tiles(self):
        """int : Weight tiles over all layers."""
        return sum(r["n_tiles"] for r in self.layers)

    @property
    def n_weight_ciphertexts(self):
        """int : Packed weight tiles (plaintexts, or ciphertexts with encrypt_weights).

        A tile of a gathered layer counts once, although it is packed as one
        plaintext per live output neuron (see ``n_plaintexts`` of the layers).
        """
        return sum(r["n_packed_tiles"] for r in self.layers)

    def totals(self):
        """Op counts summed over layers (per ciphertext batch).

        Returns
        -------
        totals : dict
            Op name -> count per ciphertext batch, summed over layers.
        """
        return {op: int(sum(r[op] for r in self.layers)) for op in _OPS_FIELDS}

    def to_dict(self):
        """JSON-friendly dictionary of the whole report.

        Returns
        -------
        report : dict
            Every field of the report, JSON-serialisable.
        """
        return dict(tile_shape=list(self.tile_shape), params=self.params.to_dict(),
                    batch=self.batch, depth=self.depth,
                    encrypted_weights=self.encrypted_weights,
                    unit_costs_source=self.unit_costs_source,
                    n_tiles=self.n_tiles, n_weight_ciphertexts=self.n_weight_ciphertexts,
                    layers=[dict(r, grid=list(r["grid"])) for r in self.layers],
                    totals=self.totals(), memory=dict(self.memory),
                    predicted_seconds_per_batch=self.predicted_seconds_per_batch,
                    predicted_seconds_per_sample=self.predicted_seconds_per_sample,
                    predicted_client_seconds_per_batch=self.predicted_client_seconds_per_batch,
                    measured=None if self.measured is None else dict(self.measured))

    def _table(self, ms):
        mb = 2.0 ** 20
        lines = [f"{'layer':<10}{'orient':>6}{'grid':>8}{'tiles':>7}{'nz':>6}{'ct*pt':>7}"
                 f"{'ct*ct':>7}{'rot':>6}{'resc':>6}{'lvls':>5}{'weights MB':>11}"
                 f"{'pred ms':>9}{'meas ms':>9}"]
        for r in self.layers:
            g = "x".join(map(str, r["grid"]))
            wmb = (r["plaintext_bytes"] + r["weight_ciphertext_bytes"]) / mb
            orient = r["orientation"] + ("g" if r["gathered"] else "")
            lines.append(f"{r['name']:<10}{orient:>6}{g:>8}{r['n_tiles']:>7}"
                         f"{r['n_packed_tiles']:>6}{r['mul_plain']:>7}{r['mul_ct']:>7}"
                         f"{r['rotate']:>6}{r['rescale']:>6}{r['levels_used']:>5}"
                         f"{wmb:>11.1f}{ms(r['predicted_seconds']):>9}"
                         f"{ms(r['measured_seconds']):>9}")
        t = self.totals()
        meas = None if self.measured is None else self.measured["seconds_per_batch"]
        lines.append(f"{'total':<24}{self.n_tiles:>7}{self.n_weight_ciphertexts:>6}"
                     f"{t['mul_plain']:>7}{t['mul_ct']:>7}{t['rotate']:>6}{t['rescale']:>6}"
                     f"{'':>5}{self.memory['packed_model_bytes'] / mb:>11.1f}"
                     f"{ms(self.predicted_seconds_per_batch):>9}{ms(meas):>9}")
        return lines

    def __str__(self):
        p, m, mb = self.params, self.memory, 2.0 ** 20
        ms = lambda v: "-" if v is None else f"{v * 1e3:.1f}"  # noqa: E731
        lines = [f"HE cost report: tile {self.tile_shape[0]}x{self.tile_shape[1]}, "
                 f"N={p.poly_modulus_degree}, primes {list(p.coeff_mod_bit_sizes)}, "
                 f"scale 2^{p.scale_bits}, depth {self.depth}, {self.batch} samples per "
                 f"ciphertext" + (", encrypted weights" if self.encrypted_weights else "")]
        lines += self._table(ms)
        lines.append(f"memory: packed weights {m['packed_model_bytes'] / mb:.1f} MB, "
                     f"Galois keys {m['galois_key_bytes'] / mb:.1f} MB ({m['n_galois_keys']}), "
                     f"relin key {m['relin_key_bytes'] / mb:.1f} MB, one input batch "
                     f"{m['input_batch_bytes'] / mb:.1f} MB ({m['n_input_ciphertexts']} ct)")
        if self.predicted_seconds_per_sample is not None:
            lines.append(f"predicted ({self.unit_costs_source} unit costs): server "
                         f"{ms(self.predicted_seconds_per_batch)} ms per batch, "
                         f"{ms(self.predicted_seconds_per_sample)} ms per sample when the "
                         f"{self.batch} sample slots of a batch are all used; client "
                         f"(encode, encrypt, decrypt, decode) "
                         f"{ms(self.predicted_client_seconds_per_batch)} ms per batch")
        if self.measured is not None:
            me = self.measured
            extra = (f", measured/predicted {me['measured_over_predicted']:.2f}"
                     if "measured_over_predicted" in me else "")
            lines.append(f"measured: request of {me['n_samples']} samples in "
                         f"{me['n_batches']} batch(es) ({100 * me['fill']:.0f}% of the slots "
                         f"used), {ms(me['seconds_per_batch'])} ms per batch, "
                         f"{ms(me['seconds_per_sample'])} ms per sample{extra}")
            if me["fill"] < 0.99:
                lines.append("  (a batch costs the same whether its slots are full or not: "
                             "per sample, a partial batch costs 1/fill times the full-batch "
                             "figure; pass batch_size=<request size> to pack for small "
                             "requests)")
        lines.append(_LEGEND)
        return "\n".join(lines)

    def __repr__(self):
        return (f"HECostReport(tile_shape={self.tile_shape}, N={self.params.poly_modulus_degree}, "
                f"n_weight_ciphertexts={self.n_weight_ciphertexts})")


def params_kwargs(params):
    """``resolve_params`` keyword arguments from a CKKSParams, a dict or "auto".

    Parameters
    ----------
    params : CKKSParams, dict or "auto"

    Returns
    -------
    kwargs : dict
    """
    if isinstance(params, CKKSParams):
        return dict(poly_modulus_degree=params.poly_modulus_degree,
                    coeff_mod_bit_sizes=params.coeff_mod_bit_sizes,
                    scale_bits=params.scale_bits)
    if isinstance(params, str) and params == "auto":
        return {}
    if isinstance(params, dict):
        return dict(params)
    raise ValueError("params must be a CKKSParams, a dict or 'auto'")


def he_cost_report(estimator, tile_shape="auto", params="auto", *, encrypt_weights=False,
                   batch_size="auto", n_stages=None, measure=True):
    """Op counts, memory and predicted latency of encrypted inference, without keys.

    Parameters
    ----------
    estimator : estimator
        Fitted network, or a Pipeline / HEPEx / HEPredictor holding one.
    tile_shape : (int, int) or "auto", default="auto"
        ``"auto"``: the tile shape the estimator carries (HEPEx, fitted
        HEPredictor) if any, else chosen with the cost model.
    params : CKKSParams, dict or "auto", default="auto"
        Explicit parameters are validated (128-bit security).  A dict may hold
        ``poly_modulus_degree, coeff_mod_bit_sizes, scale_bits``.
    encrypt_weights : bool, default=False
        Count the weights as ciphertexts (ct x ct products).
    batch_size : int or "auto", default="auto"
        Samples expected per request (auto tile-shape choice only).
    n_stages : int, optional
        Only the first ``n_stages`` stages (e.g. an autoencoder's encoder).
    measure : bool, default=True
        Predict latency with unit costs measured on this machine (cached per
        parameter set); ``False`` uses the tabulated costs (no SEAL).

    Returns
    -------
    report : HECostReport
        Per-layer op counts, memory and predicted latency.
    """
    param_kw = params_kwargs(params)
    if isinstance(tile_shape, str):
        if tile_shape != "auto":
            raise ValueError("tile_shape must be (t1, t2) or 'auto'")
        tile_shape = get_tile_shape(estimator)
        if tile_shape is None:
            tile_shape, _ = choose_tile_shape(estimator, param_kw=param_kw,
                                              encrypt_weights=encrypt_weights,
                                              batch_size=batch_size, measure=measure)
    stages = build_stages(estimator, tile_shape, n_stages)
    rec = resolve_variant({"predict": stages}, tile_shape, param_kw,
                          encrypt_weights=encrypt_weights, measure=measure,
                          params=params if isinstance(params, CKKSParams) else None)
    return HECostReport(rec["plans"]["predict"], rec["costs"],
                        "measured" if measure else "tabulated")
