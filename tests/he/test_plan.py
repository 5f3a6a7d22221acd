"""skhepex.he.plan: frozen plan objects, typed plaintext keys, byte accounting."""
import dataclasses

import numpy as np
import pytest
from he_stages import SQ, make_stages, make_X

from skhepex.he import (Client, PlainSimulator, PtKey, ServerModel, compile_stages, count_ops,
                        reference_forward)
from skhepex.he.packing import tile_vector
from skhepex.he.plan import ciphertext_nbytes, key_nbytes, plaintext_nbytes


@pytest.fixture(scope="module")
def X():
    return make_X()


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


# ------------------------------------------------------------------ PtKey
def test_ptkey_text_round_trip_and_roles():
    keys = [PtKey(0, "w", 1, 2), PtKey(3, "b", 0), PtKey(1, "m", 4), PtKey(2, "l", 0),
            PtKey(2, "c", 7), PtKey(2, "w", 0, 3, 5)]
    for k in keys:
        assert PtKey.parse(str(k)) == k
    assert str(PtKey(0, "w", 1, 2)) == "0:w:1:2" and str(PtKey(3, "b", 0)) == "3:b:0"
    assert str(PtKey(2, "w", 0, 3, 5)) == "2:w:0:3:5"          # lane 5 of a gathered stage
    assert [k.role for k in keys] == ["mul", "add", "mul", "coef", "add", "mul"]
    assert PtKey(3, "b", 0).q == -1 and PtKey(3, "b", 0).i == -1


@pytest.mark.parametrize("text", ["", "0", "0:w", "0:x:1", "0:w:1:2:3:4", "a:w:0", "0:w:b",
                                  "0:w:1:-1:2", "0:w:1:2:-3",
                                  "-1:w:0:0", "0:w:0:-2", "0:w:1.5", None, 3])
def test_ptkey_parse_refuses_malformed_text(text):
    with pytest.raises(ValueError, match="malformed plaintext key"):
        PtKey.parse(text)


# ------------------------------------------------------------------ byte accounting
def test_nbytes_helpers():
    assert plaintext_nbytes(8192, 3) == 3 * 8192 * 8
    assert ciphertext_nbytes(8192, 3) == 2 * 3 * 8192 * 8
    assert ciphertext_nbytes(8192, 3, size=3) == 3 * 3 * 8192 * 8
    params = compile_stages(make_stages([13, 5], (4, 8), [None]), (4, 8)).params
    w, b = PtKey(0, "w", 0, 0), PtKey(0, "b", 0)
    assert key_nbytes(w, 1, params, 4) == plaintext_nbytes(params.poly_modulus_degree, 3)
    assert key_nbytes(w, 1, params, 4, encrypted_weights=True) == \
        ciphertext_nbytes(params.poly_modulus_degree, 3)
    assert key_nbytes(PtKey(0, "m", 0), 1, params, 4, encrypted_weights=True) == \
        plaintext_nbytes(params.poly_modulus_degree, 3)
    assert key_nbytes(b, 0, params, 4, scalar_plaintexts=True) == 8


def test_plan_byte_totals():
    stages = make_stages([13, 7, 5], (4, 8), [SQ, None])
    plan = compile_stages(stages, (4, 8))
    N, L = plan.params.poly_modulus_degree, len(plan.primes)
    expected = sum(plaintext_nbytes(N, L - lvl) for lvl, _ in plan.pt_spec.values())
    assert plan.plaintext_bytes() == plan.weight_bytes() == expected
    assert sum(r["plaintext_bytes"] for r in plan.op_counts) == expected
    pe = compile_stages(stages, (4, 8), encrypt_weights=True)
    enc = set(pe.encrypted_keys())
    assert enc == {k for k in pe.pt_spec if k.kind in ("w", "b")}
    assert pe.weight_bytes() - pe.plaintext_bytes() == sum(pe.key_nbytes(k) for k in enc)
    assert pe.plaintext_bytes() == sum(pe.key_nbytes(k) for k in pe.pt_spec if k not in enc)
    assert plan.encrypted_keys() == []


# ------------------------------------------------------------------ plan objects
def test_plans_are_frozen():
    plan = compile_stages(make_stages([13, 7, 5], (4, 8), [SQ, None]), (4, 8))
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.depth = 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.stages[0].rows = []
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.stages[0].rows[0].bias_key = None


def test_rotation_steps_and_row_keys():
    plan = compile_stages(make_stages([13, 7, 9, 5], (4, 8), [SQ, SQ, None]), (4, 8))
    assert plan.rotation_steps == sorted({s for st in plan.stages for s in st.rotation_steps})
    b = plan.batch
    assert plan.stages[0].rotation_steps == [4 * b, 8 * b, 16 * b]           # W: sum over j
    assert plan.stages[1].rotation_steps == [b, 2 * b, -b, -2 * b]           # WT + replicate
    assert plan.stages[2].rotation_steps == [4 * b, 8 * b, 16 * b]
    for st in plan.stages:
        assert st.n_packed_tiles == sum(len(r.terms) for r in st.rows)
        for row in st.rows:
            keys = row.keys()
            assert keys[:len(row.terms)] == [k for _, k in row.terms]
            assert set(keys) <= set(plan.pt_spec)
    # a stage without live rows needs no rotation
    stages = make_stages([13, 7, 5], (4, 8), [SQ, None], p_zero=0.0, force_zero=False)
    stages[1]["matrix"][:] = 0.0
    stages[1]["tile_mask"][:] = False
    dead = compile_stages(stages, (4, 8))
    assert dead.stages[1].rows == [] and dead.stages[1].rotation_steps == []


def test_slot_index_is_the_packing_layout():
    plan = compile_stages(make_stages([13, 5], (4, 8), [None]), (4, 8))
    t1, t2 = plan.tile_shape
    fill = np.arange(t2 * t1, dtype=float).reshape(t2, t1)       # fill[j, i]
    vec = tile_vector(plan.tile_shape, plan.batch, fill)
    for j in range(t2):
        for i in range(t1):
            idx = plan.slot_index(j, i, np.arange(plan.batch))
            assert np.all(vec[idx] == fill[j, i])
    assert plan.slot_index(t2 - 1, t1 - 1, plan.batch - 1) == plan.n_slots - 1
