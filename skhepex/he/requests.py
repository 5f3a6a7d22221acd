"""Serving one request: the packing sized to it, round trips, processes, progress.

With ``batch_size="auto"`` and ``tile_shape="auto"`` (the defaults) a
request of ``n`` samples runs on the packing suited to ``n``: the fitted plan
(``plan_``) is the throughput packing (full ciphertexts; for a model pruned
for a tile shape, that shape); a smaller request gets a plan chosen with the
cost model for its *request-size class* (the power of two at or above ``n``),
compiled on first use with the fitted CKKS parameters and keys or, when
predicted :data:`OWN_KEYS_GAIN` times faster, with parameters and keys of its
own (kept in this process only), and cached.  A class keeps the fitted plan
when that one is predicted to be as fast.  The
candidates are packed with the network's actual weights, so the tiles a
pruned model emptied are skipped in every shape they are empty in.  A request
larger than one batch is streamed in full batches and its tail goes on the
packing sized to the tail.
"""
from __future__ import annotations

import logging
import time

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.utils.validation import _num_samples

from ..estimators import get_tile_shape
from .build import compile_packing
from .costs import unit_costs
from .key_owner import cached
from .packing import has_static_sentinels
from .parallel import evaluate_serialized, package_array
from .planner import choose_tile_shape
from .report import HECostReport, params_kwargs
from .simulator import PlainSimulator
from .stages import build_stages

__all__ = ["RequestMixin", "request_size_class", "STREAM_BLOCK", "OWN_KEYS_GAIN"]

#: A request-sized packing that needs CKKS parameters (hence keys) of its own is
#: chosen only if predicted faster than the best one on the fitted keys by this factor.
OWN_KEYS_GAIN = 1.25

#: Samples preprocessed and encrypted at a time by ``predict`` (memory is bounded
#: by one block, whatever the request size).
STREAM_BLOCK = 4096

logger = logging.getLogger("skhepex")


def request_size_class(n_samples):
    """The request-size class of ``n_samples``: the power of two at or above it.

    Parameters
    ----------
    n_samples : int
        Samples in the request.

    Returns
    -------
    size : int
        Smallest power of two >= ``n_samples`` (1 for an empty request).
    """
    return 1 << max(int(n_samples) - 1, 0).bit_length()


def _progress(n_chunks, verbose, n_samples):
    """A progress callback: tqdm bar (when installed) or log lines, when ``verbose``."""
    if not verbose or n_chunks <= 1:
        return lambda done: None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        state = [0]

        def log(done):
            if done is not None:
                state[0] += done
                logger.info("evaluated %d/%d samples", state[0], n_samples)
        return log
    bar = tqdm(total=n_samples, unit="sample", desc="encrypted inference")
    return lambda done: bar.close() if done is None else bar.update(done)


class RequestMixin:
    """Request orchestration of :class:`~skhepex.he.HEPredictor`."""

    def _param_kw(self):
        """The CKKS parameter settings ``fit`` saw (values or ``"auto"``)."""
        return dict(poly_modulus_degree=self._fitted("poly_modulus_degree"),
                    coeff_mod_bit_sizes=self._fitted("coeff_mod_bit_sizes"),
                    scale_bits=self._fitted("scale_bits"),
                    security_level=self._fitted("security_level"))

    def _sized(self, which, n):
        """(plan, guard) for a request of ``n`` samples (request-sized when auto)."""
        main = self._plan(which), self.guard_
        if (self._fitted("batch_size") != "auto" or self._simulated()
                or not isinstance(self._fitted("tile_shape"), str)):
            return main     # an explicit tile shape or batch size is packed as given
        # the fitted plan is the throughput packing, unless it is the shape the
        # model was pruned for: then large requests are sized too (up to a full
        # ciphertext of samples)
        slots = self.params_.poly_modulus_degree // 2
        carried = get_tile_shape(self._parts.holder) is not None
        if n >= main[0].batch and not carried:
            return main
        size = min(request_size_class(n), slots) if carried else request_size_class(n)
        return cached(self._sized_plans, (which, size),
                      lambda: self._compile_sized(which, size, main))

    def _compile_sized(self, which, size, main):
        """Best packing for ``size`` samples: fitted keys, or parameters of its own.

        Candidates: the fitted plan, the best shape under the fitted CKKS
        parameters (same keys), and the best shape with parameters of its own
        (a second key set, generated on first use, kept in this process only);
        the last must be :data:`OWN_KEYS_GAIN` times faster to be chosen.
        """
        holder = self._parts.holder
        n_stages = len(main[0].stages)
        ew = self._fitted("encrypt_weights")
        common = dict(encrypt_weights=ew, batch_size=size, measure=False, n_stages=n_stages,
                      max_memory=self._fitted("max_memory"))
        fixed = params_kwargs(self.params_)

        def total(r):
            return r["seconds_per_batch"] * -(-size // r["samples_per_batch"])

        options = []                                 # (seconds, rank, shape, own params)
        try:
            shape, table = choose_tile_shape(holder, param_kw=fixed, **common)
            rec = {r["tile_shape"]: r for r in table}
            options.append((total(rec[shape]), 1, shape, False))
            if tuple(self.tile_shape_) in rec:
                options.append((total(rec[tuple(self.tile_shape_)]), 0, None, False))
        except ValueError:                           # no shape fits the fitted parameters
            pass
        if isinstance(self._fitted("coeff_mod_bit_sizes"), str):  # parameters chosen by skhepex
            try:
                shape, table = choose_tile_shape(holder, param_kw=self._param_kw(),
                                                 input_range=self.input_range_, **common)
                rec = {r["tile_shape"]: r for r in table}
                options.append((total(rec[shape]) * OWN_KEYS_GAIN, 2, shape, True))
            except ValueError:                       # no deeper packing fits either
                pass
        if not options:
            return main
        _, _, shape, own = min(options)
        if shape is None:
            return main
        stages = build_stages(holder, shape, n_stages)
        if own:
            params, plans, guard = compile_packing({which: stages}, shape, self._param_kw(),
                                                   self.input_range_, ew)
            plan = plans[which]
        else:
            _, plans, guard = compile_packing({which: stages}, shape, self._param_kw(),
                                              self.input_range_, ew, params=self.params_)
            plan = plans[which]
        logger.info("request size %d: tile %s, N=%d%s (fitted %s)", size, shape,
                    plan.params.poly_modulus_degree, " (own keys)" if own else "",
                    self.tile_shape_)
        return plan, guard

    def _chunks(self, X, which, plan, guard):
        """(start, stop, bound) of every round trip (guard checks, sentinel room)."""
        batch_size = self._fitted("batch_size")
        step = plan.batch if batch_size == "auto" else int(batch_size)
        out, start = [], 0
        while start < X.shape[0]:
            stop = min(start + step, X.shape[0])
            bound = guard.check_request(X[start:stop], which)
            if (bound is None and stop - start == plan.batch and plan.batch > 1
                    and not has_static_sentinels(plan)):
                # no headroom guarantee and no known slot in a full ciphertext: leave one
                # sample slot empty, its decoded values are known (see Client.decrypt)
                stop -= 1
            out.append((start, stop, bound))
            start = stop
        return out

    def _segments(self, X, which, request_size, final=True):
        """Round trips of ``X``: [(plan, guard, chunks)] and the rows they cover.

        Full ciphertext batches go on the request's packing; the tail of a
        request larger than one batch goes on the packing sized to the tail
        (one sample after 4096 costs a one-sample plan, not a second full
        batch).  With ``final=False`` (more rows follow) a partial tail is
        left for the next call: the rows covered are returned.
        """
        plan, guard = self._sized(which, request_size)
        chunks = self._chunks(X, which, plan, guard) if X.shape[0] else []
        if self._simulated() or not chunks:
            return [(plan, guard, chunks)], X.shape[0]
        tail = chunks[-1]
        if tail[1] - tail[0] >= plan.batch - 1:
            return [(plan, guard, chunks)], X.shape[0]
        if not final:
            return [(plan, guard, chunks[:-1])], tail[0]
        t_plan, t_guard = self._sized(which, tail[1] - tail[0])
        if t_plan is plan:
            return [(plan, guard, chunks)], X.shape[0]
        t_chunks = [(a + tail[0], b + tail[0], bound) for a, b, bound in
                    self._chunks(X[tail[0]:], which, t_plan, t_guard)]
        return [(plan, guard, chunks[:-1]), (t_plan, t_guard, t_chunks)], X.shape[0]

    def _round_trips(self, X, which, request_size=None, segments=None):
        """Yield (raw outputs, stats, encrypt s, decrypt s, plan) per round trip."""
        if segments is None:
            segments, _ = self._segments(
                X, which, X.shape[0] if request_size is None else request_size)
        for plan, guard, chunks in segments:
            if not chunks:
                continue
            if self._simulated():
                bound = guard.check_request(X, which)
                yield (guard.check_result(PlainSimulator(plan).predict(X), bound),
                       None, 0., 0., plan)
            else:
                yield from self._run_chunks(X, which, plan, guard, chunks)

    def _run_chunks(self, X, which, plan, guard, chunks):
        """Encrypt, evaluate (here or in worker processes) and decrypt ``chunks``."""
        t_enc, client = [], self._client_for(plan)

        def encrypted():
            for start, stop, _ in chunks:
                t0 = time.perf_counter()
                enc = client.encrypt(X[start:stop], plan)
                t_enc.append(time.perf_counter() - t0)
                yield enc

        server = self._server_for(plan, which)
        if effective_n_jobs(self.n_jobs) == 1 or len(chunks) == 1:
            results = (server.evaluate(enc) for enc in encrypted())
        else:
            if id(plan) not in self._packages:
                self._packages[id(plan)] = package_array(server)
            pkg, pkg_id = self._packages[id(plan)]
            results = (client.load_result(r, plan) for r in Parallel(
                n_jobs=self.n_jobs, return_as="generator", pre_dispatch="2*n_jobs")(
                delayed(evaluate_serialized)(pkg, pkg_id, enc.serialize())
                for enc in encrypted()))
        progress = _progress(len(chunks), self.verbose, chunks[-1][1] - chunks[0][0])
        for i, ((start, stop, bound), res) in enumerate(zip(chunks, results)):
            t0 = time.perf_counter()
            out = guard.check_result(
                client.decrypt(res, plan, n_samples=stop - start), bound)
            t_dec = time.perf_counter() - t0
            progress(stop - start)
            yield out, res.stats, t_enc[i], t_dec, plan
        progress(None)

    def _streamed(self, X, method="raw"):
        """Encrypted ``method`` of X, block by block: memory bounded by a block.

        ``method`` is an output-head method of the network (or ``"raw"``): it is
        applied per round trip and written into the preallocated result.
        """
        self._check_keys()
        which = "transform" if method == "transform" else "predict"
        n = _num_samples(X)
        head = self.network_estimator_.output_head
        result = None if n else head(np.zeros((0, self._plan(which).n_outputs)),
                                     "predict" if method == "raw" else method)
        if method == "raw":
            result = np.empty((n, self._plan(which).n_outputs))
        # a block feeds every worker twice: batches run in parallel within a block
        jobs = 1 if self._simulated() else effective_n_jobs(self.n_jobs)
        batch = self._sized(which, n)[0].batch if n else 1
        block = max(STREAM_BLOCK, (2 * jobs if jobs > 1 else 1) * batch)
        pos, pending = 0, None
        for lo in range(0, n, block):        # preprocessing and ciphertexts of one block
            Xc = self._client_input(X[lo:lo + block])
            if pending is not None:          # rows of the last block's partial batch
                Xc = np.concatenate([pending, Xc])
            segments, used = self._segments(Xc, which, n, final=lo + block >= n)
            pending = Xc[used:] if used < Xc.shape[0] else None
            for out, *_ in self._round_trips(Xc, which, segments=segments):
                y = out if method == "raw" else head(out, method)
                if result is None:
                    result = np.empty((n,) + y.shape[1:], dtype=y.dtype)
                result[pos:pos + y.shape[0]] = y
                pos += y.shape[0]
        return result

    def _raw(self, X, which="predict"):
        return self._streamed(X, "transform" if which == "transform" else "raw")

    def measure(self, X):
        """Run encrypted ``predict`` on ``X`` and return the report with measured times.

        Nothing is stored on the predictor (``report_`` is unchanged).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Raw input samples, as given to ``predict``; they are
            preprocessed, encrypted and evaluated in round trips of
            ``batch_size`` samples, on the packing sized to the request.

        Returns
        -------
        report : HECostReport
            The cost report of the packing the request ran on (``report_``
            for the fitted one), with measured seconds per layer and per
            sample, and client-side encryption/decryption times, summed over
            every round trip (a tail run on a smaller packing included).
        """
        self._check_keys()
        if self._simulated():
            raise RuntimeError("measure needs mode='encrypted' (simulate mode times nothing)")
        Xc = self._client_input(X)
        seconds = np.zeros(len(self.plan_.stages))
        t_enc = t_dec = 0.0
        n_batches, plans = 0, []
        for _, stats, te, td, plan in self._round_trips(Xc, "predict"):
            plans.append(plan)
            seconds += stats["stage_seconds"]
            n_batches += stats["n_batches"]
            t_enc, t_dec = t_enc + te, t_dec + td
        plan = plans[0] if plans else self.plan_     # the request's packing (not its tail's)
        report = self.report_ if plan is self.plan_ else \
            HECostReport(plan, unit_costs(plan.params, client=self._client_for(plan)), "measured")
        return report.with_measurement(list(seconds), Xc.shape[0], n_batches, t_enc, t_dec)
