"""Tests of the tile-tensor CKKS engine (small networks, N=8192)."""
import numpy as np
import pytest

from skhepex.he import (Client, EncryptedBatch, EncryptedResult, PlainSimulator, ServerModel,
                        compile_stages, count_ops, reference_forward, required_depth)
from skhepex.he.params import CKKSParams, choose_params, validate_params


def make_stages(sizes, tile, acts, seed=0, p_zero=0.3, force_zero=True):
    """Random W/WT/W... stages with random all-zero tiles (tile_mask False)."""
    rng = np.random.default_rng(seed)
    t1, t2 = tile
    stages = []
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        orient = "W" if l % 2 == 0 else "WT"
        r, c = (t1, t2) if orient == "W" else (t2, t1)
        W = rng.normal(0, 1 / np.sqrt(n_in), (n_out, n_in))
        P, Q = -(-n_out // r), -(-n_in // c)
        mask = rng.random((P, Q)) > p_zero
        mask[:, 0] = True                      # keep every tile-row alive
        if force_zero and P * Q > 2:
            mask[-1, -1] = False               # at least one zero tile
        for p in range(P):
            for q in range(Q):
                if not mask[p, q]:
                    W[p * r:(p + 1) * r, q * c:(q + 1) * c] = 0.0
        stages.append(dict(name=f"layer{l}", matrix=W, bias=rng.normal(0, 0.1, n_out),
                           orientation=orient, block_shape=(r, c), tile_mask=mask,
                           activation=acts[l]))
    return stages


SQ = (1.0, 0.0, 0.0)
CASES = [  # (sizes, tile, activations)
    ([13, 5], (4, 8), [None]),
    ([13, 7, 5], (4, 8), [SQ, None]),
    ([13, 7, 5], (8, 8), [(0.5, -0.3, 0.2), SQ]),
    ([13, 7, 9, 5], (8, 4), [SQ, None, (-0.25, 0.5, 0.1)]),     # depth 5
    ([13, 7, 9, 5], (8, 8), [SQ, (-0.25, 0.5, 0.1), None]),     # depth 6
]


@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(42).random((70, 13))      # > one batch at (8,8)


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


@pytest.mark.parametrize("sizes,tile,acts", CASES)
def test_encrypted_matches_numpy_and_counts(sizes, tile, acts, X):
    stages = make_stages(sizes, tile, acts)
    plan = compile_stages(stages, tile)
    # auto params: N=8192 up to depth 5, N=16384 beyond
    assert plan.params.poly_modulus_degree == (8192 if plan.depth <= 5 else 16384)
    client = Client(plan)
    server = client.server_model()
    res = server.evaluate(client.encrypt(X))
    Y = client.decrypt(res)
    assert Y.shape == (X.shape[0], sizes[-1])
    np.testing.assert_allclose(Y, reference_forward(stages, X), atol=1e-3, rtol=0)
    # predicted op counts (no keys) == ops the SEAL backend executed per batch
    predicted = count_ops(stages, tile, plan.params)
    for pred, got in zip(predicted, res.stats["op_counts"]):
        for op, n in got.items():
            assert pred[op] == n, (op, pred, got)
    assert len(res.stats["stage_seconds"]) == len(stages)
    assert all(t > 0 for t in res.stats["stage_seconds"])
    assert not hasattr(server, "op_counts_") and not hasattr(server, "timings_")


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


def test_depth_and_auto_params():
    assert required_depth(make_stages([13, 7, 5], (4, 8), [SQ, None])) == 3
    assert required_depth(make_stages([13, 7, 9, 5], (4, 8), [SQ, SQ, None])) == 6
    p = choose_params(3, 32)
    assert p.poly_modulus_degree == 8192 and p.scale_bits >= 27 and p.log_q <= 218
    p6 = choose_params(6, 32)
    assert p6.poly_modulus_degree == 16384 and p6.log_q <= 438


def test_insecure_params_raise():
    with pytest.raises(ValueError, match="218"):
        validate_params(CKKSParams(8192, (60, 40, 40, 40, 60), 40))
    with pytest.raises(ValueError, match="109"):
        validate_params(CKKSParams(4096, (40, 30, 40), 30))
    stages = make_stages([13, 7, 5], (4, 8), [SQ, None])
    with pytest.raises(ValueError, match="218"):
        compile_stages(stages, (4, 8), CKKSParams(8192, (60, 50, 50, 50, 60), 40))
    with pytest.raises(ValueError, match="depth"):
        compile_stages(stages, (4, 8), CKKSParams(8192, (60, 40, 60), 40))


def test_server_is_public_and_round_trips(X):
    tile = (8, 4)
    stages = make_stages([13, 7, 5], tile, [SQ, None], seed=7)
    plan = compile_stages(stages, tile)
    client = Client(plan)
    server = client.server_model()
    assert not server.context.is_private()
    assert not server.context.has_secret_key()
    with pytest.raises(Exception):
        server.context.secret_key()
    # server model bytes
    blob = server.serialize()
    server2 = ServerModel.load(blob)
    assert not server2.context.is_private()
    # input batch bytes (loaded with the server's public context)
    enc = EncryptedBatch.load(client.encrypt(X).serialize(), server2.context, server2.plan)
    res = server2.evaluate(enc)
    # result bytes (loaded with the client's context)
    res2 = EncryptedResult.load(res.serialize(), client.context, plan)
    Y = client.decrypt(res2)
    np.testing.assert_allclose(Y, reference_forward(stages, X), atol=1e-3)
    mem = server2.memory_report()
    assert mem["n_galois_keys"] == len(plan.rotation_steps)
    assert mem["plaintext_bytes"] == plan.plaintext_bytes() > 0


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


def test_encrypted_weights_engine(X):
    tile = (4, 8)
    stages = make_stages([13, 7, 5], tile, [(0.5, -0.3, 0.2), None], seed=5)
    plan = compile_stages(stages, tile, encrypt_weights=True)
    enc_keys = plan.encrypted_keys()
    assert enc_keys and all(k.kind in ("w", "b") for k in enc_keys)
    np.testing.assert_allclose(PlainSimulator(plan).predict(X), reference_forward(stages, X),
                               atol=1e-10)
    client = Client(plan)
    server = client.server_model()
    assert set(server.weight_ciphertexts) == set(enc_keys)
    assert not set(enc_keys) & set(server.plan.plaintexts)
    res = server.evaluate(client.encrypt(X))
    Y = client.decrypt(res)
    np.testing.assert_allclose(Y, reference_forward(stages, X), atol=1e-3)
    for pred, got in zip(count_ops(stages, tile, encrypt_weights=True), res.stats["op_counts"]):
        for op, n in got.items():
            assert pred[op] == n, (op, pred, got)
    assert res.stats["op_counts"][0]["mul_plain"] == 0 or plan.stages[0].act_sign != 0
    mem = server.memory_report()
    assert mem["n_weight_ciphertexts"] == len(enc_keys)
    assert mem["weight_ciphertext_bytes"] > 0


def test_he_package_has_no_pickle():
    import importlib
    import pkgutil

    import skhepex.he as he
    for m in pkgutil.iter_modules(he.__path__):
        mod = importlib.import_module(f"skhepex.he.{m.name}")
        assert not hasattr(mod, "pickle"), m.name


def test_one_by_one_tiles_scalar_plaintexts(X):
    """1x1 tiles: no rotations, no Galois keys, weights kept as scalars."""
    tile = (1, 1)
    sizes, acts = [13, 7, 9, 5], [SQ, (-0.25, 0.5, 0.1), None]
    stages = make_stages(sizes, tile, acts, p_zero=0.4)
    plan = compile_stages(stages, tile)
    assert plan.scalar_plaintexts and plan.batch == plan.n_slots
    assert plan.rotation_steps == [] and plan.depth == 5
    assert all(v.shape == (1,) for v in plan.plaintexts.values())
    assert plan.plaintext_bytes() == 8 * len(plan.pt_spec)
    np.testing.assert_allclose(PlainSimulator(plan).predict(X), reference_forward(stages, X),
                               atol=1e-10)
    client = Client(plan)
    server = ServerModel.load(client.server_model().serialize())   # no Galois keys
    assert server.plan.scalar_plaintexts
    res = server.evaluate(client.encrypt(X))
    Y = client.decrypt(res)
    np.testing.assert_allclose(Y, reference_forward(stages, X), atol=1e-3)
    for pred, got in zip(count_ops(stages, tile), res.stats["op_counts"]):
        assert pred["rotate"] == 0 and pred["encode_scalar"] > 0
        for op, n in got.items():
            assert pred[op] == n, (op, pred, got)
    mem = server.memory_report()
    assert mem["n_galois_keys"] == 0 and mem["galois_key_bytes"] == 0
    assert mem["packed_model_bytes"] == 8 * len(plan.pt_spec)
    # encrypted weights: each scalar becomes a (replicated) ciphertext
    pe = compile_stages(stages[:2], tile, encrypt_weights=True)
    ce = Client(pe)
    Ye = ce.decrypt(ce.server_model().evaluate(ce.encrypt(X[:5])))
    np.testing.assert_allclose(Ye, reference_forward(stages[:2], X[:5]), atol=1e-3)


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
