"""skhepex.he.params: CKKS parameter choice and the 128-bit security policy."""
import warnings

import pytest
from he_stages import SQ, make_stages

from skhepex.he import compile_stages
from skhepex.he.params import (DEFAULT_MARGIN_BITS, MAX_LOG_Q, MIN_SCALE_BITS, CKKSParams,
                               check_security, choose_params, prime_values, resolve_params,
                               validate_params)


def test_choose_params():
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


@pytest.mark.parametrize("depth", range(0, 13))
def test_chosen_params_are_secure_and_sufficient(depth):
    p = choose_params(depth, 64)
    assert validate_params(p, depth=depth, min_slots=64) is p
    assert p.depth >= depth and p.log_q <= MAX_LOG_Q[p.poly_modulus_degree]
    bits = p.coeff_mod_bit_sizes
    assert bits[-1] >= max(bits[:-1])                       # special prime largest
    assert bits[0] > p.scale_bits and MIN_SCALE_BITS <= p.scale_bits <= 40
    assert all(b == p.scale_bits for b in bits[1:-1])
    # the smallest N that fits: at N/2 even the minimum scale does not fit the depth
    # ([q0] + [s] * depth + [P] with q0 = P = s + margin)
    if p.poly_modulus_degree > 8192:
        need = 2 * (MIN_SCALE_BITS + DEFAULT_MARGIN_BITS) + MIN_SCALE_BITS * depth
        assert need > MAX_LOG_Q[p.poly_modulus_degree // 2]


def test_choose_params_limits():
    with pytest.raises(ValueError, match="depth must be"):
        choose_params(-1)
    with pytest.raises(ValueError, match="no secure CKKS parameters"):
        choose_params(40)
    assert choose_params(1, 8192).poly_modulus_degree == 16384       # slots
    assert choose_params(1, min_poly_modulus_degree=32768).poly_modulus_degree == 32768


def test_ckks_params_dict_round_trip_and_properties():
    p = CKKSParams(8192, [49, 40, 40, 49], 40)
    assert p.coeff_mod_bit_sizes == (49, 40, 40, 49)          # tuple, ints
    assert (p.n_slots, p.depth, p.log_q, p.scale) == (4096, 2, 178, 2.0 ** 40)
    assert CKKSParams.from_dict(p.to_dict()) == p
    assert hash(CKKSParams.from_dict(p.to_dict())) == hash(p)
    with pytest.raises(Exception):
        p.scale_bits = 30                                    # frozen


def test_check_security_bounds():
    for n, bound in MAX_LOG_Q.items():
        check_security(n, [bound])                            # at the bound: fine
        with pytest.raises(ValueError, match=str(bound)):
            check_security(n, [bound, 1])
    with pytest.raises(ValueError, match="poly_modulus_degree"):
        check_security(6000, [30])


@pytest.mark.parametrize("params,match", [
    (CKKSParams(8192, (40,), 30), "at least 2 primes"),
    (CKKSParams(8192, (61, 40, 61), 40), "2..60"),
    (CKKSParams(8192, (1, 40, 61), 40), "2..60"),
    (CKKSParams(8192, (50, 40, 40), 30), "special"),
    (CKKSParams(8192, (40, 40, 60), 40), "first prime"),
    (CKKSParams(8192, (50, 40, 60), 60), r"scale_bits must be in"),
    (CKKSParams(6000, (50, 40, 60), 40), "poly_modulus_degree"),
])
def test_validate_params_errors(params, match):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=match):
            validate_params(params)


def test_validate_params_depth_slots_and_precision_warning():
    p = CKKSParams(8192, (49, 40, 40, 49), 40)
    with pytest.raises(ValueError, match="depth 3"):
        validate_params(p, depth=3)
    with pytest.raises(ValueError, match="slots"):
        validate_params(p, min_slots=8192)
    with pytest.warns(UserWarning, match="below 27"):
        validate_params(CKKSParams(8192, (40, 25, 25, 40), 25))


def test_resolve_params():
    assert resolve_params(3, (4, 8)) == choose_params(3, 32)
    p = resolve_params(2, (4, 8), coeff_mod_bit_sizes=(49, 40, 40, 49))
    assert p == CKKSParams(8192, (49, 40, 40, 49), 40)
    p = resolve_params(2, (4, 8), coeff_mod_bit_sizes=(49, 40, 40, 49), scale_bits=35)
    assert p.scale_bits == 35
    assert resolve_params(2, (4, 8), poly_modulus_degree=16384).poly_modulus_degree == 16384
    assert resolve_params(2, (4, 8), scale_bits=30).scale_bits == 30
    with pytest.raises(ValueError, match="security_level"):
        resolve_params(2, (4, 8), security_level=192)
    with pytest.raises(ValueError, match="first prime"):
        resolve_params(2, (4, 8), coeff_mod_bit_sizes=(40, 40, 40, 60))
    with pytest.raises(ValueError, match="does not fit poly_modulus_degree=8192"):
        resolve_params(9, (4, 8), poly_modulus_degree=8192)
    with pytest.raises(ValueError, match="218"):
        resolve_params(2, (4, 8), coeff_mod_bit_sizes=(60, 50, 50, 60), poly_modulus_degree=8192)


def test_prime_values_match_the_bit_sizes():
    p = choose_params(3, 32)
    primes = prime_values(p)
    assert len(primes) == len(p.coeff_mod_bit_sizes) - 1                 # special excluded
    for q, bits in zip(primes, p.coeff_mod_bit_sizes):
        assert q.bit_length() == bits and q % (2 * p.poly_modulus_degree) == 1
    assert prime_values(p) == primes and prime_values(p) is not prime_values(p)  # copies
