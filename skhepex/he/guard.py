"""The client's guard against untrustworthy results: declared input box, value bounds.

At ``fit`` the predictor declares the box its inputs live in
(:func:`declared_input_range`) and gives the first prime as much headroom for
the largest value the network can reach on it (:mod:`skhepex.he.bounds`) as
the ring allows at a good scale.  Per request, :class:`RangeGuard` bounds the
request's values: when the parameters decrypt all of them, results above the
bound are refused; otherwise (the bound is a worst case over the box, often
100x the values actually reached) the client's sentinel slots catch a
wrap-around after decryption (:func:`skhepex.he.packing.sentinel_deviation`).
Non-finite or huge inputs are refused before encryption.
"""
from __future__ import annotations

import numpy as np
from sklearn.preprocessing import MinMaxScaler

from .bounds import (PrecisionError, decryptable_bound, interval_bounds, output_bound,
                     slot_bound, widen_range)

__all__ = ["declared_input_range", "RangeGuard", "INPUT_RANGE_MARGIN", "MAX_INPUT_MAGNITUDE"]

#: Slack added around a box taken from training data or a MinMaxScaler, as a
#: fraction of its widest side.
INPUT_RANGE_MARGIN = 0.05

#: Largest input magnitude encrypted inference accepts (CKKS encodes
#: ``x * 2**scale`` in 64-bit words and the bounds overflow far before).
MAX_INPUT_MAGNITUDE = 2.0 ** 20


def declared_input_range(input_range, network, preprocessor=None):
    """The box (in the network's encoded input order) encrypted inference is sized for.

    Parameters
    ----------
    input_range : "auto", None or (lo, hi)
        ``(lo, hi)``: scalars or per-feature arrays, in the space the network
        receives (after preprocessing); used as given.  ``"auto"``: the
        network's training box ``input_range_`` (the feature range of a final
        clipping ``MinMaxScaler`` when there is one), widened by
        :data:`INPUT_RANGE_MARGIN` of its widest side.
        ``None``: no declared box (parameters get the default headroom; the
        per-request checks still apply).
    network : estimator
        Fitted skhepex network (provides ``encode_input``).
    preprocessor : Pipeline, optional
        Client-side preprocessing.

    Returns
    -------
    box : (ndarray, ndarray) or None
        ``(lo, hi)`` in the order the first packed stage multiplies.
    """
    n = int(network.n_features_in_)
    widen = True
    if input_range is None:
        return None
    if not isinstance(input_range, str):
        try:
            lo, hi = (np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)) for v in input_range)
        except (TypeError, ValueError):
            raise ValueError(f"input_range must be 'auto', None or (lo, hi) with scalars or "
                             f"{n} values each; got {input_range!r}") from None
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(lo <= hi)):
            raise ValueError("input_range must be finite with lo <= hi")
        widen = False
    else:
        last = preprocessor.steps[-1][1] if preprocessor is not None else None
        if isinstance(last, MinMaxScaler) and last.clip:
            lo, hi = (np.full(n, float(v)) for v in last.feature_range)
            widen = False
        elif getattr(network, "input_range_", None) is not None:
            lo, hi = network.input_range_
        else:
            return None
    if widen:
        lo, hi = widen_range(lo, hi, INPUT_RANGE_MARGIN)
    z = network.encode_input(np.vstack([lo, hi]))
    return z[0].copy(), z[1].copy()


class RangeGuard:
    """Per-request bound check before encryption and after decryption.

    Parameters
    ----------
    stages : dict
        ``{"predict": stage dicts, "transform": stage dicts}`` of the packed plans.
    tile_shape : (int, int)
        Tile shape of the plans (unmasked slots of the last stage count).
    params : CKKSParams
        Their CKKS parameters (the decryptable range).
    box : (ndarray, ndarray) or None
        Declared input box (encoded order).
    bounds : dict, optional
        Per plan, :func:`~skhepex.he.bounds.output_bound` of ``box`` when the
        caller computed it already.

    Attributes
    ----------
    limit : float
        Largest magnitude the parameters decrypt correctly.
    bounds : dict
        Per plan: the bound of the declared box (``None`` without a box).
    """

    def __init__(self, stages, tile_shape, params, box, bounds=None):
        self.stages = stages
        self.tile_shape = tuple(tile_shape)
        self.limit = decryptable_bound(params)
        self.box = box
        self.bounds = bounds if bounds is not None else {
            k: (None if box is None else output_bound(st, *box, self.tile_shape))
            for k, st in stages.items()}

    def request_box(self, X):
        """The box a request's inputs span, joined with the declared one.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
            Encoded inputs.

        Returns
        -------
        lo, hi : ndarray
            Per-feature minimum and maximum.
        """
        lo, hi = X.min(axis=0), X.max(axis=0)
        if self.box is not None:
            lo, hi = np.minimum(lo, self.box[0]), np.maximum(hi, self.box[1])
        return lo, hi

    def check_request(self, X, which="predict"):
        """Bound a request's values; refuse inputs no check can cover.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
            Encoded inputs of one round trip.
        which : {"predict", "transform"}, default="predict"
            The plan the inputs are for.

        Returns
        -------
        out_bound : ndarray of shape (n_outputs,) or None
            Per-output bound when the parameters decrypt every value these
            inputs can produce (the result is then also checked against it);
            ``None`` when they may not: the client's sentinel slots catch a
            wrap-around after decryption.

        Raises
        ------
        PrecisionError
            Non-finite bounds (inputs so large that the arithmetic overflows).
        """
        stages = self.stages[which]
        if X.shape[0] == 0:
            return None
        lo, hi = self.request_box(X)
        rec = interval_bounds(stages, lo, hi)
        bound = slot_bound(rec, stages, self.tile_shape)
        if not np.isfinite(bound) or float(np.max(np.abs(X))) > MAX_INPUT_MAGNITUDE:
            raise PrecisionError(
                f"inputs up to |x| = {float(np.max(np.abs(X))):.3g} are too large for encrypted "
                f"inference (values of layer {stages[-1]['name']!r} cannot be bounded); scale "
                f"the inputs like the training data")
        return rec[-1]["out_hi"] if bound <= self.limit else None

    def check_result(self, raw, out_bound):
        """Refuse decrypted outputs above their bound (a wrap-around or a corrupted result).

        Parameters
        ----------
        raw : ndarray of shape (n_samples, n_outputs)
            Decrypted outputs (packed order).
        out_bound : ndarray of shape (n_outputs,)
            From :meth:`check_request`.

        Returns
        -------
        raw : ndarray
            Unchanged.

        Raises
        ------
        PrecisionError
            A decrypted value above its bound.
        """
        if out_bound is None:
            return raw
        tol = 1e-3 * max(1.0, float(np.max(out_bound, initial=0.0)))
        bad = np.abs(raw) > out_bound[None, :] + tol
        if np.any(bad):
            i, j = np.argwhere(bad)[0]
            raise PrecisionError(
                f"decrypted output {j} of sample {i} is {raw[i, j]:.6g}, beyond its bound "
                f"{out_bound[j]:.6g}: the encrypted result cannot be trusted (wrap-around, "
                f"corruption or a server that did not run this model)")
        return raw
