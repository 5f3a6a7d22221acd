"""skhepex.he.costs: unit costs, latency prediction and memory of a plan."""
import pytest
from he_stages import SQ, make_stages

import skhepex.he.costs as costs_mod
from skhepex.he import compile_stages
from skhepex.he.costs import (CLIENT_OPS, client_latency, memory_estimate, predict_latency,
                              tabulated_unit_costs, unit_costs)
from skhepex.he.params import choose_params
from skhepex.he.plan import ciphertext_nbytes
from skhepex.he.program import OPS


@pytest.fixture(scope="module")
def plan():
    return compile_stages(make_stages([13, 7, 9, 5], (4, 8), [SQ, None, SQ]), (4, 8))


def test_tabulated_costs_shape_and_scaling():
    p = choose_params(3, 32)
    c = tabulated_unit_costs(p)
    n_levels = len(p.coeff_mod_bit_sizes) - 1
    assert set(c) == set(OPS) | set(CLIENT_OPS)
    assert all(sorted(v) == list(range(n_levels)) for v in c.values())
    assert all(x > 0 for v in c.values() for x in v.values())
    for op in ("mul_plain", "add", "rescale"):                 # linear in the primes left
        assert c[op][0] / c[op][n_levels - 1] == pytest.approx(n_levels)
    # key switching ~ primes * (primes + 1)
    assert c["rotate"][0] / c["rotate"][n_levels - 1] == pytest.approx(
        n_levels * (n_levels + 1) / 2)
    assert c["rotate"] == c["relinearize"]
    big = tabulated_unit_costs(choose_params(7, 32))           # N = 16384: dearer per op
    assert big["mul_plain"][0] > c["mul_plain"][0]
    assert tabulated_unit_costs(p) == c                        # deterministic


def test_predict_latency_is_counts_times_costs(plan):
    c = tabulated_unit_costs(plan.params)
    pred = predict_latency(plan, c)
    assert len(pred) == len(plan.stages)
    for d, sec in zip(plan.level_ops, pred):
        assert sec == pytest.approx(sum(n * c[op][lvl] for (op, lvl), n in d.items()))
    assert predict_latency(plan, {}) == [0.0] * len(plan.stages)
    doubled = [{k: 2 * n for k, n in d.items()} for d in plan.level_ops]
    assert predict_latency(plan, c, doubled) == pytest.approx([2 * s for s in pred])


def test_unit_costs_measured_once_per_parameter_set(monkeypatch):
    calls = []

    def fake(params, repeats=10, client=None):
        calls.append((params, repeats))
        return {"mul_plain": {0: 1.0}}

    monkeypatch.setattr(costs_mod, "measure_unit_costs", fake)
    monkeypatch.setattr(costs_mod, "_MEASURED", {})
    p, q = choose_params(2, 32), choose_params(3, 32)
    assert unit_costs(p) == {"mul_plain": {0: 1.0}}
    assert unit_costs(p) is unit_costs(p)
    unit_costs(q, repeats=2)
    assert calls == [(p, 5), (q, 2)]
    assert unit_costs(p, measure=False) == tabulated_unit_costs(p)
    assert len(calls) == 2


def test_measure_unit_costs_on_seal():
    p = choose_params(1, 32)
    c = costs_mod.measure_unit_costs(p, repeats=1)
    n_levels = len(p.coeff_mod_bit_sizes) - 1
    assert set(c) == set(OPS) | set(CLIENT_OPS)
    for op, per_level in c.items():
        want = range(n_levels - 1) if op == "rescale" else range(n_levels)
        assert sorted(per_level) == list(want), op
        assert all(v > 0 for v in per_level.values())


def test_measure_unit_costs_with_a_clients_keys(plan, monkeypatch):
    from skhepex.he import seal_tools
    from skhepex.he.client import Client

    client = Client(plan)
    made = []
    real = seal_tools.make_context
    monkeypatch.setattr(seal_tools, "make_context", lambda p: made.append(p) or real(p))
    c = costs_mod.measure_unit_costs(plan.params, repeats=1, client=client)
    assert made == []                   # no second context, no new keys
    assert set(c) == set(OPS) | set(CLIENT_OPS)
    assert all(v > 0 for per_level in c.values() for v in per_level.values())
    with pytest.raises(ValueError, match="other CKKS parameters"):
        costs_mod.measure_unit_costs(choose_params(plan.depth + 1, 32), client=client)


def test_memory_estimate(plan):
    m = memory_estimate(plan)
    N, L = plan.params.poly_modulus_degree, len(plan.primes)
    ksk = L * ciphertext_nbytes(N, L + 1)
    n_rot = len(plan.rotation_steps)
    assert m["galois_key_bytes"] == n_rot * ksk and m["n_galois_keys"] == n_rot
    assert m["relin_key_bytes"] == ksk
    n_in = len(plan.stages[0].live_in)
    assert m["n_input_ciphertexts"] == n_in
    assert m["input_batch_bytes"] == n_in * ciphertext_nbytes(N, L)
    assert m["plaintext_bytes"] == m["packed_model_bytes"] == plan.plaintext_bytes()
    assert m["n_plaintexts"] == len(plan.pt_spec)
    assert m["n_weight_ciphertexts"] == m["weight_ciphertext_bytes"] == 0
    pe = compile_stages(make_stages([13, 7, 9, 5], (4, 8), [SQ, None, SQ]), (4, 8),
                        encrypt_weights=True)
    me = memory_estimate(pe)
    assert me["n_weight_ciphertexts"] == len(pe.encrypted_keys()) > 0
    assert me["n_plaintexts"] + me["n_weight_ciphertexts"] == len(pe.pt_spec)
    assert me["packed_model_bytes"] == pe.weight_bytes() > m["packed_model_bytes"]


def test_client_latency_counts_input_and_output_ciphertexts(plan):
    c = tabulated_unit_costs(plan.params)
    n_in, n_out = len(plan.stages[0].live_in), len(plan.stages[-1].rows)
    expected = (n_in * (c["encode"][0] + c["encrypt"][0])
                + n_out * (c["decrypt"][plan.depth] + c["decode"][plan.depth]))
    assert client_latency(plan, c) == pytest.approx(expected) and expected > 0
    assert client_latency(plan, {}) == 0.0
