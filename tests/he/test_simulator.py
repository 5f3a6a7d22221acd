"""skhepex.he.simulator: the packed op sequence on NumPy slots equals the matrix math."""
import numpy as np
import pytest
from he_stages import CASES, SQ, make_stages, make_X
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skhepex.he import PlainSimulator, compile_stages, reference_forward
from skhepex.he.compiler import poly_value


@pytest.fixture(scope="module")
def X():
    return make_X()


@pytest.mark.parametrize("sizes,tile,acts", CASES)
def test_plain_simulator_matches_numpy(sizes, tile, acts, X):
    stages = make_stages(sizes, tile, acts)
    plan = compile_stages(stages, tile)
    np.testing.assert_allclose(PlainSimulator(plan).predict(X), reference_forward(stages, X),
                               atol=1e-10, rtol=0)


@pytest.mark.parametrize("tile", [(4, 8), (8, 8), (8, 4), (2, 16), (16, 1)])
@pytest.mark.parametrize("n_stages", [1, 2, 3])
def test_plain_simulator_layouts(tile, n_stages, X):
    sizes = [13, 7, 9, 5][:n_stages + 1]
    acts = [SQ, (0.3, 0.2, -0.1), SQ][:n_stages]
    stages = make_stages(sizes, tile, acts, seed=n_stages, p_zero=0.4)
    plan = compile_stages(stages, tile)
    np.testing.assert_allclose(PlainSimulator(plan).predict(X), reference_forward(stages, X),
                               atol=1e-10, rtol=0)


def test_simulator_needs_materialised_plan():
    stages = make_stages([13, 7, 5], (4, 8), [SQ, None])
    with pytest.raises(ValueError, match="materiali"):
        PlainSimulator(compile_stages(stages, (4, 8), materialize=False))


def test_simulator_empty_input_and_partial_batches():
    stages = make_stages([13, 7, 5], (8, 8), [SQ, None])
    plan = compile_stages(stages, (8, 8))
    sim = PlainSimulator(plan)
    assert sim.predict(np.zeros((0, 13))).shape == (0, 5)
    # one sample more than a batch: two batches, the second one nearly empty
    X = make_X(plan.batch + 1)
    Y = sim.predict(X)
    assert Y.shape == (plan.batch + 1, 5)
    np.testing.assert_allclose(Y, reference_forward(stages, X), atol=1e-10, rtol=0)
    # samples do not leak into each other: each row alone gives the same output
    np.testing.assert_array_equal(sim.predict(X[-1:]), Y[-1:])


def test_reference_forward_is_the_matrix_math():
    stages = make_stages([13, 7, 5], (4, 8), [(0.5, -0.3, 0.2), None])
    X = make_X(4)
    h = X @ stages[0]["matrix"].T + stages[0]["bias"]
    h = 0.5 * h * h - 0.3 * h + 0.2
    h = h @ stages[1]["matrix"].T + stages[1]["bias"]
    np.testing.assert_allclose(reference_forward(stages, X), h, rtol=1e-14)


# --------------------------------------------------------------- property tests
_ACT_COEF = st.sampled_from([0.0, 1.0, -1.0, 0.5, -0.25, 2.0, 0.1, -0.7])


@st.composite
def networks(draw):
    """Random stage dicts: 1-3 stages, widths 1-20, power-of-two tiles with
    t1*t2 <= 256, random tile masks (whole tile-rows and stages may be dead)
    and activations None or (a, b, c) (a may be 0, < 0 or > 0)."""
    n_stages = draw(st.integers(1, 3))
    sizes = draw(st.lists(st.integers(1, 20), min_size=n_stages + 1, max_size=n_stages + 1))
    e1 = draw(st.integers(0, 8))
    e2 = draw(st.integers(0, 8 - e1))
    t1, t2 = 1 << e1, 1 << e2
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    stages = []
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        orient = "W" if l % 2 == 0 else "WT"
        r, c = (t1, t2) if orient == "W" else (t2, t1)
        P, Q = -(-n_out // r), -(-n_in // c)
        mask = np.array(draw(st.lists(st.booleans(), min_size=P * Q, max_size=P * Q)),
                        dtype=bool).reshape(P, Q)
        W = rng.normal(0, 1 / np.sqrt(n_in), (n_out, n_in))
        for p in range(P):
            for q in range(Q):
                if not mask[p, q]:
                    W[p * r:(p + 1) * r, q * c:(q + 1) * c] = 0.0
        act = draw(st.none() | st.tuples(_ACT_COEF, _ACT_COEF, _ACT_COEF))
        stages.append(dict(name=f"layer{l}", matrix=W, bias=rng.normal(0, 0.5, n_out),
                           orientation=orient, block_shape=(r, c), tile_mask=mask,
                           activation=act))
    n_samples = draw(st.integers(1, 40))
    scale = draw(st.sampled_from([1e-3, 1.0, 10.0, 1e3]))
    X = scale * rng.uniform(-1, 1, (n_samples, sizes[0]))
    return stages, (t1, t2), X


def _magnitude(stages, X):
    """Largest |value| met along the float64 forward pass (the scale of rounding errors)."""
    h = np.asarray(X, dtype=np.float64)
    m = np.abs(h).max(initial=0.0)
    for s in stages:
        z = h @ s["matrix"].T + s["bias"]
        h = poly_value(z, s["activation"])
        m = max(m, np.abs(z).max(initial=0.0), np.abs(h).max(initial=0.0))
    return m


@settings(max_examples=25, deadline=None, database=None, print_blob=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(networks())
def test_property_simulator_equals_reference(net):
    stages, tile, X = net
    plan = compile_stages(stages, tile)
    Y = PlainSimulator(plan).predict(X)
    ref = reference_forward(stages, X)
    assert Y.shape == ref.shape == (X.shape[0], stages[-1]["matrix"].shape[0])
    tol = 1e-9 * max(_magnitude(stages, X), 1e-300)
    np.testing.assert_allclose(Y, ref, rtol=1e-9, atol=tol)
