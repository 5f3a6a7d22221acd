"""skhepex.he.compiler: stage dicts -> packed plan (levels, skipped tiles, folding)."""
import numpy as np
import pytest
from he_stages import SQ, make_stages, make_X

from skhepex.he import (Client, PlainSimulator, compile_stages, count_ops, memory_estimate,
                        reference_forward, required_depth)
from skhepex.he.compiler import poly_value
from skhepex.he.params import CKKSParams


@pytest.fixture(scope="module")
def X():
    return make_X()


def test_zero_tiles_skipped():
    tile = (4, 8)
    stages = make_stages([13, 7, 5], tile, [SQ, None], seed=3, p_zero=0.0, force_zero=False)
    dense = count_ops(stages, tile)
    W = stages[0]["matrix"]
    W[0:4, 8:16] = 0.0
    stages[0]["tile_mask"][0, 1] = False
    sparse = count_ops(stages, tile)
    assert sparse[0]["n_skipped_tiles"] == dense[0]["n_skipped_tiles"] + 1
    assert sparse[0]["mul_plain"] == dense[0]["mul_plain"] - 1
    assert sparse[0]["plaintext_bytes"] < dense[0]["plaintext_bytes"]
    # a whole empty tile-row becomes a compile-time constant: no multiply, no rotation
    W[4:8, :] = 0.0
    stages[0]["tile_mask"][1, :] = False
    row = count_ops(stages, tile)
    assert row[0]["n_const_rows"] == 1 and row[0]["rotate"] < dense[0]["rotate"]
    X = np.random.default_rng(0).random((5, 13))
    plan = compile_stages(stages, tile)
    np.testing.assert_allclose(PlainSimulator(plan).predict(X), reference_forward(stages, X),
                               atol=1e-10)


def test_nonzero_masked_tile_rejected():
    stages = make_stages([13, 7], (4, 8), [None], p_zero=0.0, force_zero=False)
    stages[0]["tile_mask"][0, 0] = False
    with pytest.raises(ValueError, match="all-zero"):
        compile_stages(stages, (4, 8))


def test_non_polynomial_activation_rejected():
    stages = make_stages([13, 7], (4, 8), [("relu",)])
    with pytest.raises(ValueError, match="layer0"):
        compile_stages(stages, (4, 8))


def test_required_depth():
    assert required_depth(make_stages([13, 7, 5], (4, 8), [SQ, None])) == 3
    assert required_depth(make_stages([13, 7, 9, 5], (4, 8), [SQ, SQ, None])) == 6


def test_t1_one_needs_no_mask(X):
    sizes, acts = [13, 7, 9, 5], [SQ, SQ, None]
    assert required_depth(make_stages(sizes, (8, 8), acts)) == 6
    stages = make_stages(sizes, (1, 8), acts, p_zero=0.2)
    assert required_depth(stages) == 5
    plan = compile_stages(stages, (1, 8))
    assert plan.params.poly_modulus_degree == 8192 and plan.depth == 5
    assert not any(st.masked for st in plan.stages)
    np.testing.assert_allclose(PlainSimulator(plan).predict(X), reference_forward(stages, X),
                               atol=1e-10)
    client = Client(plan)
    Y = client.decrypt(client.server_model().evaluate(client.encrypt(X[:9])))
    np.testing.assert_allclose(Y, reference_forward(stages, X[:9]), atol=1e-3)


def test_tiles_below_encoding_resolution_skipped(X):
    """Weights that encode to 0 (|w| * prime < 1/2) are skipped: SEAL would raise
    'result ciphertext is transparent' on the all-zero product."""
    tile = (1, 1)
    stages = make_stages([13, 7, 5], tile, [SQ, None], p_zero=0.0, force_zero=False)
    stages[0]["matrix"][:, 0] = 1e-14            # e.g. a feature that is always 0
    plan = compile_stages(stages, tile)
    assert plan.op_counts[0]["n_packed_tiles"] == 7 * 13 - 7
    client = Client(plan)
    Y = client.decrypt(client.server_model().evaluate(client.encrypt(X[:5])))
    np.testing.assert_allclose(Y, reference_forward(stages, X[:5]), atol=1e-3)


# ------------------------------------------------------------------ folding
@pytest.mark.parametrize("abc,levels", [(None, 0), ((0.0, 2.0, 0.5), 0), ((1.0, 0.0, 0.0), 1),
                                        ((-0.25, 0.5, 0.1), 1), ((4.0, -1.0, 0.0), 1)])
def test_activation_folding_levels(abc, levels, X):
    """a != 0 costs one level (sqrt|a| folded into the stage); a == 0 none."""
    stages = make_stages([13, 7], (4, 8), [abc])
    plan = compile_stages(stages, (4, 8))
    assert plan.depth == required_depth(stages) == 1 + levels
    st = plan.stages[0]
    assert st.act_sign == (0 if abc is None or abc[0] == 0 else int(np.sign(abc[0])))
    kinds = {k.kind for k in plan.pt_spec}
    assert ("l" in kinds) == (abc is not None and abc[0] != 0 and abc[1] != 0)
    assert ("c" in kinds) == (abc is not None and abc[0] != 0 and abc[2] != 0)
    np.testing.assert_allclose(PlainSimulator(plan).predict(X), reference_forward(stages, X),
                               atol=1e-10)


def test_constant_rows_fold_into_the_next_bias(X):
    """A dead tile-row is a constant act(bias): the next stage's bias absorbs it,
    or it is returned in clear for the last stage."""
    tile = (4, 8)
    stages = make_stages([13, 7, 5], tile, [(0.5, -0.3, 0.2), SQ], seed=8, p_zero=0.0,
                         force_zero=False)
    stages[0]["matrix"][4:8, :] = 0.0
    stages[0]["tile_mask"][1, :] = False
    plan = compile_stages(stages, tile)
    assert set(plan.stages[0].const_out) == {1}
    np.testing.assert_allclose(plan.stages[0].const_out[1][:3],
                               poly_value(stages[0]["bias"][4:7], (0.5, -0.3, 0.2)))
    assert plan.stages[1].live_in == [0]
    np.testing.assert_allclose(PlainSimulator(plan).predict(X), reference_forward(stages, X),
                               atol=1e-10)
    # last stage entirely dead: outputs are constants, no ciphertext comes back
    stages[1]["matrix"][:] = 0.0
    stages[1]["tile_mask"][:] = False
    plan = compile_stages(stages, tile)
    assert plan.stages[-1].rows == [] and plan.stages[-1].const_out
    np.testing.assert_allclose(PlainSimulator(plan).predict(X), reference_forward(stages, X),
                               atol=1e-10)


def test_plaintext_levels_and_scales():
    """Weights/masks are encoded at the scale of the prime the next rescale drops,
    biases/constants at the ciphertext's exact scale: the scale is preserved."""
    plan = compile_stages(make_stages([13, 7, 9, 5], (4, 8), [SQ, (0.5, -0.3, 0.2), None]),
                          (4, 8))
    primes, L, s = plan.primes, len(plan.primes) - 1, plan.params.scale
    for key, (lvl, scale) in plan.pt_spec.items():
        assert 0 <= lvl <= plan.depth and (lvl < plan.depth or key.role != "mul")
        if key.role == "mul":
            assert scale == float(primes[L - lvl])
    b0 = [v for k, v in plan.pt_spec.items() if k.stage == 0 and k.kind == "b"]
    assert all(lvl == 1 and scale == pytest.approx(s) for lvl, scale in b0)


# ------------------------------------------------------------------ inputs checked
def _stages():
    return make_stages([13, 7, 5], (4, 8), [SQ, None])


@pytest.mark.parametrize("edit,match", [
    (lambda s: s[1].update(orientation="W"), "alternate"),
    (lambda s: s[0].update(orientation="X"), "orientation must be"),
    (lambda s: s[0].update(block_shape=(8, 4)), "block_shape"),
    (lambda s: s[0].update(bias=np.zeros(6)), "bias length"),
    (lambda s: s[1].update(matrix=np.zeros((5, 6))), "n_in 6 != previous n_out 7"),
    (lambda s: s[0].update(tile_mask=np.ones((3, 2), bool)), "tile_mask shape"),
    (lambda s: s[0].update(activation=(1.0, 2.0)), "cannot be evaluated"),
    (lambda s: s[0].update(activation=(1.0, float("nan"), 0.0)), "cannot be evaluated"),
    (lambda s: s[0].update(activation="square"), "cannot be evaluated"),
])
def test_invalid_stages_rejected(edit, match):
    stages = _stages()
    edit(stages)
    with pytest.raises(ValueError, match=match):
        compile_stages(stages, (4, 8))


def test_invalid_arguments_rejected():
    with pytest.raises(ValueError, match="empty network"):
        compile_stages([], (4, 8))
    with pytest.raises(ValueError, match="params must be"):
        compile_stages(_stages(), (4, 8), "fast")
    with pytest.raises(TypeError, match="params must be"):
        compile_stages(_stages(), (4, 8), {"poly_modulus_degree": 8192})
    with pytest.raises(ValueError, match="slots"):
        compile_stages(_stages(), (64, 128), CKKSParams(8192, (49, 40, 40, 40, 49), 40))
    with pytest.raises(ValueError):
        compile_stages(_stages(), (3, 8))


def test_counting_plan_equals_materialised_plan():
    stages = make_stages([13, 7, 9, 5], (8, 4), [SQ, None, (-0.25, 0.5, 0.1)])
    full = compile_stages(stages, (8, 4))
    counting = compile_stages(stages, (8, 4), materialize=False)
    assert all(v is None for v in counting.plaintexts.values())
    assert counting.pt_spec == full.pt_spec and counting.level_ops == full.level_ops
    assert counting.op_counts == full.op_counts == count_ops(stages, (8, 4))
    assert counting.depth == full.depth == required_depth(stages)


def test_unread_input_chunks_are_not_encrypted(X):
    """A tile-column of the first layer with no live tile: its input chunk is
    neither encoded nor encrypted, and the encrypted outputs are unchanged."""
    tile = (4, 8)
    stages = make_stages([13, 7, 5], tile, [SQ, None], seed=3, p_zero=0.0, force_zero=False)
    full = compile_stages(stages, tile)
    assert full.stages[0].live_in == [0, 1]
    stages[0]["matrix"][:, 8:16] = 0.0            # features 8..12: chunk 1 of layer 0
    stages[0]["tile_mask"][:, 1] = False
    plan = compile_stages(stages, tile)
    assert plan.stages[0].live_in == [0]
    assert memory_estimate(plan)["n_input_ciphertexts"] == 1
    client = Client(plan)
    batch = client.encrypt(X[:5])
    assert [sorted(b) for b in batch.batches] == [[0]]         # one ciphertext, chunk 0
    Y = client.decrypt(client.server_model().evaluate(batch), n_samples=5)
    np.testing.assert_allclose(Y, reference_forward(stages, X[:5]), atol=1e-3)
    # no live tile at all in the first layer: nothing to encrypt, constant outputs
    stages[0]["matrix"][:] = 0.0
    stages[0]["tile_mask"][:] = False
    plan = compile_stages(stages, tile)
    assert plan.stages[0].live_in == [] and plan.stages[0].rows == []
    np.testing.assert_allclose(PlainSimulator(plan).predict(X), reference_forward(stages, X),
                               atol=1e-10)
    client = Client(plan)
    batch = client.encrypt(X[:5])
    assert batch.batches == [{}]
    Y = client.decrypt(client.server_model().evaluate(batch), n_samples=5)
    np.testing.assert_allclose(Y, reference_forward(stages, X[:5]), atol=1e-10)
