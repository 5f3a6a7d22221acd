"""The HE cost model: unit costs of SEAL primitives, latency and memory of a plan.

Latency of encrypted inference is, to first order, op counts times unit costs
(:func:`predict_latency`); the op counts come from the compiled plan, the unit
costs either from a table (:func:`tabulated_unit_costs`: deterministic, no
SEAL needed, used in simulate mode and for cost estimates without keys) or
measured on this machine once per process and parameter set
(:func:`unit_costs` with ``measure=True``).
"""
from __future__ import annotations

import logging
import time

import numpy as np

from .plan import ciphertext_nbytes
from .program import OPS

__all__ = ["measure_unit_costs", "tabulated_unit_costs", "unit_costs", "predict_latency",
           "client_latency", "CLIENT_OPS",
           "memory_estimate"]

logger = logging.getLogger("skhepex")

_MEASURED = {}

# Seconds per prime of the ciphertext's level at N=8192, measured with SEAL via
# TenSEAL 0.3.18 on one thread (see shared DESIGN notes, section 4a): linear
# ops cost ~ primes; key switching (rotate, relinearize) ~ primes * (primes + 1).
_PER_PRIME_8192 = dict(mul_plain=6.3e-5, mul_ct=2.5e-4, rescale=2.2e-4, add=2.0e-5,
                       add_plain=2.0e-5, negate=2.0e-5, encode=2.1e-4, encode_scalar=1.0e-5,
                       encrypt=4.2e-4, decrypt=3.2e-5)
#: Client-side operations priced per ciphertext: encode + encrypt (symmetric) of an
#: input, decrypt + decode of an output.
CLIENT_OPS = ("encode", "encrypt", "decrypt", "decode")
# decode (inverse FFT and conversion of N/2 doubles) does not depend on the level
_DECODE_8192 = 1.1e-3
_KEYSWITCH_8192 = 2.1e-4
# growth of one op's cost when N doubles (measured 8192 -> 16384: ~2.5x linear ops,
# ~2.3x per key-switch unit)
_N_FACTOR = {4096: 0.42, 8192: 1.0, 16384: 2.5, 32768: 6.0}
_KS_FACTOR = {4096: 0.45, 8192: 1.0, 16384: 2.3, 32768: 5.3}


def tabulated_unit_costs(params) -> dict:
    """Unit costs of SEAL primitives from a fixed table (no SEAL, deterministic).

    Parameters
    ----------
    params : CKKSParams
        Parameters to cost: the ring dimension scales the per-prime costs
        and the number of data primes sets the levels.

    Returns
    -------
    costs : dict
        ``{op: {level: seconds}}``, same form as :func:`measure_unit_costs`.
    """
    N = params.poly_modulus_degree
    n_primes = len(params.coeff_mod_bit_sizes) - 1
    f, ks = _N_FACTOR.get(N, N / 8192 * 1.25), _KS_FACTOR.get(N, N / 8192 * 1.15)
    res = {op: {} for op in OPS + CLIENT_OPS}
    for lvl in range(n_primes):
        p = n_primes - lvl
        for op, c in _PER_PRIME_8192.items():
            res[op][lvl] = c * p * f
        res["rotate"][lvl] = res["relinearize"][lvl] = _KEYSWITCH_8192 * p * (p + 1) * ks
        res["decode"][lvl] = _DECODE_8192 * f
    return res


def measure_unit_costs(params, repeats: int = 10, client=None) -> dict:
    """Time SEAL primitives on ``params`` at every level, on this machine.

    Parameters
    ----------
    params : CKKSParams
        Parameters to time (a context with fresh keys is built for them).
    repeats : int, default=10
        Timing repetitions per op and level.
    client : Client, optional
        A :class:`~skhepex.he.client.Client` on ``params`` whose keys are
        used for the timing (its context and, when it has rotations, one of
        its Galois keys).  Without it a context and keys are generated for
        the timing: at N=16384 that is about 100 MB that SEAL's memory pool
        keeps for the rest of the process.

    Returns
    -------
    costs : dict
        ``{op: {level: seconds}}`` for ops ``mul_plain, mul_ct, rotate, rescale,
        relinearize, add, add_plain, negate, encode_scalar`` and the client's
        ``encode, encrypt`` (symmetric), ``decrypt, decode``.
    """
    import tenseal.sealapi as sealapi

    from .seal_tools import galois_elements, level_ids, make_context

    if client is not None and client.plan.params != params:
        raise ValueError("the client's keys are for other CKKS parameters")
    ctx = make_context(params) if client is None else client.context
    sd = ctx.seal_context().data
    ids = level_ids(sd)
    if client is not None and client.rotation_steps:
        step, gk = client.rotation_steps[0], client.galois_keys   # one key switch, any step
    else:
        step, gk = 1, sealapi.GaloisKeys()
        sealapi.KeyGenerator(sd, ctx.secret_key().data).create_galois_keys(
            galois_elements(sd, [step]), gk)
    rk = ctx.relin_keys().data
    ev = sealapi.Evaluator(sd)
    enc = sealapi.CKKSEncoder(sd)
    encr = sealapi.Encryptor(sd, ctx.public_key().data)
    vec = np.random.default_rng(0).uniform(-1, 1, params.n_slots).tolist()
    res = {op: {} for op in OPS + CLIENT_OPS}
    encryptor = sealapi.Encryptor(sd, ctx.secret_key().data)
    decryptor = sealapi.Decryptor(sd, ctx.secret_key().data)

    def tm(fn):
        fn()
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        return (time.perf_counter() - t0) / repeats

    sc = 2.0 ** 16        # small scales keep every op in bounds at every level
    for lvl, pid in enumerate(ids):
        pt = sealapi.Plaintext()
        enc.encode(vec, pid, sc, pt)
        ct = sealapi.Ciphertext(sd)
        encr.encrypt(pt, ct)   # a plaintext of level ``lvl`` encrypts at that level
        out = sealapi.Ciphertext(sd)
        res["encode"][lvl] = tm(lambda: enc.encode(vec, pid, sc, sealapi.Plaintext()))
        res["encrypt"][lvl] = tm(lambda: encryptor.encrypt_symmetric(pt, out))
        ptd = sealapi.Plaintext()
        res["decrypt"][lvl] = tm(lambda: decryptor.decrypt(ct, ptd))
        res["decode"][lvl] = tm(lambda: enc.decode_double(ptd))
        pts_ = sealapi.Plaintext()
        res["encode_scalar"][lvl] = tm(lambda: enc.encode(0.123, pid, sc, pts_))
        res["mul_plain"][lvl] = tm(lambda: ev.multiply_plain(ct, pt, out))
        res["add"][lvl] = tm(lambda: ev.add(ct, ct, out))
        res["add_plain"][lvl] = tm(lambda: ev.add_plain(ct, pt, out))
        res["negate"][lvl] = tm(lambda: ev.negate(ct, out))
        res["rotate"][lvl] = tm(lambda: ev.rotate_vector(ct, step, gk, out))
        res["mul_ct"][lvl] = tm(lambda: ev.square(ct, out))
        o3 = sealapi.Ciphertext(sd)
        ev.square(ct, o3)
        res["relinearize"][lvl] = tm(lambda: ev.relinearize(o3, rk, out))
        if lvl < len(ids) - 1:
            q = float(sd.get_context_data(pid).parms().coeff_modulus()[-1].value())
            ptq = sealapi.Plaintext()
            enc.encode(vec, pid, q, ptq)
            big = sealapi.Ciphertext(sd)
            ev.multiply_plain(ct, ptq, big)
            res["rescale"][lvl] = tm(lambda: ev.rescale_to_next(big, out))
    return res


def unit_costs(params, measure=True, repeats: int = 5, client=None) -> dict:
    """Unit costs for ``params``: measured once per process, or tabulated.

    Parameters
    ----------
    params : CKKSParams
        Parameters to cost; measurements are cached per ring dimension,
        coefficient modulus and scale.
    measure : bool, default=True
        Time SEAL on this machine (first call per parameter set only; keys are
        generated for the timing).  ``False``: :func:`tabulated_unit_costs`.
    repeats : int, default=5
        Timing repetitions per op and level.
    client : Client, optional
        Time with this client's keys instead of generating some (see
        :func:`measure_unit_costs`).

    Returns
    -------
    costs : dict
        ``{op: {level: seconds}}``.
    """
    if not measure:
        return tabulated_unit_costs(params)
    key = (params.poly_modulus_degree, params.coeff_mod_bit_sizes, params.scale_bits)
    if key not in _MEASURED:
        logger.info("measuring CKKS unit costs for N=%d %s", params.poly_modulus_degree,
                    list(params.coeff_mod_bit_sizes))
        _MEASURED[key] = measure_unit_costs(params, repeats=repeats, client=client)
    return _MEASURED[key]


def predict_latency(plan, costs: dict, level_ops=None):
    """Predicted seconds per ciphertext batch and stage: op counts x unit costs.

    Parameters
    ----------
    plan : CompiledPlan
        Plan whose per-stage ``level_ops`` are costed.
    costs : dict
        ``{op: {level: seconds}}``.
    level_ops : list of dict, optional
        ``{(op, level): count}`` per stage (default: the plan's).

    Returns
    -------
    seconds : list of float
        One per stage.
    """
    level_ops = plan.level_ops if level_ops is None else level_ops
    return [float(sum(n * costs.get(op, {}).get(lvl, 0.0) for (op, lvl), n in d.items()))
            for d in level_ops]


def client_latency(plan, costs) -> float:
    """Predicted client seconds per ciphertext batch: encode + encrypt, decrypt + decode.

    Parameters
    ----------
    plan : CompiledPlan
        The packed network (input and output ciphertext counts, levels).
    costs : dict
        ``{op: {level: seconds}}`` including :data:`CLIENT_OPS`.

    Returns
    -------
    seconds : float
        Per batch of ``plan.batch`` samples; 0.0 when ``costs`` lack the client ops.
    """
    n_in = len(plan.stages[0].live_in)
    n_out = len(plan.stages[-1].rows)
    get = lambda op, lvl: costs.get(op, {}).get(lvl, 0.0)  # noqa: E731
    return float(n_in * (get("encode", 0) + get("encrypt", 0))
                 + n_out * (get("decrypt", plan.depth) + get("decode", plan.depth)))


def memory_estimate(plan) -> dict:
    """Memory of the packed model, keys and one input batch, from the plan alone.

    Key-switching keys take ``(#data primes) x 2 x (#primes incl. special) x N x 8``
    bytes each.

    Parameters
    ----------
    plan : CompiledPlan
        Plan to size (a counting-only plan suffices).

    Returns
    -------
    memory : dict
        ``plaintext_bytes, n_plaintexts, weight_ciphertext_bytes,
        n_weight_ciphertexts, packed_model_bytes, galois_key_bytes,
        n_galois_keys, relin_key_bytes, input_batch_bytes, n_input_ciphertexts``.
    """
    N = plan.params.poly_modulus_degree
    Ld = len(plan.primes)
    ksk = Ld * ciphertext_nbytes(N, Ld + 1)
    n_in = len(plan.stages[0].live_in)
    n_enc = len(plan.encrypted_keys())
    pt_b = plan.plaintext_bytes()
    ct_b = plan.weight_bytes() - pt_b
    n_rot = len(plan.rotation_steps)
    return dict(plaintext_bytes=int(pt_b), n_plaintexts=len(plan.pt_spec) - n_enc,
                weight_ciphertext_bytes=int(ct_b), n_weight_ciphertexts=n_enc,
                packed_model_bytes=int(pt_b + ct_b),
                galois_key_bytes=n_rot * ksk, n_galois_keys=n_rot, relin_key_bytes=ksk,
                input_batch_bytes=n_in * ciphertext_nbytes(N, Ld),
                n_input_ciphertexts=n_in)
