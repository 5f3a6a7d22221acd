"""skhepex.he.program and skhepex.he.backends: the op sequence, its backends and counting."""
import numpy as np
import pytest
from he_stages import SQ, make_stages, make_X

from skhepex.he import PtKey, compile_stages
from skhepex.he.backends import NumpyBackend, SymbolicBackend
from skhepex.he.packing import encode_input
from skhepex.he.program import OPS, CountingBackend, run_program, run_stage

W, B, M, LIN = PtKey(0, "w", 0, 0), PtKey(0, "b", 0), PtKey(0, "m", 0), PtKey(0, "l", 0)


# ------------------------------------------------------------------ symbolic
def test_symbolic_levels_and_scales():
    be = SymbolicBackend([2.0**50, 2.0**40, 2.0**41], 2.0**40)
    ct = be.fresh
    assert ct == (0, 2.0**40, 2) and be.level(ct) == 0
    ct = be.mul_plain(ct, W)                         # weights at the next dropped prime
    assert be.spec[W] == (0, 2.0**41) and ct == (0, 2.0**81, 2)
    ct = be.rescale(ct)
    assert ct == (1, 2.0**40, 2) and be.max_level == 1
    ct = be.add_plain(ct, B)                         # bias at the exact scale met
    assert be.spec[B] == (1, 2.0**40)
    sq = be.square(ct)
    assert sq == (1, 2.0**80, 3)
    lin = be.mul_plain(ct, LIN)                      # "coef": at the ciphertext's scale
    assert be.spec[LIN] == (1, 2.0**40)
    ct = be.rescale(be.relinearize(be.add(sq, lin)))
    assert ct == (2, 2.0**40, 2) and be.max_level == 2


def test_symbolic_refuses_what_seal_would_refuse():
    be = SymbolicBackend([2.0**50, 2.0**40], 2.0**40)
    ct = be.rescale(be.mul_plain(be.fresh, W))
    with pytest.raises(ValueError, match="out of levels"):
        be.rescale(ct)
    with pytest.raises(RuntimeError, match="mismatched"):
        be.add(ct, be.fresh)
    with pytest.raises(RuntimeError, match="not relinearised"):
        be.rotate(be.square(ct), 1)
    be.add_plain(be.fresh, B)
    with pytest.raises(RuntimeError, match="two levels"):
        be.add_plain(ct, B)                          # same plaintext, another level
    assert be.negate(ct) == ct
    assert be.mul_cipher(be.fresh, PtKey(0, "w", 0, 1))[2] == 3      # size 3 until relin


# ------------------------------------------------------------------ numpy
def test_numpy_backend_ops():
    pts = {W: np.array([1.0, 2.0, 3.0, 4.0]), B: np.array([0.5])}
    be = NumpyBackend(pts)
    x = np.array([1.0, -1.0, 2.0, 0.0])
    assert be.level(x) == 0
    np.testing.assert_array_equal(be.mul_plain(x, W), [1.0, -2.0, 6.0, 0.0])
    np.testing.assert_array_equal(be.add_plain(x, B), x + 0.5)           # one value broadcast
    np.testing.assert_array_equal(be.rotate(x, 1), [-1.0, 2.0, 0.0, 1.0])  # SEAL: left
    np.testing.assert_array_equal(be.rotate(x, -1), [0.0, 1.0, -1.0, 2.0])
    np.testing.assert_array_equal(be.square(x), x * x)
    np.testing.assert_array_equal(be.negate(x), -x)
    assert be.rescale(x) is x and be.relinearize(x) is x


# ------------------------------------------------------------------ counting
class _Recorder:
    """A backend that only records calls (levels from a counter)."""

    def __init__(self):
        self.calls = []

    def level(self, ct):
        return ct

    def __getattr__(self, name):
        def op(ct, *args):
            self.calls.append(name)
            return ct + (name == "rescale")
        return op


def test_counting_backend_counts_per_stage_and_level():
    inner = _Recorder()
    cb = CountingBackend(inner)
    cb.begin(0)
    ct = cb.mul_plain(0, W)
    ct = cb.rescale(ct)
    ct = cb.add(ct, ct)
    ct = cb.mul_plain_add(ct, ct, W)                # counted as a multiply and an add
    cb.begin(2)
    ct = cb.rotate(ct, 4)
    ct = cb.square(ct)
    ct = cb.negate(ct)
    ct = cb.relinearize(ct)
    ct = cb.add_plain(ct, B)
    ct = cb.mul_cipher(ct, W)
    cb.add_cipher(ct, B)
    assert inner.calls == ["mul_plain", "rescale", "add", "mul_plain_add", "rotate", "square",
                           "negate", "relinearize", "add_plain", "mul_cipher", "add_cipher"]
    assert cb.counts[0] == {("mul_plain", 0): 1, ("rescale", 0): 1, ("add", 1): 2,
                            ("mul_plain", 1): 1}
    assert cb.counts[1] == {}
    assert cb.counts[2] == {("rotate", 1): 1, ("mul_ct", 1): 2, ("negate", 1): 1,
                            ("relinearize", 1): 1, ("add_plain", 1): 1, ("add", 1): 1}
    totals = cb.totals()
    assert all(set(t) == set(OPS) for t in totals)
    assert totals[2]["mul_ct"] == 2 and totals[1] == {op: 0 for op in OPS}
    assert cb.level(3) == 3


def test_counting_backend_scalar_plaintexts():
    cb = CountingBackend(_Recorder(), scalar_plaintexts=True)
    cb.begin(0)
    cb.mul_plain(0, W)
    cb.add_plain(0, B)
    assert cb.totals()[0]["encode_scalar"] == 2


# ------------------------------------------------------------------ the op sequence
def test_run_program_on_numpy_counts_as_compiled():
    """The compiler's op counts are those of the op sequence on any backend."""
    stages = make_stages([13, 7, 9, 5], (8, 4), [SQ, None, (-0.25, 0.5, 0.1)])
    plan = compile_stages(stages, (8, 4))
    chunks = encode_input(plan, make_X(3))[0]
    cb = CountingBackend(NumpyBackend(plan.plaintexts))
    seconds = {}
    outs = run_program(plan.stages, chunks, cb, timer=lambda i, dt: seconds.setdefault(i, dt))
    assert sorted(outs) == [r.p for r in plan.stages[-1].rows]
    assert sorted(seconds) == [0, 1, 2] and all(v >= 0 for v in seconds.values())
    levels_free = [{op: n for op, n in t.items()} for t in cb.totals()]
    for got, rec in zip(levels_free, plan.op_counts):
        assert all(rec[op] == n for op, n in got.items())


def test_run_stage_issues_the_documented_ops():
    """One "W" stage with an activation: per live row, multiplies + rescale,
    log2(t2) rotations, bias, square (+ linear term), relinearise, rescale."""
    stages = make_stages([13, 7], (4, 8), [(0.5, -0.3, 0.2)], p_zero=0.0, force_zero=False)
    plan = compile_stages(stages, (4, 8))
    st = plan.stages[0]
    be = _Recorder()
    run_stage(st, {q: 0 for q in st.live_in}, be)
    per_row = (["mul_plain", "mul_plain_add", "rescale"]        # products summed fused
               + ["rotate", "add"] * 3
               + ["add_plain", "square", "mul_plain", "add", "relinearize", "rescale",
                  "add_plain"])
    assert be.calls == per_row * len(st.rows)
