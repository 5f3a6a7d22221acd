"""skhepex.he.packing: slot layout of the client's inputs and outputs."""
import numpy as np
import pytest
from he_stages import SQ, make_stages, make_X

from skhepex.he import compile_stages
from skhepex.he.packing import decode_output, encode_input, n_batches, tile_vector


def test_tile_vector_layout():
    fill = np.arange(8.0).reshape(4, 2)                 # (t2, t1) = (4, 2)
    vec = tile_vector((2, 4), 3, fill)
    assert vec.shape == (2 * 4 * 3,)
    # slot (j*t1 + i)*b + k holds fill[j, i] for every sample k
    for j in range(4):
        for i in range(2):
            assert np.all(vec[(j * 2 + i) * 3:(j * 2 + i + 1) * 3] == fill[j, i])


@pytest.mark.parametrize("tile", [(4, 8), (8, 4), (1, 8), (1, 1)])
def test_encode_input_layout_first_stage_W(tile):
    """Input chunk q of a "W" stage is indexed along j and replicated along i."""
    plan = compile_stages(make_stages([13, 5], tile, [None]), tile)
    t1, t2 = tile
    b = plan.batch
    X = make_X(b + 3)
    batches = encode_input(plan, X)
    assert len(batches) == n_batches(plan, X.shape[0]) == 2
    for bi, d in enumerate(batches):
        assert sorted(d) == plan.stages[0].live_in
        for q, vec in d.items():
            arr = vec.reshape(t2, t1, b)                 # [j, i, k]
            xs = np.zeros((b, plan.stages[0].grid[1] * t2))
            part = X[bi * b:(bi + 1) * b]
            xs[:part.shape[0], :13] = part
            for j in range(t2):
                for i in range(t1):
                    np.testing.assert_array_equal(arr[j, i], xs[:, q * t2 + j])


def test_encode_input_layout_first_stage_WT():
    """A plan may start with a "WT" stage: indexed along i, replicated along j."""
    stages = make_stages([13, 7, 5], (4, 8), [SQ, None])[1:]
    stages[0]["matrix"] = np.random.default_rng(0).normal(size=(5, 13))
    stages[0]["tile_mask"] = np.ones((1, 4), bool)
    plan = compile_stages(stages, (4, 8))
    t1, t2, b = 4, 8, plan.batch
    X = make_X(5)
    (d,) = encode_input(plan, X)
    for q, vec in d.items():
        arr = vec.reshape(t2, t1, b)
        for j in range(t2):
            for i in range(t1):
                col = q * t1 + i
                want = X[:, col] if col < 13 else np.zeros(5)
                np.testing.assert_array_equal(arr[j, i, :5], want)
                assert not arr[j, i, 5:].any()             # unused samples are zeros


def test_decode_output_reads_the_valid_slots():
    for sizes, tile in (([13, 5], (4, 8)), ([13, 7, 5], (4, 8))):
        stages = make_stages(sizes, tile, [None] * (len(sizes) - 1))
        plan = compile_stages(stages, tile)
        t1, t2 = tile
        b, st = plan.batch, plan.stages[-1]
        rng = np.random.default_rng(1)
        outs = {r.p: rng.normal(size=t1 * t2 * b) for r in st.rows}
        Y = decode_output(plan, outs, 6)
        assert Y.shape == (6, st.n_out)
        for p, vec in outs.items():
            arr = vec.reshape(t2, t1, b)
            blk = arr[0, :, :6] if st.orientation == "W" else arr[:, 0, :6]
            np.testing.assert_array_equal(Y[:, p * st.out_chunk:(p + 1) * st.out_chunk],
                                          blk.T[:, :st.n_out - p * st.out_chunk])


def test_decode_output_fills_constant_rows():
    stages = make_stages([13, 7, 5], (4, 8), [None, None], p_zero=0.0, force_zero=False)
    stages[1]["matrix"][:] = 0.0
    stages[1]["tile_mask"][:] = False
    plan = compile_stages(stages, (4, 8))
    assert plan.stages[-1].rows == []
    Y = decode_output(plan, {}, 3)
    np.testing.assert_array_equal(Y, np.tile(stages[1]["bias"], (3, 1)))


def test_encode_input_checks_shape_and_counts_batches():
    plan = compile_stages(make_stages([13, 5], (4, 8), [None]), (4, 8))
    for bad in (np.zeros(13), np.zeros((2, 12)), np.zeros((2, 13, 1))):
        with pytest.raises(ValueError, match="n_samples, 13"):
            encode_input(plan, bad)
    assert encode_input(plan, np.zeros((0, 13))) == []
    assert [n_batches(plan, n) for n in (0, 1, plan.batch, plan.batch + 1)] == [0, 1, 1, 2]
