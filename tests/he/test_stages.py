"""skhepex.he.stages: a fitted network -> the engine's stage dicts (its TileLayout)."""
import copy

import numpy as np
import pytest
from he_stages import fit_tiny_mlp

from skhepex import TileLayout
from skhepex.he import PlainSimulator, build_stages, compile_stages, reference_forward


@pytest.fixture(scope="module")
def fitted():
    return fit_tiny_mlp()


@pytest.mark.parametrize("tile", [(4, 8), (8, 4), (1, 1)])
def test_stages_reproduce_the_network(fitted, tile):
    est, X = fitted
    stages = build_stages(est, tile)
    assert [s["orientation"] for s in stages] == ["W", "WT"]
    assert [s["block_shape"] for s in stages] == [tile, tile[::-1]]
    assert stages[0]["activation"] == (1.0, 0.0, 0.0) and stages[1]["activation"] is None
    assert set(stages[0]) == {"name", "matrix", "bias", "orientation", "block_shape",
                              "tile_mask", "activation"}
    raw = reference_forward(stages, est.encode_input(X))
    np.testing.assert_allclose(est.output_head(raw, "decision_function"),
                               est.decision_function(X), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(PlainSimulator(compile_stages(stages, tile)).predict(
        est.encode_input(X)), raw, atol=1e-10)
    layout = TileLayout(est, tile)
    for s, layer in zip(stages, layout.layers):
        np.testing.assert_array_equal(s["tile_mask"], layer.tile_mask)
    again = build_stages(est, tile, layout=layout)
    for a, b in zip(stages, again):
        np.testing.assert_array_equal(a["matrix"], b["matrix"])


def test_first_stages_only(fitted):
    est, X = fitted
    stages = build_stages(est, (4, 8), n_stages=1)
    assert len(stages) == 1
    raw = reference_forward(stages, est.encode_input(X))
    np.testing.assert_allclose(est.output_head(raw, "transform"), est.transform(X),
                               rtol=1e-12, atol=1e-12)


def test_pruned_tiles_are_masked(fitted):
    """A tile emptied by pruning has tile_mask False and compiles as skipped."""
    est = copy.deepcopy(fitted[0])
    layout = TileLayout(est, (4, 8))
    layer, wl = layout.layers[0], est.network_.weight_layers[0]
    dead = np.zeros(layer.n_units, bool)
    dead[1] = True
    wl.mask &= ~dead[layer.weight_units]
    est.network_.apply_masks()
    stages = build_stages(est, (4, 8))
    assert stages[0]["tile_mask"].sum() == stages[0]["tile_mask"].size - 1
    plan = compile_stages(stages, (4, 8))
    assert plan.op_counts[0]["n_skipped_tiles"] >= 1
    X = fitted[1]
    np.testing.assert_allclose(
        est.output_head(PlainSimulator(plan).predict(est.encode_input(X)), "decision_function"),
        est.decision_function(X), atol=1e-10)


def test_poly_activation_coefficients():
    est, _ = fit_tiny_mlp(activation="poly")
    act = build_stages(est, (4, 8))[0]["activation"]
    assert isinstance(act, tuple) and len(act) == 3 and all(type(v) is float for v in act)
    assert act == tuple(float(v) for v in est.network_.layers[1].polynomial())


def test_non_polynomial_activation_names_the_layer():
    est, _ = fit_tiny_mlp(activation="relu")
    with pytest.raises(ValueError, match=r"layer 'dense_0'.*'relu'.*not a polynomial"):
        build_stages(est, (4, 8))
