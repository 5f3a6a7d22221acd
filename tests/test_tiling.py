"""The tiling layout against hand-computed counts."""

import numpy as np
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from skhepex import Autoencoder, CNNClassifier, MLPClassifier, tile_report
from skhepex.tiling import TileLayout, block_shape, check_tile_shape, layer_orientation


def _fit_mlp(sizes, n_features=13, n_classes=3, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.rand(60, n_features)
    y = np.arange(60) % n_classes
    return MLPClassifier(hidden_layer_sizes=sizes, max_iter=1, random_state=0).fit(X, y), X, y


def test_counts_not_divisible():
    clf, _, _ = _fit_mlp((7,))  # 13 -> 7 -> 3
    rep = tile_report(clf, (4, 8))
    # layer 0: W (7, 13) cut into (4, 8): ceil(7/4)=2 x ceil(13/8)=2 -> 4 tiles
    # layer 1: W (3, 7), orientation WT: blocks (8, 4) in (out, in): 1 x 2 -> 2 tiles
    assert [r["n_tiles"] for r in rep.layers] == [4, 2]
    assert [r["grid"] for r in rep.layers] == [[2, 2], [1, 2]]
    assert [r["orientation"] for r in rep.layers] == ["W", "WT"]
    assert [r["block_shape"] for r in rep.layers] == [[4, 8], [8, 4]]
    assert rep.n_tiles == 6 and rep.n_nonzero_tiles == 6


def test_zero_tiles_counted_by_orientation():
    clf, _, _ = _fit_mlp((7,))
    W0, W1 = clf.coefs_  # (13, 7), (7, 3) in sklearn orientation
    # zero tile (p=1, q=0) of layer 0: outputs 4..6, inputs 0..7
    clf.masks_[0][0:8, 4:7] = False
    # layer 1 is WT: blocks are (8 out, 4 in) -> zero tile (0, 1): outputs 0..2, inputs 4..6
    clf.masks_[1][4:7, :] = False
    clf.network_.apply_masks()
    rep = tile_report(clf, (4, 8))
    assert [r["n_nonzero_tiles"] for r in rep.layers] == [3, 1]
    # pruning the same weights in the wrong orientation empties no tile
    clf2, _, _ = _fit_mlp((7,))
    clf2.masks_[1][:, 0:3] = True
    clf2.masks_[1][0:4, :] = False  # inputs 0..3 of layer 1: a full WT tile column
    clf2.network_.apply_masks()
    assert tile_report(clf2, (4, 8)).layers[1]["n_nonzero_tiles"] == 1
    clf3, _, _ = _fit_mlp((7,))
    clf3.masks_[1][0:7, 0:2] = False  # two of three outputs: no WT tile becomes empty
    clf3.network_.apply_masks()
    assert tile_report(clf3, (4, 8)).layers[1]["n_nonzero_tiles"] == 2


def test_units_match_tiles_for_dense():
    clf, _, _ = _fit_mlp((9, 5))
    layout = TileLayout(clf, (4, 2))
    for lt, W in zip(layout.layers, clf.coefs_):
        assert lt.weight_units.shape == W.shape
        assert lt.n_units == lt.n_tiles
        # every weight of a unit falls inside that tile's slices of W.T
        for u in np.unique(lt.weight_units):
            p, q = divmod(int(u), lt.grid[1])
            rows, cols = lt.tile_slices(p, q)
            in_idx, out_idx = np.nonzero(lt.weight_units == u)
            assert np.all((out_idx >= rows.start) & (out_idx < rows.stop))
            assert np.all((in_idx >= cols.start) & (in_idx < cols.stop))


def test_conv_units_are_kernel_blocks(digits):
    X, _, y, _ = digits
    cnn = CNNClassifier(conv_channels=(2, 4), max_iter=1, random_state=0).fit(X[:100], y[:100])
    layout = TileLayout(cnn, (8, 8))
    conv1 = layout.layers[1]
    # conv1: 2 in-channels of 4x4 (16 columns each), 4 out-channels pooled to 2x2 (4 rows)
    assert conv1.matrix_shape == (16, 32)
    assert conv1.block_shape == (8, 8)
    # two out-channels share a tile row, one in-channel spans two tile columns
    assert conv1.n_units == 2 * 2
    # zeroing one unit (out-channels 0-1 x in-channel 0) empties its two tiles
    full = layout.n_nonzero_tiles
    unit = conv1.weight_units[0, 0, 0, 0]
    cnn.masks_[1][conv1.weight_units == unit] = False
    cnn.network_.apply_masks()
    assert TileLayout(cnn, (8, 8)).n_nonzero_tiles == full - 2


def test_report_on_pipeline_and_str(digits):
    X, _, y, _ = digits
    pipe = make_pipeline(MinMaxScaler(), MLPClassifier(hidden_layer_sizes=(32,), max_iter=1))
    pipe.fit(X, y)
    rep = tile_report(pipe, (8, 8))
    assert rep.n_tiles == 32 + 8
    assert "total" in str(rep)
    assert rep.to_dict()["n_nonzero_tiles"] == rep.n_nonzero_tiles


def test_autoencoder_and_bad_tile_shape(digits):
    ae = Autoencoder(hidden_layer_sizes=(16,), max_iter=1).fit(digits[0][:50])
    assert tile_report(ae, (8, 8)).n_tiles == 2 * 8 + 8 * 2
    with pytest.raises(ValueError, match="tile_shape"):
        tile_report(ae, (0, 8))
    with pytest.raises(ValueError, match="tile_shape"):
        tile_report(ae, "big")


def test_unfitted_raises():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        tile_report(MLPClassifier(), (8, 8))


def test_tile_shape_must_be_powers_of_two():
    clf, _, _ = _fit_mlp((7,))
    with pytest.raises(ValueError, match="powers of two"):
        tile_report(clf, (3, 8))


def test_foreign_estimator_gets_type_error(digits):
    from sklearn.linear_model import LogisticRegression

    X, _, y, _ = digits
    with pytest.raises(TypeError, match="not a skhepex network"):
        tile_report(LogisticRegression(max_iter=50).fit(X, y), (8, 8))


# ------------------------------------------------------------ check_tile_shape
@pytest.mark.parametrize("shape", [(8, 8), (1, 1), (np.int64(4), np.int32(16)),
                                   np.array([2, 8]), [16, 1024], (128, 128)])
def test_check_tile_shape_accepts(shape):
    t = check_tile_shape(shape)
    assert t == tuple(int(v) for v in shape)
    assert all(type(v) is int for v in t)


@pytest.mark.parametrize("shape, match", [
    ((8,), "pair"), ((8, 8, 8), "pair"), (8, "pair"), (None, "pair"), ("big", "pair"),
    ("ab", "pair"), (("a", "b"), "ints"), ((True, True), "ints"),
    ((np.bool_(True), 8), "ints"), ((8.5, 8), "ints"), ((8.0, 8), "ints"),
    ((0, 8), "powers of two"), ((-4, 8), "powers of two"), ((3, 8), "powers of two"),
    ((256, 128), "16384"), ((1, 2 ** 15), "16384"), ((2 ** 40, 2 ** 40), "16384"),
])
def test_check_tile_shape_refuses(shape, match):
    with pytest.raises(ValueError, match="tile_shape") as info:
        check_tile_shape(shape)
    assert match in str(info.value)


def test_orientation_and_block_shape_rule():
    assert [layer_orientation(i) for i in range(4)] == ["W", "WT", "W", "WT"]
    assert block_shape("W", (4, 8)) == (4, 8)
    assert block_shape("WT", (4, 8)) == (8, 4)
    with pytest.raises(ValueError, match="orientation"):
        block_shape("T", (4, 8))
    clf, _, _ = _fit_mlp((9, 5))
    layout = TileLayout(clf, (4, 2))
    for i, lt in enumerate(layout.layers):
        assert lt.orientation == layer_orientation(i) == layout.orientation(i)
        assert lt.block_shape == block_shape(lt.orientation, (4, 2)) == layout.block_shape(i)


# ---------------------------------------------------------- wrapper protocol
class _Wrapper:
    """A minimal third-party wrapper implementing the skhepex protocol."""

    def __init__(self, inner, tile_shape):
        self.inner = inner
        self.tile_shape = tile_shape

    def __skhepex_network__(self):
        return self.inner

    def __skhepex_tile_shape__(self):
        return self.tile_shape


def test_report_uses_protocol_tile_shape():
    clf, _, _ = _fit_mlp((7,))  # 13 -> 7 -> 3
    rep = tile_report(_Wrapper(clf, (4, 8)))
    assert rep.tile_shape == (4, 8)
    assert [r["n_tiles"] for r in rep.layers] == [4, 2]
    # an explicit tile shape wins over the carried one
    assert tile_report(_Wrapper(clf, (4, 8)), (8, 8)).tile_shape == (8, 8)
    # a wrapper carrying no tile shape gets the default, and wrappers nest in pipelines
    assert tile_report(_Wrapper(clf, None)).tile_shape == (8, 8)
    pipe = make_pipeline(MinMaxScaler(), _Wrapper(clf, (2, 4)))
    assert TileLayout(pipe).tile_shape == (2, 4)
    assert TileLayout(pipe).estimator is clf
    # a bad carried tile shape is refused clearly
    with pytest.raises(ValueError, match="powers of two"):
        tile_report(_Wrapper(clf, (3, 8)))


def test_report_on_pipeline_default_shape(digits):
    X, _, y, _ = digits
    clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=1, random_state=0)
    pipe = make_pipeline(MinMaxScaler(), clf).fit(X, y)
    rep = tile_report(pipe)
    assert rep.tile_shape == (8, 8)
    assert rep.n_tiles == tile_report(clf, (8, 8)).n_tiles == 32 + 8
    assert TileLayout(pipe).estimator is clf


def test_unfitted_wrapper_and_foreign_network():
    from sklearn.exceptions import NotFittedError
    from sklearn.neural_network import MLPClassifier as SkMLP

    with pytest.raises(NotFittedError, match="_Wrapper"):
        tile_report(_Wrapper(MLPClassifier(), (8, 8)))
    with pytest.raises(TypeError, match="skhepex.MLPClassifier"):
        tile_report(make_pipeline(MinMaxScaler(), SkMLP()), (8, 8))
