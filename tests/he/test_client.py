"""skhepex.he.client: the key owner -- keys, encryption, server package, checked decryption."""
import re

import numpy as np
import pytest
from he_fuzz import build_world
from he_stages import SQ, make_stages, make_X

from skhepex.he import (BindingError, Client, EncryptedResult, PlainSimulator, compile_stages,
                        count_ops, reference_forward)


@pytest.fixture(scope="module")
def X():
    return make_X()


@pytest.fixture(scope="module")
def world():
    return build_world(tile=(4, 8), n_samples=3)


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


def test_encrypted_weights_server_package_holds_no_weights():
    """With encrypt_weights the server's plan has neither the weight/bias vectors nor
    the folded constants, in memory or in its bytes; it still evaluates correctly."""
    from skhepex.he import ServerModel
    from skhepex.he.serialization import unpack

    stages = make_stages([13, 7, 5], (4, 8), [SQ, None], seed=6)
    stages[0]["matrix"][4:8, :] = 0.0                      # a constant row
    stages[0]["tile_mask"][1, :] = False
    plan = compile_stages(stages, (4, 8), encrypt_weights=True)
    assert plan.stages[0].const_out
    client = Client(plan)
    blob = client.server_model().serialize()
    server = ServerModel.load(blob)
    assert not any(st.const_out for st in server.plan.stages)
    assert not {k.kind for k in server.plan.plaintexts} & {"w", "b"}
    header, arrays = unpack(blob, "ServerModel")
    assert not any(re.fullmatch(r"co\d+_\d+", name) for name in arrays)
    assert len(header["wct_keys"]) == len(plan.encrypted_keys())
    X = make_X(4)
    np.testing.assert_allclose(client.decrypt(server.evaluate(client.encrypt(X))),
                               reference_forward(stages, X), atol=1e-3)


def test_result_bindings(world):
    """A result decrypted by another key, with another plan or for another request."""
    client, result, plan = world["client"], world["result"], world["plan"]
    with pytest.raises(BindingError, match="another key"):
        Client(plan).decrypt(result)
    other = compile_stages(make_stages([13, 7, 5], (4, 8), [SQ, None], seed=99), (4, 8),
                           plan.params)
    owner = Client(plan, extra_plans=[other], context=client.context)
    with pytest.raises(BindingError, match="another plan"):
        owner.decrypt(result, plan=other)
    with pytest.raises(BindingError, match="3 samples"):
        client.decrypt(result, n_samples=4)
    with pytest.raises(BindingError, match="3 samples"):
        client.decrypt(result, n_samples=2)
    np.testing.assert_array_equal(owner.decrypt(result, n_samples=3), world["expected"])


def test_result_ciphertexts_must_match_the_plan(world):
    client, result = world["client"], world["result"]
    for batches in ([], [{}], [{**result.batches[0], 7: result.batches[0][0]}],
                    result.batches * 2):
        bad = EncryptedResult(batches, result.n_samples, result.plan_id, result.key_id)
        with pytest.raises(BindingError, match="do not match the plan"):
            client.decrypt(bad)


def test_batches_are_stamped(world):
    client, plan = world["client"], world["plan"]
    batch = client.encrypt(make_X(plan.batch + 1))
    assert batch.key_id == client.key_id and batch.plan_id == client.plan_id()
    assert batch.n_samples == plan.batch + 1 and len(batch.batches) == 2
    assert all(sorted(d) == sorted(plan.stages[0].live_in) for d in batch.batches)
    assert client.plan_id() == client.plan_id(plan)          # cached and stable


def test_empty_request_round_trip(world):
    client, server = world["client"], world["server"]
    batch = client.encrypt(np.zeros((0, 13)))
    assert batch.batches == [] and batch.n_samples == 0
    res = server.evaluate(batch.serialize())
    assert res.stats["n_batches"] == 0
    assert client.decrypt(client.load_result(res.serialize()), n_samples=0).shape == (0, 5)


def test_encrypt_checks_the_input_width(world):
    with pytest.raises(ValueError, match="n_samples, 13"):
        world["client"].encrypt(np.zeros((2, 12)))


def test_client_needs_a_private_context_of_the_plan(world):
    client, plan = world["client"], world["plan"]
    with pytest.raises(ValueError, match="private context"):
        Client(plan, context=client.public_context())
    deeper = compile_stages(make_stages([13, 7, 9, 5], (4, 8), [SQ, SQ, None]), (4, 8))
    with pytest.raises(ValueError, match="share the CKKS parameters"):
        Client(plan, extra_plans=[deeper])
    with pytest.raises(ValueError, match="primes"):
        Client(deeper, context=client.context)


def test_public_context_and_key_id(world):
    client = world["client"]
    pub = client.public_context()
    assert not pub.has_secret_key() and client.context.has_secret_key()
    from skhepex.he.server import key_fingerprint

    assert key_fingerprint(pub) == client.key_id == world["server"].key_id


def test_galois_keys_cover_every_plan():
    a = compile_stages(make_stages([13, 7, 5], (4, 8), [SQ, None]), (4, 8))
    b = compile_stages(make_stages([13, 7, 5], (8, 8), [SQ, None]), (8, 8), a.params)
    assert set(a.rotation_steps) != set(b.rotation_steps)
    client = Client(a, extra_plans=[b])
    assert client.rotation_steps == sorted(set(a.rotation_steps) | set(b.rotation_steps))
    X = make_X(6)
    sb = client.server_model(plan=b, name="encoder")
    res = sb.evaluate(client.encrypt(X, plan=b))
    assert res.tag == "encoder"
    np.testing.assert_allclose(client.decrypt(res, plan=b), PlainSimulator(b).predict(X),
                               atol=1e-3)


def test_saved_context_restores_the_key_owner(world):
    client, plan, result = world["client"], world["plan"], world["result"]
    data = client.save_context()
    ctx = Client.context_from_bytes(data)
    restored = Client(plan, context=ctx)
    assert restored.key_id == client.key_id and restored.plan_id() == client.plan_id()
    np.testing.assert_array_equal(restored.decrypt(result, n_samples=3), world["expected"])
    public = client.public_context().serialize(save_secret_key=False, save_galois_keys=False)
    with pytest.raises(ValueError, match="no secret key"):
        Client.context_from_bytes(public)
