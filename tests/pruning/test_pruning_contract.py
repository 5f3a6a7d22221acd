"""The pruning package against the network contract, and its regression tests."""

import ast
import logging
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

import skhepex.pruning
from skhepex import CNNClassifier, MLPClassifier, TileLayout
from skhepex.estimators import get_network, get_tile_shape
from skhepex.pruning import HEPEx, MagnitudePruner, TilePruner
from skhepex.pruning import stages as stages_module
from skhepex.pruning._base import drop_lowest, n_to_drop, sparsity_schedule
from skhepex.pruning.expander import _conv_tap_ok, expand_masks
from skhepex.pruning.units import taylor_scores

PRUNING_DIR = Path(skhepex.pruning.__file__).parent


def _mlp(X, y, hidden=(32,)):
    return MLPClassifier(hidden_layer_sizes=hidden, max_iter=3, random_state=0).fit(X, y)


def _sparse_cnn(X, y):
    cnn = CNNClassifier(conv_channels=(4, 8), max_iter=1, random_state=0).fit(X, y)
    pruned = MagnitudePruner(sparsity=0.9, n_steps=1, fine_tune_iter=0).prune(cnn, X, y)
    return TilePruner(tile_sparsity=0.5, n_steps=1, fine_tune_iter=0, regrow=False).prune(
        pruned, X, y, tile_shape=(4, 8))


def _params(est):
    return [(layer.W.copy(), layer.b.copy()) for layer in est.network_.weight_layers]


# ------------------------------------------------------- taylor_scores seed
def test_taylor_scores_are_not_hard_seeded(digits):
    # regression: the minibatch order came from RandomState(0) whatever the caller said
    X, y = digits
    clf = _mlp(X, y)
    layout = TileLayout(clf, (8, 8))

    def scores(**kw):
        return np.concatenate(taylor_scores(clf, layout, X, y, **kw))

    np.random.seed(1)
    a = scores()
    np.random.seed(2)
    b = scores()
    assert not np.allclose(a, b)          # random_state=None: the global NumPy state
    np.testing.assert_array_equal(scores(random_state=3), scores(random_state=3))
    assert not np.allclose(scores(random_state=3), scores(random_state=4))
    rng = np.random.RandomState(5)
    assert not np.allclose(scores(random_state=rng), scores(random_state=rng))


def test_tile_pruner_random_state_seeds_taylor(digits):
    X, y = digits
    clf = _mlp(X, y, hidden=(64, 32))
    kw = dict(tile_sparsity=0.5, criterion="taylor", scope="global", n_steps=1,
              fine_tune_iter=1)
    state = np.random.get_state()
    a = TilePruner(random_state=0, **kw).prune(clf, X, y, tile_shape=(8, 8))
    b = TilePruner(random_state=0, **kw).prune(clf, X, y, tile_shape=(8, 8))
    after = np.random.get_state()
    # an int seed neither reads nor advances the global state
    assert state[0] == after[0] and np.array_equal(state[1], after[1])
    assert state[2:] == after[2:]
    for (wa, ba), (wb, bb) in zip(_params(a), _params(b)):
        np.testing.assert_array_equal(wa, wb)
        np.testing.assert_array_equal(ba, bb)
    assert TilePruner().get_params()["random_state"] is None


# -------------------------------------------------- expander: no live writes
def test_conv_tap_ok_never_writes_the_live_layer(digits):
    # regression: the probe kernels were assigned to the network's own layer
    X, y = digits
    cnn = _sparse_cnn(X, y)
    layout = TileLayout(cnn, (4, 8))
    stage, lt = layout.stages[0], layout.layers[0]
    layer = stage.weight_layer
    W_obj, before = layer.W, layer.W.copy()
    writes = []
    live_cls = type(layer)

    class Spy(live_cls):
        def __setattr__(self, name, value):
            if name == "W" and self is layer:
                writes.append(value)
            super().__setattr__(name, value)

    layer.__class__ = Spy
    try:
        ok = _conv_tap_ok(stage, lt)
    finally:
        layer.__class__ = live_cls
    assert writes == []
    assert layer.W is W_obj and stage.weight_layer is layer
    assert before.tobytes() == layer.W.tobytes()
    assert ok.shape == layer.W.shape and ok.any() and not ok.all()


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_expand_masks_changes_only_masks(digits, kind):
    X, y = digits
    if kind == "cnn":
        est, shape = _sparse_cnn(X, y), (4, 8)
    else:
        sparse = MagnitudePruner(sparsity=0.9, n_steps=1, fine_tune_iter=0).prune(
            _mlp(X, y), X, y)
        est = TilePruner(tile_sparsity=0.5, n_steps=1, fine_tune_iter=0,
                         regrow=False).prune(sparse, X, y, tile_shape=(8, 8))
        shape = (8, 8)
    params = _params(est)
    masks = [layer.mask.copy() for layer in est.network_.weight_layers]
    assert expand_masks(est, shape) > 0
    for (W, b), (W2, b2) in zip(params, _params(est)):
        assert W.tobytes() == W2.tobytes() and b.tobytes() == b2.tobytes()
    for m, layer in zip(masks, est.network_.weight_layers):
        assert not np.any(m & ~layer.mask)        # masks only grow


# ------------------------------------------------------------ HEPEx logging
def test_hepex_logs_instead_of_printing(digits, caplog, capsys):
    # regression: verbose printed to stdout instead of using the skhepex logger
    X, y = digits
    h = HEPEx(MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, random_state=0),
              [("tiles", TilePruner(n_steps=1, fine_tune_iter=0))], verbose=1)
    with caplog.at_level(logging.INFO, logger="skhepex"):
        h.fit(X, y)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    msgs = [r.getMessage() for r in caplog.records if r.name == "skhepex"]
    assert any("dense training" in m for m in msgs)
    assert any("'tiles'" in m for m in msgs)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="skhepex"):
        h.set_params(verbose=0).fit(X, y)
    assert not any("[HEPEx]" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------ contract and protocol
def test_hepex_wrapper_protocol(digits):
    X, y = digits
    h = HEPEx(MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, random_state=0),
              [("tiles", TilePruner(n_steps=1, fine_tune_iter=0))], tile_shape=[4, 8])
    assert h.__skhepex_network__() is h.estimator
    assert get_network(h, fitted=False) is h.estimator
    assert get_tile_shape(h) == (4, 8)
    assert get_tile_shape(make_pipeline(MinMaxScaler(), h)) == (4, 8)
    with pytest.raises(NotFittedError):
        get_network(h)
    h.fit(X, y)
    assert h.__skhepex_network__() is h.estimator_
    assert get_network(h) is h.estimator_
    assert get_network(make_pipeline(h)) is h.estimator_
    # fitted: the shape it was pruned for, whatever the parameter says now
    assert h.set_params(tile_shape=(8, 8)).__skhepex_tile_shape__() == (4, 8)
    with pytest.raises(ValueError, match="powers of two"):
        clone(h).set_params(tile_shape=(3, 8)).__skhepex_tile_shape__()


class _LooksLikeANetwork(ClassifierMixin, BaseEstimator):
    """Has the old private hooks (``_fine_tune``) but not the contract."""

    def fit(self, X, y):
        self.network_ = object()
        self.classes_ = np.unique(y)
        return self

    def _fine_tune(self, X, y, max_iter, random_state=None):  # pragma: no cover
        return self


def test_networks_are_recognised_by_the_contract_not_by_attributes(digits):
    # regression: "is this a skhepex network?" was hasattr(est, "_fine_tune")
    X, y = digits
    n0 = stages_module.N_DENSE_FITS
    with pytest.raises(TypeError, match="skhepex network"):
        HEPEx(_LooksLikeANetwork(), [("tiles", TilePruner())]).fit(X, y)
    assert stages_module.N_DENSE_FITS == n0          # rejected before any training
    with pytest.raises(TypeError, match="skhepex networks"):
        TilePruner().prune(_LooksLikeANetwork().fit(X, y), X, y)


def test_column_vector_targets_for_classifiers(digits):
    X, y = digits
    clf = _mlp(X, y)
    a = MagnitudePruner(n_steps=1, fine_tune_iter=1).prune(clf, X, y)
    b = MagnitudePruner(n_steps=1, fine_tune_iter=1).prune(clf, X, y.reshape(-1, 1))
    for (wa, _), (wb, _) in zip(_params(a), _params(b)):
        np.testing.assert_array_equal(wa, wb)


def _private_uses(path):
    """Private names of other packages a pruning module imports or reads."""
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            other = node.level >= 2 or (node.level == 0 and (node.module or "").startswith(
                "skhepex.") and not node.module.startswith("skhepex.pruning"))
            if other:
                found += [a.name for a in node.names if a.name.startswith("_")]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) in (
                "hasattr", "getattr") and len(node.args) >= 2:
            arg = node.args[1]
            if isinstance(arg, ast.Constant) and str(arg.value).startswith("_"):
                found.append(f"{node.func.id}(..., {arg.value!r})")
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") \
                and not node.attr.startswith("__") \
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
            found.append(f"._{node.attr.lstrip('_')}")
    return found


@pytest.mark.parametrize("path", sorted(PRUNING_DIR.glob("*.py")), ids=lambda p: p.name)
def test_no_private_names_of_other_packages(path):
    assert _private_uses(path) == []


def test_modules_are_small():
    for path in PRUNING_DIR.glob("*.py"):
        assert len(path.read_text().splitlines()) <= 400, path.name


# ------------------------------------------------------ one definition each
def test_sparsity_schedule():
    np.testing.assert_allclose(sparsity_schedule(0.8, 3),
                               0.8 * (1 - (1 - np.array([1, 2, 3]) / 3) ** 3))
    np.testing.assert_allclose(sparsity_schedule(0.6, 4, "linear"), [0.15, 0.3, 0.45, 0.6])
    assert sparsity_schedule(0.5, 1)[-1] == 0.5


def test_drop_lowest_keeps_one_per_layer():
    keys = [np.array([3.0, 1.0, 2.0]), np.array([0.1, 0.2]), np.array([5.0])]
    d = drop_lowest(keys, 1.0, "layer")            # every layer keeps its largest key
    assert [x.tolist() for x in d] == [[False, True, True], [True, False], [False]]
    d = drop_lowest(keys, 0.4, "layer")            # round(1.2) = 1, round(0.8) = 1, 0
    assert [x.tolist() for x in d] == [[False, True, False], [True, False], [False]]
    # global: 6 keys, at most 6 - 3 dropped: 0.1, 0.2 and 1.0, but layer 1
    # would be emptied, so it keeps its best (0.2)
    for fraction in (1.0, 0.5):
        d = drop_lowest(keys, fraction, "global")
        assert [x.tolist() for x in d] == [[False, True, False], [True, False], [False]]
    d = drop_lowest(keys, 0.34, "global")          # round(2.04) = 2: 0.1 and 0.2 ...
    assert [x.tolist() for x in d] == [[False, False, False], [True, False], [False]]
    assert n_to_drop(0.99, 10) == 9 and n_to_drop(0.99, 10, 3) == 7 and n_to_drop(0.2, 10) == 2
