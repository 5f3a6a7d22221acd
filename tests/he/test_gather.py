"""Gathered last stage: the "WT" stage before it keeps no mask, one level less."""
import pickle

import numpy as np
import pytest
from he_stages import SQ, encrypted_round_trip, fit_digits_mlp, make_stages, make_X

from skhepex.he import (Client, HEPredictor, PlainSimulator, compile_stages, count_ops,
                        reference_forward, required_depth)
from skhepex.he.build import GATHER_MIN_SCALE_BITS, compile_packing, resolve_variant
from skhepex.he.compiler import final_gather
from skhepex.he.params import CKKSParams
from skhepex.he.packing import lane_rows, stage_steps
from skhepex.he.serialization import SerializationError, plan_from_bytes, plan_to_bytes

SIZES, ACTS = [13, 7, 9, 5], [SQ, (-0.25, 0.5, 0.1), None]


@pytest.fixture(scope="module")
def X():
    return make_X()


@pytest.mark.parametrize("tile", [(8, 8), (4, 2), (2, 8), (16, 1)])
def test_gathered_stage_is_exact_and_one_level_shallower(tile, X):
    stages = make_stages(SIZES, tile, ACTS, seed=1, p_zero=0.3)
    gathered = final_gather(stages, tile)
    assert gathered[-1]["gather"] and "gather" not in stages[-1]     # a copy
    assert required_depth(gathered, tile) == required_depth(stages, tile) - 1
    plain = compile_stages(stages, tile)
    plan = compile_stages(gathered, tile, plain.params)
    np.testing.assert_allclose(PlainSimulator(plan).predict(X), reference_forward(stages, X),
                               atol=1e-10)
    wt, last = plan.stages[1], plan.stages[2]
    assert last.gather and not wt.masked and wt.replicate_steps == []
    assert all(r.mask_key is None for r in wt.rows)
    assert last.merge_steps == wt.reduce_steps          # the "WT" stage's keys: none added
    t1 = tile[0]
    assert set(plan.rotation_steps) == set(plain.rotation_steps) - set(
        plain.stages[1].replicate_steps)
    assert len(plan.rotation_steps) == len(plain.rotation_steps) - int(np.log2(t1))
    # one weight vector per live lane (output row) of every live tile
    lanes = {k for r in last.rows for _, k in r.terms}
    assert all(k.i >= 0 for k in lanes)
    n_live = sum(int(np.any(last_w != 0.0)) for last_w in _lane_weights(stages[-1], tile))
    assert len(lanes) == n_live
    assert last.n_packed_tiles == plain.stages[2].n_packed_tiles
    ops, ops_plain = count_ops(gathered, tile, plain.params), count_ops(stages, tile)
    assert ops[1]["rotate"] < ops_plain[1]["rotate"]
    # one rotation per lane merged (lane i travels i rows: output i sits in row (-i) mod t1)
    assert ops[2]["rotate"] == sum(len({k.i for _, k in r.terms}) - 1 + int(np.log2(tile[1]))
                                   for r in last.rows)
    assert list(last.out_rows) == [(-i) % tile[0] for i in range(tile[0])]
    assert ops[1]["rescale"] < ops_plain[1]["rescale"]


def _lane_weights(st, tile):
    """(output row, input tile-column) weight vectors of a "W" stage."""
    W, t2 = st["matrix"], tile[1]
    Q = -(-W.shape[1] // t2)
    Wp = np.zeros((W.shape[0], Q * t2))
    Wp[:, :W.shape[1]] = W
    return [Wp[i, q * t2:(q + 1) * t2] for i in range(W.shape[0]) for q in range(Q)]


def test_final_gather_only_for_a_w_stage_after_a_wt_stage():
    assert final_gather(make_stages([13, 5], (4, 8), [None]), (4, 8)) is None
    assert final_gather(make_stages([13, 7, 9, 5, 4], (4, 8), [SQ, SQ, SQ, None]),
                        (4, 8)) is None                                   # last is "WT"
    assert final_gather(make_stages(SIZES, (1, 8), ACTS), (1, 8)) is None  # no mask anyway


def test_gather_flag_on_a_stage_that_cannot_gather_is_refused():
    tile = (4, 8)
    stages = make_stages(SIZES, tile, ACTS)
    stages[1]["gather"] = True                                        # a "WT" stage
    with pytest.raises(ValueError, match="gather=True needs"):
        compile_stages(stages, tile)
    stages = make_stages(SIZES, (1, 8), ACTS)
    stages[-1]["gather"] = True                                       # t1 == 1: no mask
    with pytest.raises(ValueError, match="gather=True needs"):
        compile_stages(stages, (1, 8))


def test_stage_steps_and_lane_rows():
    assert stage_steps("W", (4, 8), 2) == ([8, 16, 32], [], [])
    assert stage_steps("WT", (4, 8), 2, masked=True) == ([2, 4], [-2, -4], [])
    assert stage_steps("W", (4, 8), 2, gather=True) == ([8, 16, 32], [], [2, 4])
    assert list(lane_rows(4, False)) == [0, 1, 2, 3]
    assert list(lane_rows(4, True)) == [0, 3, 2, 1]


def test_zero_lanes_are_skipped_and_an_empty_row_is_a_constant(X):
    tile = (4, 8)
    stages = make_stages(SIZES, tile, ACTS, seed=2, p_zero=0.0, force_zero=False)
    stages[-1]["matrix"][1] = 0.0                        # output 1: no lane at all
    stages[-1]["matrix"][4:] = 0.0                       # second tile-row: all lanes zero
    gathered = final_gather(stages, tile)
    plan = compile_stages(gathered, tile)
    last = plan.stages[-1]
    assert {k.i for r in last.rows for _, k in r.terms} == {0, 2, 3}
    assert [r.p for r in last.rows] == [0] and list(last.const_out) == [1]
    np.testing.assert_allclose(PlainSimulator(plan).predict(X), reference_forward(stages, X),
                               atol=1e-10)


def test_gathered_plan_encrypted_matches_plaintext(X):
    tile = (4, 8)
    stages = make_stages(SIZES, tile, ACTS, seed=3)
    params, plans, _ = compile_packing({"predict": stages}, tile, {}, gather=True)
    plan = plans["predict"]
    assert plan.stages[-1].gather and params.depth == required_depth(stages, tile) - 1
    Y, server = encrypted_round_trip(plan, X[:9])
    assert not server.context.has_secret_key()
    want = reference_forward(stages, X[:9])
    np.testing.assert_allclose(Y, want, atol=1e-3 * max(1.0, np.abs(want).max()))


def test_gathered_plan_with_encrypted_weights(X):
    tile = (4, 8)
    stages = make_stages(SIZES, tile, ACTS, seed=4)
    _, plans, _ = compile_packing({"predict": stages}, tile, {"poly_modulus_degree": 16384},
                                  encrypt_weights=True, gather=True)
    plan = plans["predict"]
    assert plan.stages[-1].gather
    np.testing.assert_allclose(PlainSimulator(plan).predict(X[:9]),
                               reference_forward(stages, X[:9]), atol=1e-10)
    client = Client(plan)
    Y = client.decrypt(client.server_model().evaluate(client.encrypt(X[:9])))
    np.testing.assert_allclose(Y, reference_forward(stages, X[:9]), atol=1e-3)


def test_gathered_plan_round_trips_and_bad_lanes_are_refused():
    tile = (4, 8)
    plan = compile_stages(final_gather(make_stages(SIZES, tile, ACTS, seed=5), tile), tile)
    back = plan_from_bytes(plan_to_bytes(plan))
    assert back.stages[-1].gather and back.stages[-1].merge_steps == plan.stages[-1].merge_steps
    assert not back.stages[1].masked and back.rotation_steps == plan.rotation_steps
    X = make_X(5)
    np.testing.assert_array_equal(PlainSimulator(back).predict(X), PlainSimulator(plan).predict(X))

    from skhepex.he.serialization import plan_from_payload, plan_to_payload

    header, arrays = plan_to_payload(plan)
    rows = header["stages"][-1]["rows"]
    q, key = rows[0][1][0]
    for bad in (key.rsplit(":", 1)[0] + ":9",            # lane >= t1
                key.rsplit(":", 1)[0]):                  # one term not a lane
        rows[0][1][0] = [q, bad]
        with pytest.raises(SerializationError):
            plan_from_payload(header, arrays)
    rows[0][1][0] = [q, key]
    header["stages"][0]["rows"][0][1][0][1] += ":0"      # a lane in the first stage
    with pytest.raises(SerializationError):
        plan_from_payload(header, arrays)


def test_resolve_variant_prices_both_and_keeps_precision():
    tile = (16, 8)
    stages = make_stages([64, 128, 128, 10], tile, [SQ, SQ, None], seed=6, p_zero=0.0)
    rec = resolve_variant({"predict": stages}, tile, {}, defer=False)     # see test_defer
    plain = resolve_variant({"predict": stages}, tile, {}, gather=False, defer=False)
    forced = resolve_variant({"predict": stages}, tile, {}, gather=True, defer=False)
    assert rec["stage_sets"]["predict"][-1].get("gather")
    assert rec["seconds"] <= plain["seconds"]
    assert rec["params"].depth == plain["params"].depth - 1
    # never less precise than the plain packing (up to GATHER_MIN_SCALE_BITS)
    assert rec["params"].scale_bits >= min(GATHER_MIN_SCALE_BITS, plain["params"].scale_bits)
    assert forced["params"].depth == rec["params"].depth
    # fixed parameters: both variants are priced under them and the cheaper is kept
    fixed = CKKSParams(16384, (60, 40, 40, 40, 40, 40, 40, 60), 40)
    both = [resolve_variant({"predict": stages}, tile, {}, params=fixed, gather=g)
            for g in (False, True)]
    rec = resolve_variant({"predict": stages}, tile, {}, params=fixed)
    assert rec["params"] == fixed and all(b["params"] == fixed for b in both)
    assert rec["seconds"] == min(b["seconds"] for b in both)
    # a 28-bit scale is too coarse for a gathered packing: fixed parameters where only
    # the gathered variant fits are refused (unless asked for), automatic ones move up
    low = CKKSParams(8192, (37, 28, 28, 28, 28, 28, 41), 28)
    with pytest.raises(ValueError):
        resolve_variant({"predict": stages}, tile, {}, params=low)
    assert resolve_variant({"predict": stages}, tile, {}, params=low, gather=True)["params"] == low
    auto = resolve_variant({"predict": stages}, tile, {"scale_bits": "auto"}, defer=False)
    assert auto["params"].scale_bits >= GATHER_MIN_SCALE_BITS


def test_predictor_gathers_a_two_hidden_layer_mlp(digits):
    _, X_test, _, _ = digits
    est = fit_digits_mlp(digits, (32, 32), 30)
    he = HEPredictor(est, prefit=True, tile_shape=(8, 4)).fit()
    assert he.plan_.stages[-1].gather and not he.plan_.stages[1].masked
    want = est.decision_function(X_test[:20])
    got = he.decision_function(X_test[:20])
    np.testing.assert_allclose(got, want, atol=1e-3 * max(1.0, np.abs(want).max()))
    np.testing.assert_array_equal(he.predict(X_test[:20]), est.predict(X_test[:20]))
    # a request of another size (its own packing) still agrees
    np.testing.assert_array_equal(he.predict(X_test[:3]), est.predict(X_test[:3]))
    last = he.report_.layers[-1]
    assert last["gathered"] and last["n_plaintexts"] > last["n_packed_tiles"]
    assert not he.report_.layers[1]["gathered"] and "    Wg" in str(he.report_)
    clone = pickle.loads(pickle.dumps(he))
    assert clone.plan_.stages[-1].gather
    assert not he.server_.context.has_secret_key()
