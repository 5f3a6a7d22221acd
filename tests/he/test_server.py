"""skhepex.he.server: public-key evaluation, bindings and the server package bytes."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from he_fuzz import outcome, split
from he_stages import CASES, SQ, make_stages, make_X

from skhepex.he import (BindingError, Client, EncryptedBatch, EncryptedResult, ServerModel,
                        compile_stages, count_ops, reference_forward)
from skhepex.he.costs import memory_estimate
from skhepex.he.serialization import SerializationError, pack, unpack


@pytest.fixture(scope="module")
def X():
    return make_X()


@pytest.fixture(scope="module")
def tiny():
    """[13, 7, 5] at (4, 8), N=8192: plan, keys, server, a batch and its exact outputs."""
    stages = make_stages([13, 7, 5], (4, 8), [SQ, None], seed=11)
    plan = compile_stages(stages, (4, 8))
    client = Client(plan)
    server = client.server_model()
    X = make_X(5)
    batch = client.encrypt(X)
    Y0 = client.decrypt(server.evaluate(batch), n_samples=5)
    return dict(stages=stages, plan=plan, client=client, server=server, X=X, batch=batch,
                Y0=Y0, blob=server.serialize())


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


def test_server_is_public_and_round_trips(X):
    tile = (8, 4)
    stages = make_stages([13, 7, 5], tile, [SQ, None], seed=7)
    plan = compile_stages(stages, tile)
    client = Client(plan)
    server = client.server_model()
    assert not server.context.is_private()
    assert not server.context.has_secret_key()
    assert server.context.seal_context().data is client.context.seal_context().data  # shared
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


def test_evaluate_is_deterministic_and_takes_bytes(tiny):
    """The same batch gives bit-identical outputs, as an object or as bytes, and
    through a server rebuilt from its bytes (the fuzz tests rely on it)."""
    server, client, batch = tiny["server"], tiny["client"], tiny["batch"]
    res = server.evaluate(batch.serialize())
    assert isinstance(res, EncryptedResult)
    assert res.plan_id == server.plan_id and res.key_id == server.key_id == client.key_id
    assert res.stats["n_batches"] == len(batch.batches) == 1
    np.testing.assert_array_equal(client.decrypt(res, n_samples=5), tiny["Y0"])
    again = ServerModel.load(tiny["blob"])
    assert again.plan_id == server.plan_id and again.key_id == server.key_id
    np.testing.assert_array_equal(client.decrypt(again.evaluate(batch)), tiny["Y0"])
    np.testing.assert_allclose(tiny["Y0"], reference_forward(tiny["stages"], tiny["X"]),
                               atol=1e-3)


def test_load_from_path(tiny, tmp_path):
    path = tmp_path / "server.skhepex"
    path.write_bytes(tiny["blob"])
    server = ServerModel.load(path)
    assert server.plan_id == tiny["server"].plan_id
    np.testing.assert_array_equal(tiny["client"].decrypt(server.evaluate(tiny["batch"])),
                                  tiny["Y0"])


def test_reentrant_evaluate_from_threads(tiny):
    """One server, concurrent requests: nothing is kept per call on the server."""
    server, client = tiny["server"], tiny["client"]
    Xs = [make_X(3 + i, seed=i) for i in range(4)]
    batches = [client.encrypt(x) for x in Xs]
    serial = [client.decrypt(server.evaluate(b)) for b in batches]
    before = dict(vars(server))
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(server.evaluate, batches * 2))
    for i, res in enumerate(results):
        assert res.n_samples == Xs[i % 4].shape[0]
        np.testing.assert_array_equal(client.decrypt(res, n_samples=res.n_samples),
                                      serial[i % 4])
    assert vars(server).keys() == before.keys()
    assert all(vars(server)[k] is v for k, v in before.items())


def test_server_needs_a_public_context(tiny):
    client, plan, server = tiny["client"], tiny["plan"], tiny["server"]
    with pytest.raises(ValueError, match="public context"):
        ServerModel(plan, client.context, client.galois_keys)
    assert server.memory_report() == memory_estimate(server.plan)


def test_load_refuses_a_secret_key(tiny):
    h, arrays = unpack(tiny["blob"], "ServerModel")
    arrays = dict(arrays, context=tiny["client"].save_context())
    with pytest.raises(SerializationError, match="secret key"):
        ServerModel.load(pack("ServerModel", h, arrays))


def test_load_refuses_other_kinds_and_garbage(tiny):
    with pytest.raises(SerializationError, match="expected 'ServerModel'"):
        ServerModel.load(tiny["batch"].serialize())
    with pytest.raises(SerializationError):
        ServerModel.load(b"\x80\x04\x95" + b"\x00" * 64)      # a pickle is not read


def test_load_refuses_a_context_of_other_parameters(tiny):
    """A server package whose context does not carry the plan's primes."""
    other = compile_stages(make_stages([13, 7, 9, 5], (4, 8), [SQ, SQ, None]), (4, 8))
    assert other.params != tiny["plan"].params
    h, arrays = unpack(tiny["blob"], "ServerModel")
    foreign = Client(other).server_model()
    arrays = dict(arrays, context=foreign.context.serialize(save_secret_key=False,
                                                            save_galois_keys=False))
    with pytest.raises(SerializationError, match="primes"):
        ServerModel.load(pack("ServerModel", h, arrays))


# ------------------------------------------------------------------ bindings
def test_foreign_key_batch_refused(tiny):
    """A batch encrypted by another client (same plan, other keys) is refused."""
    server, plan = tiny["server"], tiny["plan"]
    other = Client(plan)
    assert other.key_id != server.key_id and other.plan_id() == server.plan_id
    foreign = other.encrypt(tiny["X"])
    with pytest.raises(BindingError, match="another key"):
        server.evaluate(foreign)
    with pytest.raises(BindingError, match="another key"):
        server.evaluate(foreign.serialize())


def test_foreign_plan_batch_refused(tiny):
    """Same key, a batch packed for another plan: another tile layout, or the
    same layout with other weights."""
    server, plan = tiny["server"], tiny["plan"]
    other_tile = compile_stages(make_stages([13, 7, 5], (8, 8), [SQ, None], seed=11), (8, 8),
                                plan.params)
    same_tiles = [dict(st, matrix=1.5 * st["matrix"]) for st in tiny["stages"]]
    other_weights = compile_stages(same_tiles, (4, 8), plan.params)   # same live chunks
    client = Client(plan, extra_plans=[other_tile, other_weights],
                    context=tiny["client"].context)
    assert client.key_id == server.key_id
    for other in (other_tile, other_weights):
        batch = client.encrypt(tiny["X"], plan=other)
        assert batch.key_id == server.key_id and batch.plan_id != server.plan_id
        with pytest.raises(BindingError, match="another plan"):
            server.evaluate(batch)
    # as bytes: refused at load when the ciphertext index cannot fit the plan,
    # by the binding otherwise
    with pytest.raises((SerializationError, BindingError)):
        server.evaluate(client.encrypt(make_X(70), plan=other_tile).serialize())
    with pytest.raises(BindingError, match="another plan"):
        server.evaluate(client.encrypt(tiny["X"], plan=other_weights).serialize())


# ------------------------------------------------------------------ damaged bytes
def _structural_offsets(blob):
    meta, payload = split(blob)
    head = len(blob) - len(payload)
    return sorted({0, 1, 7, 8, 39, 40, 47, 48, head - 1, head, head + 1, len(blob) // 2,
                   len(blob) - 1})


def _load_and_run(tiny):
    client, batch = tiny["client"], tiny["batch"]
    return lambda data: client.decrypt(ServerModel.load(data).evaluate(batch), n_samples=5)


def test_truncated_server_package_refused(tiny):
    blob, run = tiny["blob"], _load_and_run(tiny)
    rng = np.random.default_rng(0)
    cuts = _structural_offsets(blob) + sorted(rng.integers(0, len(blob), 12).tolist())
    for cut in cuts:
        assert outcome(run, blob[:cut], tiny["Y0"]) == "raised:SerializationError", cut
    assert outcome(run, blob, tiny["Y0"]) == "exact"


def test_bit_flipped_server_package_refused(tiny):
    blob, run = tiny["blob"], _load_and_run(tiny)
    rng = np.random.default_rng(1)
    offsets = _structural_offsets(blob) + rng.integers(0, len(blob), 24).tolist()
    for off in offsets:
        bad = bytearray(blob)
        bad[off] ^= 1 << int(rng.integers(8))
        assert outcome(run, bytes(bad), tiny["Y0"]) == "raised:SerializationError", off


# ------------------------------------------------------------------ known bugs
def test_server_package_missing_plaintext_refused(tiny):
    from he_fuzz import reseal

    meta, payload = split(tiny["blob"])
    meta["fields"]["plan"]["pt_keys"].pop(0)      # digest recomputed by reseal
    with pytest.raises(SerializationError):
        ServerModel.load(reseal(meta, payload))


@pytest.mark.parametrize("field", ["n_features", "depth", "scale_bits"])
def test_server_package_infinite_numbers_refused(tiny, field):
    import json

    from he_fuzz import reseal

    meta, payload = split(tiny["blob"])
    plan = meta["fields"]["plan"]
    (plan["params"] if field == "scale_bits" else plan)[field] = "@@"
    crafted = reseal(json.dumps(meta).replace('"@@"', "Infinity").encode(), payload)
    with pytest.raises(SerializationError):
        ServerModel.load(crafted)
