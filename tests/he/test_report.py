"""skhepex.he.report: the cost report (op counts, memory, latency) without keys."""
import json

import pytest
from he_stages import fit_tiny_mlp

from skhepex.he import CKKSParams, HECostReport, build_stages, compile_stages, he_cost_report
from skhepex.he.costs import memory_estimate, predict_latency, tabulated_unit_costs
from skhepex.he.report import params_kwargs

OPS = ("mul_plain", "mul_ct", "rotate", "rescale", "relinearize")


@pytest.fixture(scope="module")
def est():
    return fit_tiny_mlp()[0]


def test_report_matches_the_plan(est):
    rep = he_cost_report(est, tile_shape=(4, 8), measure=False)
    plan = compile_stages(build_stages(est, (4, 8)), (4, 8), materialize=False)
    assert rep.tile_shape == (4, 8) and rep.params == plan.params
    assert (rep.batch, rep.depth) == (plan.batch, plan.depth)
    assert rep.unit_costs_source == "tabulated"
    assert rep.memory == memory_estimate(plan)
    pred = predict_latency(plan, tabulated_unit_costs(plan.params))
    for layer, oc, st, sec in zip(rep.layers, plan.op_counts, plan.stages, pred):
        assert layer["name"] == oc["stage"] and layer["grid"] == tuple(st.grid)
        assert all(layer[op] == oc[op] for op in OPS)
        assert layer["predicted_seconds"] == pytest.approx(sec)
        assert layer["measured_seconds"] is None
    assert rep.totals() == {op: sum(oc[op] for oc in plan.op_counts) for op in OPS}
    assert rep.n_tiles == sum(oc["n_tiles"] for oc in plan.op_counts)
    assert rep.n_weight_ciphertexts == sum(oc["n_packed_tiles"] for oc in plan.op_counts)
    assert rep.predicted_seconds_per_batch == pytest.approx(sum(pred))
    assert rep.predicted_seconds_per_sample == pytest.approx(sum(pred) / plan.batch)
    assert rep.measured is None


def test_report_without_costs_and_text(est):
    plan = compile_stages(build_stages(est, (8, 8)), (8, 8), materialize=False)
    rep = HECostReport(plan)
    assert rep.predicted_seconds_per_batch is None and rep.unit_costs_source is None
    text = str(rep)
    assert "tile 8x8" in text and "legend:" in text and "predicted" not in text
    assert repr(rep).startswith("HECostReport(tile_shape=(8, 8)")
    json.dumps(rep.to_dict())


def test_with_measurement_returns_a_new_report(est):
    rep = he_cost_report(est, tile_shape=(4, 8), measure=False)
    n_layers = len(rep.layers)
    m = rep.with_measurement([0.2] * n_layers, n_samples=64, n_batches=2, encrypt_seconds=0.1)
    assert rep.measured is None and all(r["measured_seconds"] is None for r in rep.layers)
    assert all(r["measured_seconds"] == pytest.approx(0.1) for r in m.layers)
    me = m.measured
    assert me["seconds"] == pytest.approx(0.2 * n_layers) and me["n_batches"] == 2
    assert me["seconds_per_batch"] == pytest.approx(0.1 * n_layers)
    assert me["seconds_per_sample"] == pytest.approx(0.2 * n_layers / 64)
    assert me["fill"] == pytest.approx(64 / (2 * rep.batch))
    assert me["measured_over_predicted"] == pytest.approx(
        me["seconds_per_batch"] / rep.predicted_seconds_per_batch)
    text = str(m)
    assert "measured: request of 64 samples in 2 batch(es)" in text
    assert "1/fill" in text                                     # partial batches explained
    d = json.loads(json.dumps(m.to_dict()))
    assert d["measured"]["n_samples"] == 64 and d["tile_shape"] == [4, 8]


def test_explicit_and_dict_params(est):
    p = CKKSParams(8192, (49, 40, 40, 40, 49), 40)
    rep = he_cost_report(est, tile_shape=(4, 8), params=p, measure=False)
    assert rep.params == p
    rep = he_cost_report(est, tile_shape=(4, 8), measure=False,
                         params=dict(coeff_mod_bit_sizes=(50, 40, 40, 40, 50)))
    assert rep.params.coeff_mod_bit_sizes == (50, 40, 40, 40, 50)
    with pytest.raises(ValueError, match="218"):
        he_cost_report(est, tile_shape=(4, 8), measure=False,
                       params=dict(poly_modulus_degree=8192,
                                   coeff_mod_bit_sizes=(60, 50, 50, 50, 60)))
    with pytest.raises(ValueError, match="tile_shape must be"):
        he_cost_report(est, tile_shape="square", measure=False)


def test_params_kwargs():
    p = CKKSParams(8192, (49, 40, 49), 40)
    assert params_kwargs(p) == dict(poly_modulus_degree=8192, coeff_mod_bit_sizes=(49, 40, 49),
                                    scale_bits=40)
    assert params_kwargs("auto") == {}
    assert params_kwargs({"scale_bits": 30}) == {"scale_bits": 30}
    with pytest.raises(ValueError, match="params must be"):
        params_kwargs("fast")


def test_encoder_only_and_auto_tile_shape(est):
    rep = he_cost_report(est, tile_shape=(4, 8), n_stages=1, measure=False)
    assert len(rep.layers) == 1
    auto = he_cost_report(est, measure=False)
    assert auto.tile_shape in {(a, b) for a in (1, 2, 4, 8, 16, 32, 64)
                               for b in (1, 2, 4, 8, 16, 32, 64)}
