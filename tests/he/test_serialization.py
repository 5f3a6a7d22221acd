"""skhepex.he.serialization: the checksummed pickle-free container and plan bytes."""
import hashlib
import json
import struct

import numpy as np
import pytest
from he_fuzz import peak_memory, reseal, split
from he_stages import SQ, make_stages, make_X

from skhepex.he import PlainSimulator, compile_stages
from skhepex.he.serialization import (MAGIC, MAX_HEADER_BYTES, SerializationError, pack,
                                      plan_from_bytes, plan_from_payload, plan_to_bytes,
                                      plan_to_payload, unpack)

MB = 1 << 20


def test_he_package_has_no_pickle():
    import importlib
    import pkgutil

    import skhepex.he as he
    for m in pkgutil.iter_modules(he.__path__):
        mod = importlib.import_module(f"skhepex.he.{m.name}")
        assert not hasattr(mod, "pickle"), m.name


@pytest.fixture(scope="module")
def plan():
    return compile_stages(make_stages([13, 7, 9, 5], (4, 8), [SQ, (0.5, -0.3, 0.2), None],
                                      seed=4), (4, 8))


# ------------------------------------------------------------------ container
def test_pack_unpack_round_trip():
    arrays = dict(f=np.arange(6, dtype=np.float64).reshape(2, 3), b=np.array([True, False]),
                  u=np.arange(5, dtype=np.uint8), i=np.array([-1, 2**40], dtype=np.int64),
                  raw=b"\x00\x01\x02", empty=np.zeros((0, 4)))
    data = pack("Thing", {"x": 1, "s": "é", "l": [1, [2]]}, arrays)
    assert data.startswith(MAGIC)
    assert hashlib.sha256(data[len(MAGIC) + 32:]).digest() == data[len(MAGIC):len(MAGIC) + 32]
    header, out = unpack(data, "Thing")
    assert header == {"x": 1, "s": "é", "l": [1, [2]]}
    assert list(out) == list(arrays)
    for k, v in arrays.items():
        v = np.frombuffer(v, np.uint8) if isinstance(v, bytes) else v
        np.testing.assert_array_equal(out[k], v)
        assert out[k].dtype == v.dtype and out[k].shape == v.shape
        assert not out[k].flags.writeable                    # views of the input bytes
    assert unpack(bytearray(data), "Thing")[0] == header
    assert unpack(memoryview(data), "Thing")[0] == header


def test_pack_refuses_object_and_other_dtypes():
    for arr in (np.array([object()]), np.zeros(2, np.float32), np.zeros(2, np.complex128)):
        with pytest.raises(TypeError, match="dtype"):
            pack("Thing", {}, {"a": arr})


def test_unpack_refuses_bad_containers():
    good = pack("Thing", {"x": 1}, {"a": np.arange(3.0)})
    meta, payload = split(good)
    with pytest.raises(TypeError):
        unpack("not bytes", "Thing")
    cases = {
        "bad magic": b"SKHEPEX\x01" + good[8:],
        "truncated": good[:len(MAGIC) + 32 + 4],
        "checksum": good[:-1] + bytes([good[-1] ^ 1]),
        "expected 'Other'": good,
        "header length": MAGIC + hashlib.sha256(struct.pack("<Q", 1 << 40)).digest()
        + struct.pack("<Q", 1 << 40),
        "malformed header": reseal(b"{not json", payload),
        "malformed header ": reseal(b"[1, 2]", payload),
        "malformed header  ": reseal({"kind": "Thing", "fields": [], "arrays": []}, payload),
        "malformed header   ": reseal(b"\xff\xfe", payload),
        "malformed array spec": reseal(dict(meta, arrays=[["a", "O", [3]]]), payload),
        "malformed array spec ": reseal(dict(meta, arrays=[["a", "<f8", [-3]]]), payload),
        "malformed array spec  ": reseal(dict(meta, arrays=[["a", "<f8"]]), payload),
        "malformed array spec   ": reseal(dict(meta, arrays=[["a", "<f8", ["x"]]]), payload),
        "do not match the payload": reseal(dict(meta, arrays=[["a", "<f8", [2]]]), payload),
        "do not match the payload ": reseal(meta, payload + b"\x00"),
    }
    for what, data in cases.items():
        kind = "Other" if what.startswith("expected") else "Thing"
        with pytest.raises(SerializationError, match=what.strip()):
            unpack(data, kind)
    assert MAX_HEADER_BYTES <= 64 * MB




@pytest.mark.parametrize("dtype,shape", [("<f8", [10**9]), ("|u1", [10**12]),
                                         ("<f8", [10**5, 10**5]), ("<i8", [2**62, 2**62])])
def test_huge_array_claim_refused_before_allocating(dtype, shape):
    """The header claims far more than the ~1 MB of data: refused, nothing allocated."""
    payload = np.random.default_rng(0).integers(0, 256, MB, dtype=np.uint8).tobytes()
    meta = {"kind": "Thing", "fields": {}, "arrays": [["a", dtype, shape]]}
    data = reseal(meta, payload)
    exc, peak, secs = peak_memory(lambda: unpack(data, "Thing"))
    assert isinstance(exc, SerializationError) and "larger than the data" in str(exc)
    assert peak < 50 * MB and secs < 2, (peak, secs)


def test_sizes_must_add_up_exactly():
    """Two arrays each fitting the data but not together, or leaving bytes over."""
    payload = bytes(800)
    for arrays in ([["a", "<f8", [100]], ["b", "<f8", [100]]], [["a", "<f8", [99]]]):
        with pytest.raises(SerializationError, match="payload length"):
            unpack(reseal({"kind": "T", "fields": {}, "arrays": arrays}, payload), "T")


# ------------------------------------------------------------------ plan bytes
def _same_plan(a, b):
    assert a.params == b.params and a.primes == b.primes and a.tile_shape == b.tile_shape
    assert (a.batch, a.n_features, a.n_outputs, a.depth) == (b.batch, b.n_features,
                                                             b.n_outputs, b.depth)
    assert a.pt_spec == b.pt_spec and a.level_ops == b.level_ops
    assert a.encrypted_weights == b.encrypted_weights
    assert a.scalar_plaintexts == b.scalar_plaintexts
    assert set(a.plaintexts) == set(b.plaintexts)
    for k, v in a.plaintexts.items():
        np.testing.assert_array_equal(b.plaintexts[k], v)
    for sa, sb in zip(a.stages, b.stages, strict=True):
        assert (sa.name, sa.orientation, sa.n_in, sa.n_out, sa.grid, sa.live_in, sa.masked,
                sa.act_sign, sa.reduce_steps, sa.replicate_steps, sa.in_chunk, sa.out_chunk,
                sa.encrypted) == (sb.name, sb.orientation, sb.n_in, sb.n_out, sb.grid,
                                  sb.live_in, sb.masked, sb.act_sign, sb.reduce_steps,
                                  sb.replicate_steps, sb.in_chunk, sb.out_chunk, sb.encrypted)
        np.testing.assert_array_equal(sa.tile_mask, sb.tile_mask)
        assert [(r.p, r.terms, r.keys()) for r in sa.rows] == [(r.p, r.terms, r.keys())
                                                               for r in sb.rows]
        assert sa.const_out.keys() == sb.const_out.keys()
        for p, v in sa.const_out.items():
            np.testing.assert_array_equal(sb.const_out[p], v)


@pytest.mark.parametrize("tile,encrypt", [((4, 8), False), ((8, 4), True), ((1, 1), False)])
def test_plan_bytes_round_trip(tile, encrypt):
    stages = make_stages([13, 7, 9, 5], tile, [SQ, (0.5, -0.3, 0.2), None], seed=5)
    stages[0]["matrix"][4:8 if tile[0] == 4 else 12, :] = 0.0     # a constant output row
    if tile == (4, 8):
        stages[0]["tile_mask"][1, :] = False
    plan = compile_stages(stages, tile, encrypt_weights=encrypt)
    back = plan_from_bytes(plan_to_bytes(plan))
    _same_plan(plan, back)
    X = make_X(20)
    np.testing.assert_array_equal(PlainSimulator(back).predict(X), PlainSimulator(plan).predict(X))
    assert plan_to_bytes(back) == plan_to_bytes(plan)


def test_plan_payload_drops_keys_and_constants(plan):
    keys = [k for k in plan.pt_spec if k.kind == "w"][:3]
    header, arrays = plan_to_payload(plan, drop_keys=keys, drop_constants=True)
    assert set(header["pt_keys"]) == {str(k) for k in plan.plaintexts} - {str(k) for k in keys}
    assert all(not st["const_out"] for st in header["stages"])
    assert not any(n.startswith("co") for n in arrays)
    # a plan whose rows use plaintexts it does not hold (and that are not encrypted
    # weights) is refused when read back
    with pytest.raises(SerializationError, match="disagree"):
        plan_from_payload(header, arrays)
    # one tile per plaintext is stored, not the batch-replicated vector
    t1, t2 = plan.tile_shape
    assert all(a.size == t1 * t2 for n, a in arrays.items() if n.startswith("pt"))


@pytest.mark.parametrize("cut", [0, 8, 40, 48, 100, -1000, -1])
def test_truncated_plan_bytes_refused(plan, cut):
    data = plan_to_bytes(plan)
    with pytest.raises(SerializationError):
        plan_from_bytes(data[:cut])


def test_bit_flipped_plan_bytes_refused(plan):
    data = plan_to_bytes(plan)
    rng = np.random.default_rng(7)
    for off in rng.integers(0, len(data), 40):
        bad = bytearray(data)
        bad[off] ^= 1 << int(rng.integers(8))
        with pytest.raises(SerializationError):
            plan_from_bytes(bytes(bad))


def _edit(plan, fn):
    meta, payload = split(plan_to_bytes(plan))
    fn(meta["fields"])
    return reseal(meta, payload)


@pytest.mark.parametrize("edit,match", [
    (lambda f: f["stages"][0].update(orientation="X"), "orientation"),
    (lambda f: f["stages"][1].update(orientation="W"), "orientation"),
    (lambda f: f["stages"][0].update(act_sign=2), "act_sign"),
    (lambda f: f["stages"][0].update(n_in=99), "tile mask"),
    (lambda f: f["stages"][0]["rows"][0].__setitem__(0, 40), "out of range"),
    (lambda f: f["stages"][0]["rows"][0][1][0].__setitem__(0, 40), "out of range"),
    (lambda f: f["stages"][1].update(live_in=[40]), "out of range"),
    (lambda f: f.update(n_features=12), "n_features"),
    (lambda f: f.update(tile_shape=[3, 8]), "powers of two"),
    (lambda f: f.update(tile_shape=[128, 128]), "tile"),
    (lambda f: f["params"].update(coeff_mod_bit_sizes=[60] * 8), "insecure"),
    (lambda f: f.update(depth=40), "depth"),
    (lambda f: f.update(primes=[3, 5]), "primes"),
    (lambda f: f["pt_spec"][0].__setitem__(1, 99), "level"),
    (lambda f: f["pt_spec"].pop(0), "keys"),
    (lambda f: f["pt_keys"].__setitem__(0, "0:q:0"), "malformed plaintext key"),
    (lambda f: f["pt_keys"].__setitem__(0, "-1:w:0:0"), "malformed plaintext key"),
    (lambda f: f.pop("stages"), "stages"),
])
def test_inconsistent_plan_refused(plan, edit, match):
    """Edits behind a recomputed digest: the plan is validated field by field."""
    with pytest.raises(SerializationError, match=match):
        plan_from_bytes(_edit(plan, edit))


def test_plaintext_of_the_wrong_width_refused(plan):
    header, arrays = plan_to_payload(plan)
    arrays = dict(arrays, pt0=np.zeros(5))
    with pytest.raises(SerializationError, match="expected 32"):
        plan_from_payload(header, arrays)


# ------------------------------------------------------------------ known bugs
def test_plan_missing_plaintext_refused(plan):
    with pytest.raises(SerializationError):
        plan_from_bytes(_edit(plan, lambda f: f["pt_keys"].pop(0)))


def test_infinite_dimension_refused():
    hdr = b'{"kind": "T", "fields": {}, "arrays": [["a", "<f8", [Infinity]]]}'
    with pytest.raises(SerializationError):
        unpack(reseal(hdr, b""), "T")


def test_infinite_plan_field_refused(plan):
    data = _edit(plan, lambda f: f.update(depth="@@"))
    meta, payload = split(data)
    data = reseal(json.dumps(meta).replace('"@@"', "Infinity").encode(), payload)
    with pytest.raises(SerializationError):
        plan_from_bytes(data)


def test_deeply_nested_header_refused():
    hdr = b'{"kind": "T", "fields": ' + b"[" * 100_000 + b"]" * 100_000 + b', "arrays": []}'
    with pytest.raises(SerializationError):
        unpack(reseal(hdr, b""), "T")


@pytest.mark.parametrize("shape", [[0, 10**30], [1] * 65])
def test_unrepresentable_shape_refused(shape):
    payload = b"" if 0 in shape else bytes(8)
    data = reseal({"kind": "T", "fields": {}, "arrays": [["a", "<f8", shape]]}, payload)
    try:
        unpack(data, "T")
    except SerializationError:
        pass
    else:                                 # pragma: no cover
        pytest.fail("accepted")


@pytest.mark.xfail(strict=True, reason="BUG/limitation serialization.unpack: the JSON header "
                   "is parsed before any size check; small JSON values expand ~20x in "
                   "Python objects, so MAX_HEADER_BYTES = 64 MB lets a crafted header "
                   "allocate ~1.4 GB")
def test_header_parsing_memory_is_bounded():
    n = MB // 3
    hdr = (b'{"kind": "T", "fields": {"index": [' + b"[]," * n
           + b'[]]}, "arrays": []}')
    data = reseal(hdr, b"")
    exc, peak, _ = peak_memory(lambda: unpack(data, "T"))
    assert peak < 8 * len(data), (peak, len(data))
