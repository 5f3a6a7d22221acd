"""skhepex.he.seal_tools and skhepex.he.seal_backend: helpers around TenSEAL's SEAL bindings."""
import numpy as np
import pytest
import tenseal.sealapi as sealapi
from he_stages import SQ, make_stages

from skhepex.he import compile_stages
from skhepex.he.backends import NumpyBackend
from skhepex.he.packing import encode_input
from skhepex.he.program import run_stage
from skhepex.he.seal_backend import SealBackend
from skhepex.he.seal_tools import (ScalarPlain, check_plan_context, encode_plaintexts,
                                   encode_vector, galois_elements, level_ids, load_seal,
                                   make_context, save_seal)


@pytest.fixture(scope="module")
def setup():
    plan = compile_stages(make_stages([13, 7, 5], (4, 8), [SQ, None]), (4, 8))
    ctx = make_context(plan.params)
    return plan, ctx, ctx.seal_context().data


def test_context_and_levels(setup):
    plan, ctx, sd = setup
    assert ctx.has_secret_key() and ctx.global_scale == plan.params.scale
    ids = level_ids(sd)
    assert len(ids) == len(plan.primes) == plan.params.depth + 1
    check_plan_context(plan, sd)
    other = compile_stages(make_stages([13, 7, 9, 5], (4, 8), [SQ, SQ, None]), (4, 8))
    with pytest.raises(ValueError, match="primes"):
        check_plan_context(other, sd)


def test_save_load_round_trip_and_galois_elements(setup):
    plan, ctx, sd = setup
    enc = sealapi.CKKSEncoder(sd)
    pt = encode_vector(enc, np.arange(4.0), level_ids(sd)[0], plan.params.scale,
                       sealapi.Plaintext())
    ct = sealapi.Ciphertext(sd)
    sealapi.Encryptor(sd, ctx.secret_key().data).encrypt_symmetric(pt, ct)
    data = save_seal(ct)
    assert data[:2] == b"\x5e\xa1"                       # SEAL's serialization magic
    back = load_seal(sealapi.Ciphertext(), sd, data)
    out = sealapi.Plaintext()
    sealapi.Decryptor(sd, ctx.secret_key().data).decrypt(back, out)
    np.testing.assert_allclose(enc.decode_double(out)[:4], np.arange(4.0), atol=1e-6)
    with pytest.raises((RuntimeError, ValueError)):
        load_seal(sealapi.Ciphertext(), sd, data[:100])
    # Galois elements of steps: 3**step mod 2N (positive = left rotation)
    two_n = 2 * plan.params.poly_modulus_degree
    assert galois_elements(sd, [1, 2]) == [3, 9]
    assert galois_elements(sd, [-1])[0] == pow(3, plan.params.n_slots - 1, two_n)


def test_encode_plaintexts_scalar_and_vector(setup):
    plan, ctx, sd = setup
    pts = encode_plaintexts(plan, sd)
    assert set(pts) == set(plan.pt_spec)
    ids = level_ids(sd)
    for k, pt in pts.items():
        assert pt.parms_id() == ids[plan.pt_spec[k][0]]
    skip = plan.encrypted_keys() or list(plan.pt_spec)[:2]
    assert set(encode_plaintexts(plan, sd, skip=skip)) == set(plan.pt_spec) - set(skip)
    scalar = compile_stages(make_stages([13, 5], (1, 1), [None]), (1, 1))
    sd1 = make_context(scalar.params).seal_context().data
    sp = encode_plaintexts(scalar, sd1)
    assert all(isinstance(v, ScalarPlain) for v in sp.values())


def test_seal_backend_runs_a_stage_like_numpy(setup):
    """One stage on SEAL with the secret key at hand equals the NumPy backend."""
    plan, ctx, sd = setup
    st = plan.stages[0]
    X = np.random.default_rng(0).random((3, 13))
    vecs = encode_input(plan, X)[0]
    sk = ctx.secret_key().data
    enc = sealapi.CKKSEncoder(sd)
    encryptor, decryptor = sealapi.Encryptor(sd, sk), sealapi.Decryptor(sd, sk)
    ids = level_ids(sd)
    chunks = {}
    for q, v in vecs.items():
        pt = encode_vector(enc, v, ids[0], plan.params.scale, sealapi.Plaintext())
        chunks[q] = sealapi.Ciphertext(sd)
        encryptor.encrypt_symmetric(pt, chunks[q])
    gk = sealapi.GaloisKeys()
    sealapi.KeyGenerator(sd, sk).create_galois_keys(galois_elements(sd, st.rotation_steps), gk)
    be = SealBackend(sd, sealapi.Evaluator(sd), encode_plaintexts(plan, sd), gk,
                     ctx.relin_keys().data, len(plan.primes))
    outs = run_stage(st, chunks, be)
    ref = run_stage(st, vecs, NumpyBackend(plan.plaintexts))
    assert sorted(outs) == sorted(ref)
    for p, ct in outs.items():
        assert be.level(ct) == 2                        # weights + square
        pt = sealapi.Plaintext()
        decryptor.decrypt(ct, pt)
        np.testing.assert_allclose(enc.decode_double(pt), ref[p], atol=1e-4)


def test_save_load_fall_back_to_disk(setup, monkeypatch, tmp_path):
    """A temp directory that cannot be written (e.g. a full /dev/shm) falls back."""
    from skhepex.he import seal_tools

    plan, ctx, sd = setup
    monkeypatch.setattr(seal_tools, "SEAL_TMP_DIR", str(tmp_path / "missing"))
    enc = sealapi.CKKSEncoder(sd)
    pt = encode_vector(enc, np.arange(4.0), level_ids(sd)[0], plan.params.scale,
                       sealapi.Plaintext())
    ct = sealapi.Ciphertext(sd)
    sealapi.Encryptor(sd, ctx.secret_key().data).encrypt_symmetric(pt, ct)
    back = load_seal(sealapi.Ciphertext(), sd, save_seal(ct))
    out = sealapi.Plaintext()
    sealapi.Decryptor(sd, ctx.secret_key().data).decrypt(back, out)
    np.testing.assert_allclose(enc.decode_double(out)[:4], np.arange(4.0), atol=1e-6)



def test_public_context_shares_the_seal_context_and_holds_no_secret_key(setup):
    import tenseal as ts

    from skhepex.he.seal_tools import PublicContext

    _, ctx, sd = setup
    pub = PublicContext(ctx)
    assert pub.seal_context().data is sd                 # the client's, not a copy
    assert not pub.has_secret_key() and not pub.is_private() and pub.is_public()
    with pytest.raises(ValueError, match="secret key"):
        pub.secret_key()
    assert save_seal(pub.public_key().data) == save_seal(ctx.public_key().data)
    assert pub.has_relin_keys()
    assert save_seal(pub.relin_keys().data) == save_seal(ctx.relin_keys().data)
    data = pub.serialize()
    assert pub.serialize(save_public_key=True, save_relin_keys=True) is data
    back = ts.context_from(data)              # a public TenSEAL context again
    assert back.is_public() and not back.has_secret_key() and back.has_relin_keys()
    assert save_seal(back.public_key().data) == save_seal(ctx.public_key().data)
    for bad in (dict(save_secret_key=True), dict(save_galois_keys=True),
                dict(save_relin_keys=False)):
        with pytest.raises(ValueError, match="public and relinearisation keys only"):
            pub.serialize(**bad)
    # it keeps the public wrappers and bytes only: nothing that reaches the secret key
    assert {type(v).__name__ for v in vars(pub).values()} == {
        "SEALContext", "PublicKey", "RelinKeys", "bytes"}


def test_public_context_without_relin_keys(setup):
    from skhepex.he.seal_tools import PublicContext

    _, ctx, _ = setup

    class NoRelin:                    # a private context whose relin keys were never made
        seal_context, public_key = ctx.seal_context, ctx.public_key

        @staticmethod
        def has_relin_keys():
            return False

        @staticmethod
        def serialize(**kw):
            return b"public"

    pub = PublicContext(NoRelin())
    assert not pub.has_relin_keys() and pub.serialize() == b"public"
    with pytest.raises(ValueError, match="no relinearisation keys"):
        pub.relin_keys()
