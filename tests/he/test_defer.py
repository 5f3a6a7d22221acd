"""Deferred first rescale: the first stage's products wait for its square, one prime fewer."""
import math

import numpy as np
import pytest
from he_stages import SQ, encrypted_round_trip, make_stages, make_X

from skhepex.he import (HEPredictor, PlainSimulator, compile_stages, reference_forward,
                        required_depth)
from skhepex.he.backends import SymbolicBackend
from skhepex.he.build import DEFER_MIN_SCALE_BITS, compile_packing, resolve_variant
from skhepex.he.compiler import can_defer
from skhepex.he.params import (DEFER_MIN_WEIGHT_BITS, MAX_LOG_Q, CKKSParams, choose_params,
                               prime_values)
from skhepex.he.plan import PtKey
from skhepex.he.serialization import (SerializationError, plan_from_bytes, plan_from_payload,
                                      plan_to_bytes, plan_to_payload)

TILE = (4, 8)
# a chain laid out for deferral at N=8192: s = 30, weights at 58 - 30 = 28 bits
DEFER_8192 = CKKSParams(8192, (44, 58, 58, 58), 30)


@pytest.fixture(scope="module")
def X():
    return make_X()


@pytest.mark.parametrize("depth", [2, 3, 4, 5])
def test_deferred_chains_are_secure_with_two_large_top_primes(depth):
    p = choose_params(depth, 64, defer=True)
    bits, s = p.coeff_mod_bit_sizes, p.scale_bits
    assert sum(bits) <= MAX_LOG_Q[p.poly_modulus_degree] and p.depth == depth
    top = bits[-3:-1]                                   # dropped first (special prime last)
    assert top[0] == top[1] and top[0] - s >= max(DEFER_MIN_WEIGHT_BITS, s - 4)
    assert bits[-1] >= max(bits[:-1]) and list(bits[1:-3]) == [s] * (depth - 2)
    assert bits[0] > s


def test_choose_params_defer_needs_two_levels():
    # one level: the output would stay at scale q_top, too large for q0 alone
    with pytest.raises(ValueError):
        choose_params(1, 64, defer=True)
    with pytest.raises(ValueError):
        compile_stages(make_stages([13, 7], TILE, [SQ]), TILE, defer_rescale=True)
    # no room for 24-bit weights above a 40-bit scale: a deferred chain keeps s <= 36
    assert choose_params(2, 64, defer=True, max_scale_bits=40).scale_bits <= 36


def test_can_defer_and_required_depth():
    stages = make_stages([13, 7, 5], TILE, [SQ, None])
    assert can_defer(stages, TILE)
    assert required_depth(stages, TILE, defer=True) == required_depth(stages, TILE) - 1
    assert not can_defer(stages, TILE, encrypt_weights=True)
    assert not can_defer(make_stages([13, 7, 5], TILE, [None, SQ]), TILE)
    assert not can_defer(make_stages([13, 7, 5], TILE, [(0.0, 1.0, 0.5), None]), TILE)
    assert can_defer(make_stages([13, 7], TILE, [SQ]), TILE)       # a single stage too
    wt_first = make_stages([13, 7, 9, 5], TILE, [SQ, None, None])[1:]
    wt_first[0]["activation"] = SQ                      # a "WT" first stage is masked
    assert not can_defer(wt_first, TILE)
    with pytest.raises(ValueError, match="defer_rescale"):
        compile_stages(make_stages([13, 7, 5], TILE, [None, SQ]), TILE, defer_rescale=True)


@pytest.mark.parametrize("sizes,acts", [([13, 7, 5], [SQ, None]),
                                        ([13, 7, 9, 5], [(0.5, -0.3, 0.2), SQ, None])])
def test_deferred_plan_scales_and_plaintext_simulation(sizes, acts, X):
    stages = make_stages(sizes, TILE, acts, seed=2)
    plan = compile_stages(stages, TILE, defer_rescale=True)
    plain = compile_stages(stages, TILE)
    assert plan.stages[0].defer_rescale and not any(st.defer_rescale for st in plan.stages[1:])
    assert plan.depth == plain.depth - 1
    np.testing.assert_allclose(PlainSimulator(plan).predict(X), reference_forward(stages, X),
                               atol=1e-10)
    primes, scale = plan.primes, plan.params.scale
    for key, (lvl, sc) in plan.pt_spec.items():
        if key.stage == 0 and key.kind == "w":          # weights at q_top / scale
            assert lvl == 0 and math.isclose(sc, primes[-1] / scale, rel_tol=1e-12)
        if key.stage == 0 and key.kind == "b":          # bias at the product's scale q_top
            assert math.isclose(sc, primes[-1], rel_tol=1e-12)
    # the ciphertext is back at the input scale after the second stage's rescale
    sym = SymbolicBackend(primes, scale, defer=True)
    ct = sym.mul_plain(sym.fresh, PtKey(0, "w", 0, 0))
    ct = sym.rescale(sym.relinearize(sym.square(ct)))
    assert math.isclose(ct[1], primes[-1], rel_tol=1e-12)
    ct = sym.rescale(sym.mul_plain(ct, PtKey(1, "w", 0, 0)))
    assert ct[0] == 2 and math.isclose(ct[1], scale, rel_tol=1e-12)


def test_uniform_chain_cannot_be_deferred():
    stages = make_stages([13, 7, 5], TILE, [SQ, None])
    uniform = CKKSParams(8192, (52, 38, 38, 38, 52), 38)
    with pytest.raises(ValueError, match="not laid out for a deferred"):
        compile_stages(stages, TILE, uniform, defer_rescale=True)
    # the automatic variant choice keeps the plain packing on it
    rec = resolve_variant({"predict": stages}, TILE, {}, params=uniform)
    assert rec["defer"] is False and rec["params"] == uniform


def test_a_deferred_chain_run_without_deferral_is_refused():
    # the chain of a deeper deferred network has levels enough for the plain packing,
    # but its square would be rescaled by a ~58-bit prime: scale 2**(2s - 58)
    deep = compile_stages(make_stages([13, 7, 9, 5], TILE, [SQ, SQ, None]), TILE,
                          defer_rescale=True).params
    stages = make_stages([13, 7, 5], TILE, [SQ, None])
    assert deep.depth >= required_depth(stages, TILE)
    with pytest.raises(ValueError, match="far below the input scale"):
        compile_stages(stages, TILE, deep)
    rec = resolve_variant({"predict": stages}, TILE, {}, params=deep)
    assert rec["defer"] and rec["params"] == deep


@pytest.mark.parametrize("sizes,acts,prefix", [([13, 7, 5], [SQ, None], 2),
                                               ([13, 7, 9, 5], [(0.5, -0.3, 0.2), SQ, None], 3),
                                               ([13, 7, 5], [(-0.25, 0.5, 0.1), None], 1)])
def test_deferred_plan_encrypted_matches_plaintext(sizes, acts, prefix, X):
    full = make_stages(sizes, TILE, acts, seed=3)
    # a prefix (e.g. an autoencoder's encoder) shares the chain of the whole network: a
    # single deferred stage leaves its output at scale q_top, one level down
    stages = full[:prefix]
    plan = compile_stages(stages, TILE, compile_stages(full, TILE, defer_rescale=True).params,
                          defer_rescale=True)
    Y, server = encrypted_round_trip(plan, X[:9])
    assert not server.context.has_secret_key()
    want = reference_forward(stages, X[:9])
    np.testing.assert_allclose(Y, want, atol=1e-4 * max(1.0, np.abs(want).max()))


def test_deferred_plan_round_trips_and_bad_flags_are_refused(X):
    stages = make_stages([13, 7, 9, 5], TILE, [SQ, SQ, None], seed=5)
    plan = compile_stages(stages, TILE, defer_rescale=True)
    back = plan_from_bytes(plan_to_bytes(plan))
    assert [st.defer_rescale for st in back.stages] == [True, False, False]
    np.testing.assert_array_equal(PlainSimulator(back).predict(X[:5]),
                                  PlainSimulator(plan).predict(X[:5]))
    header, arrays = plan_to_payload(plan)
    for s_i, value in ((1, True), (0, 1), (0, "yes")):
        bad = [dict(d) for d in header["stages"]]
        bad[s_i]["defer_rescale"] = value
        with pytest.raises(SerializationError, match="defer"):
            plan_from_payload(dict(header, stages=bad), arrays)
    old = [{k: v for k, v in d.items() if k != "defer_rescale"} for d in header["stages"]]
    assert not plan_from_payload(dict(header, stages=old), arrays).stages[0].defer_rescale


def test_resolve_variant_defers_when_cheaper_and_never_less_precise():
    tile = (8, 4)
    stages = make_stages([64, 128, 128, 10], tile, [SQ, SQ, None], seed=6, p_zero=0.0)
    kw = {"poly_modulus_degree": 16384, "scale_bits": 32}
    rec = resolve_variant({"predict": stages}, tile, kw)
    plain = resolve_variant({"predict": stages}, tile, kw, defer=False)
    assert rec["defer"] and not plain["defer"]
    assert rec["seconds"] < plain["seconds"]
    assert rec["params"].scale_bits == plain["params"].scale_bits == 32
    top = len(rec["params"].coeff_mod_bit_sizes) - 1
    assert top == len(plain["params"].coeff_mod_bit_sizes) - 2     # one prime fewer
    params, plans, _ = compile_packing({"predict": stages}, tile, kw)
    assert plans["predict"].stages[0].defer_rescale and params == rec["params"]
    # the plain packing gets a 40-bit scale: a deferred chain (<= 32 bits) is not taken,
    # unless forced
    auto = resolve_variant({"predict": stages}, tile, {"poly_modulus_degree": 16384})
    assert not auto["defer"] and auto["params"].scale_bits == 40
    forced = resolve_variant({"predict": stages}, tile, {"poly_modulus_degree": 16384},
                             defer=True)
    assert forced["defer"] and forced["params"].scale_bits == DEFER_MIN_SCALE_BITS
    # a requested scale that leaves no room for the weights: no deferred chain exists
    with pytest.raises(ValueError):
        resolve_variant({"predict": stages}, tile, {"scale_bits": 38}, defer=True)


def test_predictor_with_a_deferred_chain(X):
    from he_stages import fit_tiny_mlp

    est, _ = fit_tiny_mlp(hidden=(7,))
    # two rescale primes: only the deferred packing fits
    he = HEPredictor(est, prefit=True, tile_shape=TILE,
                     coeff_mod_bit_sizes=list(DEFER_8192.coeff_mod_bit_sizes),
                     scale_bits=DEFER_8192.scale_bits).fit()
    assert he.plan_.stages[0].defer_rescale and he.params_ == DEFER_8192
    assert prime_values(he.params_)[-1] / 2 ** 30 > 2 ** 27
    want = est.decision_function(X[:20])
    np.testing.assert_allclose(he.decision_function(X[:20]), want,
                               atol=1e-4 * max(1.0, np.abs(want).max()))
    np.testing.assert_array_equal(he.predict(X[:20]), est.predict(X[:20]))
    np.testing.assert_array_equal(he.predict(X[:3]), est.predict(X[:3]))    # another size
    assert not he.server_.context.has_secret_key()
