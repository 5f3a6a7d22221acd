"""Mutation fuzzing of the untrusted bytes of encrypted inference (helper, not a test module).

What travels -- the server package (:class:`ServerModel`), an
:class:`EncryptedBatch` and an :class:`EncryptedResult` -- is mutated and fed
to the code that would receive it (server load + evaluate, client load +
decrypt).  The property checked: every mutation either raises a clean error
(a ``ValueError`` subclass such as ``SerializationError`` / ``BindingError``,
or a ``RuntimeError`` from SEAL) or yields *exactly* the unmutated result.
Anything else is a crash (another exception type, or the process dying) or a
silently wrong result.

Mutation classes
----------------
raw
    Byte-level damage with the checksum left as is (bit flips, byte writes,
    truncation, insertion, deletion, appended garbage, duplicated or zeroed
    ranges): what transport or storage does by accident.  Must always raise
    ``SerializationError`` (the SHA-256 digest).
header
    The JSON header edited (values replaced by nasty ones, keys dropped or
    added, list elements dropped/duplicated, numbers nudged, array specs
    changed) and the digest *recomputed*: exercises the validation behind the
    digest (sizes, plan consistency, bindings).
seal_header
    One byte of the 16-byte header of an embedded SEAL object changed, digest
    recomputed (SEAL validates magic, version, compression mode and size).
seal_body
    A bit of the body of an embedded SEAL object (ciphertext, keys, context)
    flipped, digest recomputed.  CKKS ciphertexts and keys are malleable and
    the digest is not a MAC (see :mod:`skhepex.he.serialization`): a sender
    who recomputes the digest can change results, so this class is only
    required not to crash; wrong results are counted as ``malleable``.

Run as a script for a campaign in a separate process (a segfault then shows
as a non-zero return code)::

    python tests/he/he_fuzz.py --n 1000 --seed 0

which prints a JSON summary on its last line.
"""
import copy
import hashlib
import json
import struct
import sys
import time
import tracemalloc

import numpy as np

from skhepex.he.serialization import MAGIC

_START = len(MAGIC) + 32                      # after magic + digest
_SEAL_MAGIC = b"\x5e\xa1"
#: Errors a receiver may raise on bad bytes.
CLEAN = (ValueError, RuntimeError)
#: Mutation classes whose outcome must be an error or the exact result.
STRICT_CLASSES = ("raw", "header", "seal_header")
CLASS_WEIGHTS = {"raw": 0.35, "header": 0.40, "seal_header": 0.15, "seal_body": 0.10}

#: Replacement values of header mutations.  (No float infinities: ``json`` writes
#: them as ``Infinity`` and ``int(inf)`` raises OverflowError, a known bug tracked
#: by strict xfail tests in test_serialization.py, test_wire.py and test_server.py.)
NASTY = [None, True, False, 0, 1, -1, 2, 3, 7, 64, 1 << 31, 1 << 63, 10**9, -(10**9), 10**30,
         0.5, -2.5, 1e300, float("nan"), "", "x", "0", "W", "WT", "0:w:0:0", "0:b:0",
         "<f8", "|u1", "|b1", "<i8", "<f4", "O", [], [0], [1, 1], [[0, 1]], [-1], {}, {"a": 1},
         "EncryptedBatch", "EncryptedResult", "ServerModel", "CompiledPlan"]


# ------------------------------------------------------------------ container
def split(data):
    """(header dict, payload bytes) of a container, without checking the digest."""
    data = bytes(data)
    (hlen,) = struct.unpack("<Q", data[_START:_START + 8])
    meta = json.loads(data[_START + 8:_START + 8 + hlen])
    return meta, data[_START + 8 + hlen:]


def reseal(meta, payload):
    """A container with header ``meta`` (dict or bytes) and a recomputed digest."""
    hdr = meta if isinstance(meta, (bytes, bytearray)) else json.dumps(meta).encode("utf-8")
    body = struct.pack("<Q", len(hdr)) + bytes(hdr) + bytes(payload)
    return MAGIC + hashlib.sha256(body).digest() + body


def array_ranges(meta):
    """``{name: (start, stop)}`` of every array in the payload."""
    out, pos = {}, 0
    for name, dt, shape in meta["arrays"]:
        n = np.dtype(dt).itemsize * int(np.prod(shape, dtype=np.int64))
        out[name] = (pos, pos + n)
        pos += n
    return out


# ------------------------------------------------------------------ mutations
def raw_mutation(data, rng):
    """Damage the bytes (digest untouched); returns (description, bytes)."""
    data = bytearray(data)
    n = len(data)
    op = rng.choice(["flip", "byte", "truncate", "insert", "delete", "append", "duplicate",
                     "zero"])
    i = int(rng.integers(n))
    if op == "flip":
        data[i] ^= 1 << int(rng.integers(8))
    elif op == "byte":
        data[i] = (data[i] + int(rng.integers(1, 256))) % 256
    elif op == "truncate":
        del data[i:]
    elif op == "insert":
        data[i:i] = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
    elif op == "delete":
        del data[i:i + int(rng.integers(1, 64))]
    elif op == "append":
        data += rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
    elif op == "duplicate":
        k = int(rng.integers(1, 4096))
        data[i:i] = data[i:i + k]
    else:
        k = int(rng.integers(1, 256))
        if not any(data[i:i + k]):
            data[i] = 1
        else:
            data[i:i + k] = bytes(len(data[i:i + k]))
    return f"raw:{op}@{i}", bytes(data)


def _paths(node, prefix=()):
    """Every path (tuple of keys / indices) into a JSON tree, the root excluded."""
    items = node.items() if isinstance(node, dict) else (
        enumerate(node) if isinstance(node, list) else ())
    for k, v in items:
        yield prefix + (k,)
        yield from _paths(v, prefix + (k,))


def _nasty(rng):
    return copy.deepcopy(NASTY[int(rng.integers(len(NASTY)))])


def mutate_tree(meta, rng):
    """Edit one node of a JSON tree in place; returns a description."""
    paths = list(_paths(meta))
    path = paths[int(rng.integers(len(paths)))]
    parent = meta
    for k in path[:-1]:
        parent = parent[k]
    key, value = path[-1], parent[path[-1]]
    ops = ["replace"]
    if isinstance(value, bool) or value is None:
        pass
    elif isinstance(value, (int, float)):
        ops += ["nudge", "nudge", "negate"]
    elif isinstance(value, list):
        ops += ["drop", "dup", "append", "empty"] if value else ["append"]
    elif isinstance(value, dict):
        ops += ["delkey", "addkey"] if value else ["addkey"]
    elif isinstance(value, str):
        ops += ["strchar"]
    if isinstance(parent, dict):
        ops.append("delete")
    op = ops[int(rng.integers(len(ops)))]
    if op == "replace":
        parent[key] = _nasty(rng)
    elif op == "nudge":
        parent[key] = value + int(rng.choice([-2, -1, 1, 2]))
    elif op == "negate":
        parent[key] = -value if value else -1
    elif op == "drop":
        del value[int(rng.integers(len(value)))]
    elif op == "dup":
        j = int(rng.integers(len(value)))
        value.insert(j, copy.deepcopy(value[j]))
    elif op == "append":
        value.append(_nasty(rng))
    elif op == "empty":
        value.clear()
    elif op == "delkey":
        del value[list(value)[int(rng.integers(len(value)))]]
    elif op == "addkey":
        value["zz_extra"] = _nasty(rng)
    elif op == "strchar":
        j = int(rng.integers(len(value) + 1))
        parent[key] = value[:j] + "01:xW"[int(rng.integers(5))] + value[j + 1:]
    elif op == "delete":
        del parent[key]
    return f"header:{op}@{'/'.join(map(str, path))}"


def header_mutation(data, rng):
    """Edit the JSON header and recompute the digest; returns (description, bytes)."""
    meta, payload = split(data)
    desc = mutate_tree(meta, rng)
    return desc, reseal(meta, payload)


def _seal_arrays(meta, payload):
    return [(name, rg) for name, rg in array_ranges(meta).items()
            if rg[1] - rg[0] > 64 and payload[rg[0]:rg[0] + 2] == _SEAL_MAGIC]


def seal_header_mutation(data, rng):
    """Change one byte of an embedded SEAL object's 16-byte header (digest recomputed)."""
    meta, payload = split(data)
    candidates = _seal_arrays(meta, payload)
    name, (a, _) = candidates[int(rng.integers(len(candidates)))]
    i = int(rng.integers(16))
    payload = bytearray(payload)
    payload[a + i] = (payload[a + i] + int(rng.integers(1, 256))) % 256
    return f"seal_header:{name}@{i}", reseal(meta, payload)


def seal_body_mutation(data, rng):
    """Flip one bit in the body of an embedded SEAL / TenSEAL object (digest recomputed)."""
    meta, payload = split(data)
    ranges = {k: v for k, v in array_ranges(meta).items() if v[1] - v[0] > 64}
    name = sorted(ranges)[int(rng.integers(len(ranges)))]
    a, b = ranges[name]
    i = int(rng.integers(a + 16, b))
    payload = bytearray(payload)
    payload[i] ^= 1 << int(rng.integers(8))
    return f"seal_body:{name}@{i - a}", reseal(meta, payload)


MUTATORS = {"raw": raw_mutation, "header": header_mutation,
            "seal_header": seal_header_mutation, "seal_body": seal_body_mutation}


# ------------------------------------------------------------------ outcomes
def outcome(fn, data, expected):
    """``"exact"``, ``"wrong"``, ``"raised:<Error>"`` (clean) or ``"crash:<Error>"``."""
    try:
        Y = fn(data)
    except CLEAN as exc:
        return f"raised:{type(exc).__name__}"
    except Exception as exc:          # noqa: BLE001 - any other type is a finding
        return f"crash:{type(exc).__name__}:{str(exc)[:120]}"
    Y = np.asarray(Y)
    return "exact" if Y.shape == expected.shape and np.array_equal(Y, expected) else "wrong"


def build_world(tile=(4, 8), n_samples=3, seed=0):
    """A tiny network with keys: what travels, and how each side consumes it.

    Returns
    -------
    world : dict
        ``targets``: name -> (bytes, consume(bytes) -> decrypted outputs);
        ``expected``: the outputs of the unmutated bytes; plus the objects.
    """
    from he_stages import SQ, make_stages

    from skhepex.he import Client, ServerModel, compile_stages

    stages = make_stages([13, 7, 5], tile, [SQ, None], seed=seed)
    plan = compile_stages(stages, tile)
    client = Client(plan)
    server = client.server_model()
    X = np.random.default_rng(seed + 1).random((n_samples, 13))
    batch = client.encrypt(X)
    result = server.evaluate(batch)
    expected = client.decrypt(result, n_samples=n_samples)

    def via_server(data):
        return client.decrypt(ServerModel.load(data).evaluate(batch), n_samples=n_samples)

    def via_batch(data):
        return client.decrypt(server.evaluate(data), n_samples=n_samples)

    def via_result(data):
        return client.decrypt(client.load_result(data), n_samples=n_samples)

    targets = {"server": (server.serialize(), via_server),
               "batch": (batch.serialize(), via_batch),
               "result": (result.serialize(), via_result)}
    for name, (data, fn) in targets.items():       # the unmutated bytes work
        assert outcome(fn, data, expected) == "exact", name
    return dict(targets=targets, expected=expected, stages=stages, plan=plan, client=client,
                server=server, X=X, batch=batch, result=result)


def campaign(world, n, seed=0, classes=None):
    """Run ``n`` random mutations spread over the targets; returns the records.

    Parameters
    ----------
    world : dict
        From :func:`build_world`.
    n : int
        Mutations in total (round-robin over the targets).
    seed : int
    classes : dict, optional
        Class -> weight (default :data:`CLASS_WEIGHTS`).

    Returns
    -------
    records : list of (target, class, description, outcome)
    """
    classes = CLASS_WEIGHTS if classes is None else classes
    names, w = list(classes), np.array(list(classes.values()), dtype=float)
    rng = np.random.default_rng(seed)
    targets = list(world["targets"].items())
    records = []
    for i in range(n):
        tname, (data, fn) = targets[i % len(targets)]
        cls = names[int(rng.choice(len(names), p=w / w.sum()))]
        desc, mutated = MUTATORS[cls](data, rng)
        records.append((tname, cls, desc, outcome(fn, mutated, world["expected"])))
    return records


def summarize(records):
    """Counts and the offending records of a campaign.

    ``crash``: exceptions outside :data:`CLEAN`; ``wrong``: silently wrong
    results in a strict class; ``raw_not_serialization``: raw damage not
    refused as ``SerializationError``; ``malleable``: wrong results of
    ``seal_body`` mutations (allowed, by design).
    """
    out = dict(n=len(records), crash=[], wrong=[], raw_not_serialization=[], malleable=0,
               outcomes={})
    for tname, cls, desc, res in records:
        key = f"{tname}/{cls}/{res.split(':')[0] if res.startswith('crash') else res}"
        out["outcomes"][key] = out["outcomes"].get(key, 0) + 1
        if res.startswith("crash"):
            out["crash"].append((tname, desc, res))
        elif res == "wrong":
            if cls in STRICT_CLASSES:
                out["wrong"].append((tname, desc, res))
            else:
                out["malleable"] += 1
        if cls == "raw" and res != "raised:SerializationError":
            out["raw_not_serialization"].append((tname, desc, res))
    return out


if __name__ == "__main__":    # pragma: no cover - run by test_wire.py in a subprocess
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    summary = summarize(campaign(build_world(), args.n, args.seed))
    sys.stdout.write(json.dumps(summary) + "\n")


def peak_memory(fn):
    """(exception raised, peak traced bytes, seconds) of ``fn()``."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        fn()
        exc = None
    except Exception as e:          # noqa: BLE001
        exc = e
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return exc, peak, time.perf_counter() - t0
