"""skhepex.he.planner: tile shape and parameters chosen with the cost model."""
import logging

import pytest
from he_stages import fit_tiny_mlp

from skhepex.he.costs import (client_latency, memory_estimate, predict_latency,
                              tabulated_unit_costs)
from skhepex.he.planner import (AUTO_LATENCY_TOLERANCE, AUTO_MAX_TILE_SLOTS,
                                AUTO_MEMORY_TOLERANCE, MAX_AUTO_MEMORY, select_candidate,
                                choose_tile_shape, evaluate_tile_shape, memory_budget,
                                resolve_tile_shape)

CANDIDATES = [(1, 1), (2, 4), (4, 8), (8, 8), (16, 16)]


@pytest.fixture(scope="module")
def est():
    return fit_tiny_mlp()[0]


def test_evaluate_tile_shape_record(est):
    rec = evaluate_tile_shape(est, (4, 8), measure=False)
    plan = rec["plan"]
    assert rec["tile_shape"] == (4, 8) and rec["params"] == plan.params
    assert all(v is None for v in plan.plaintexts.values())          # counting plan only
    costs = tabulated_unit_costs(plan.params)
    server = sum(predict_latency(plan, costs))
    # the request costs server evaluation plus the client's encryption/decryption
    assert rec["server_seconds_per_batch"] == pytest.approx(server)
    assert rec["client_seconds_per_batch"] == pytest.approx(client_latency(plan, costs))
    assert rec["client_seconds_per_batch"] > 0
    per_batch = server + rec["client_seconds_per_batch"]
    assert rec["seconds_per_batch"] == pytest.approx(per_batch)
    assert rec["samples_per_batch"] == plan.batch
    assert rec["seconds_per_sample"] == pytest.approx(per_batch / plan.batch)
    m = memory_estimate(plan)
    assert rec["memory_bytes"] == (m["packed_model_bytes"] + m["galois_key_bytes"]
                                   + m["relin_key_bytes"])
    small = evaluate_tile_shape(est, (4, 8), measure=False, batch_size=3)
    assert small["samples_per_batch"] == 3
    assert small["seconds_per_sample"] == pytest.approx(per_batch / 3)


def test_choice_is_the_fastest_of_the_leanest_among_the_fastest(est):
    shape, table = choose_tile_shape(est, candidates=CANDIDATES, measure=False)
    assert [r["tile_shape"] for r in table] == CANDIDATES
    fastest = min(r["seconds_per_sample"] for r in table)
    near = [r for r in table if r["seconds_per_sample"] <= AUTO_LATENCY_TOLERANCE * fastest]
    smallest = min(r["memory_bytes"] for r in near)
    lean = [r for r in near if r["memory_bytes"] <= AUTO_MEMORY_TOLERANCE * smallest]
    assert shape == min(lean, key=lambda r: r["seconds_per_sample"])["tile_shape"]
    assert shape == select_candidate(table)["tile_shape"]
    assert all(r["poly_modulus_degree"] in (8192, 16384) for r in table)


def _rec(shape, ms, mb):
    return dict(tile_shape=shape, seconds_per_sample=ms / 1e3, memory_bytes=mb << 20)


def test_select_candidate_trades_speed_only_for_real_memory_savings():
    fast, slow_lean = _rec((8, 4), 52.0, 5391), _rec((4, 8), 56.3, 5365)
    # 0.5% less memory does not buy an 8% slower layout (784-256-128-10 at 256 samples)
    assert select_candidate([slow_lean, fast]) is fast
    # half the memory does, within the latency tolerance
    half = _rec((4, 16), 56.3, 2600)
    assert select_candidate([fast, half]) is half
    # beyond the latency tolerance memory does not matter
    slow = _rec((2, 16), 52.0 * AUTO_LATENCY_TOLERANCE * 1.01, 100)
    assert select_candidate([fast, slow]) is fast
    # ties: smaller memory, then the shape
    a, b = _rec((2, 2), 10.0, 100), _rec((1, 4), 10.0, 100)
    assert select_candidate([a, b]) is b
    assert select_candidate([_rec((2, 2), 10.0, 101), b]) is b
    with pytest.raises(ValueError, match="no candidate"):
        select_candidate([])


def test_request_size_changes_the_choice(est):
    """Per-sample latency divides by min(batch_size, slots/(t1 t2)): for one-sample
    requests, big batches bring nothing."""
    _, table = choose_tile_shape(est, candidates=CANDIDATES, measure=False, batch_size=1)
    assert all(r["samples_per_batch"] == 1 for r in table)
    assert all(r["seconds_per_sample"] == pytest.approx(r["seconds_per_batch"]) for r in table)


def test_memory_budget_and_tile_limit(est):
    shape, table = choose_tile_shape(est, candidates=CANDIDATES, measure=False, max_memory=1)
    assert shape == min(table, key=lambda r: r["memory_bytes"])["tile_shape"]
    shape, table = choose_tile_shape(est, candidates=CANDIDATES, measure=False, max_tiles=2)
    assert {r["tile_shape"] for r in table} == {(16, 16)} and shape == (16, 16)


def test_memory_budget_default_and_predictor_parameter(est):
    """The default budget follows the machine (a quarter of RAM, capped); explicit wins."""
    from skhepex.he import HEPredictor

    assert 0 < memory_budget() <= MAX_AUTO_MEMORY
    assert memory_budget(12345) == 12345
    tight = HEPredictor(est, prefit=True, mode="simulate", max_memory=1).fit()
    _, table = choose_tile_shape(est, measure=False)
    assert tight.tile_shape_ == min(table, key=lambda r: r["memory_bytes"])["tile_shape"]
    with pytest.raises(ValueError, match="max_memory"):
        HEPredictor(est, prefit=True, mode="simulate", max_memory=0).fit()


def test_no_candidate_fits_explicit_params(est):
    with pytest.raises(ValueError, match="no tile shape fits.*explicit CKKS"):
        choose_tile_shape(est, candidates=CANDIDATES, measure=False,
                          param_kw=dict(coeff_mod_bit_sizes=(49, 40, 49)))


def test_default_grid(est):
    shape, table = choose_tile_shape(est, measure=False)
    assert shape in {r["tile_shape"] for r in table}
    assert all(a * b <= AUTO_MAX_TILE_SLOTS for a, b in (r["tile_shape"] for r in table))
    # tiles may fill a whole ciphertext (the best layout for one-sample requests)
    assert max(a * b for a, b in (r["tile_shape"] for r in table)) >= 4096
    one, t1 = choose_tile_shape(est, measure=False, batch_size=1)
    best = min(r["seconds_per_sample"] for r in t1)
    chosen = next(r for r in t1 if r["tile_shape"] == one)
    assert chosen["seconds_per_sample"] <= AUTO_LATENCY_TOLERANCE * best


def test_resolve_tile_shape(est, caplog):
    assert resolve_tile_shape(est, (8, 4)) == (8, 4)
    assert resolve_tile_shape(est, "auto", candidates=CANDIDATES, measure=False) == \
        choose_tile_shape(est, candidates=CANDIDATES, measure=False)[0]
    with pytest.raises(ValueError, match="'auto'"):
        resolve_tile_shape(est, "best")
    with pytest.raises(ValueError):
        resolve_tile_shape(est, (3, 4))

    class Carrier:                             # a wrapper that carries a tile shape
        def __skhepex_tile_shape__(self):
            return (2, 4)

        def __skhepex_network__(self):
            return est

    with caplog.at_level(logging.WARNING, logger="skhepex"):
        assert resolve_tile_shape(Carrier(), "auto") == (2, 4)
        assert resolve_tile_shape(Carrier(), (4, 4)) == (4, 4)
    assert "differs" in caplog.text


def test_automatic_packing_is_reproducible(est):
    """Tabulated unit costs: encrypted and simulated fits, twice, pick one packing."""
    from skhepex.he import HEPredictor

    fits = [HEPredictor(est, prefit=True, mode=mode).fit()
            for mode in ("encrypted", "simulate", "encrypted")]
    assert len({(he.tile_shape_, he.params_) for he in fits}) == 1
    small = {fits[i]._sized("predict", 1)[0].tile_shape for i in (0, 2)}
    assert len(small) == 1
