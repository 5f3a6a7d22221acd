"""Tests of TileMapDisplay (Agg backend, tiny networks)."""

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import MinMaxScaler  # noqa: E402

from skhepex import MLPClassifier  # noqa: E402
from skhepex.plotting import TileMapDisplay  # noqa: E402
from skhepex.tiling import TileLayout  # noqa: E402


def _n_drawn_kept(mesh):
    arr = mesh.get_array()
    return int(np.sum(np.ma.filled(arr, 0) > 0))


@pytest.mark.parametrize("tile_shape", [(8, 8), (4, 16), (16, 4)])
def test_tile_map_counts_match_layout(net, tile_shape):
    layout = TileLayout(net, tile_shape)
    disp = TileMapDisplay.from_estimator(net, tile_shape=tile_shape)
    assert disp.ax_.shape == (1, len(layout.layers))
    assert disp.figure_ is disp.ax_[0, 0].figure
    assert disp.axes_ is disp.ax_
    for j, lt in enumerate(layout.layers):
        mesh = disp.meshes_[0, j]
        assert mesh.get_array().size == lt.n_tiles
        assert _n_drawn_kept(mesh) == lt.n_nonzero_tiles
        title = disp.ax_[0, j].get_title()
        assert lt.name in title and f"({lt.orientation})" in title
        assert f"{lt.n_nonzero_tiles}/{lt.n_tiles}" in title
        # drawn in (out, in) matrix coordinates, rows downwards
        assert disp.ax_[0, j].get_xlim() == (0, lt.matrix_shape[1])
        assert disp.ax_[0, j].get_ylim() == (lt.matrix_shape[0], 0)
    assert sum(_n_drawn_kept(m) for m in disp.meshes_.ravel()) == layout.n_nonzero_tiles
    assert disp.ax_[0, 0].get_xlabel() == "in"


def test_tile_map_orientations_alternate(net):
    disp = TileMapDisplay.from_estimator(net, tile_shape=(4, 16))
    t0, t1 = (a.get_title() for a in disp.ax_[0])
    assert "(W)" in t0 and "(WT)" in t1


def test_tile_map_unwraps_pipeline(data, net):
    X, y = data
    pipe = make_pipeline(MinMaxScaler(), MLPClassifier(hidden_layer_sizes=(8,), max_iter=2,
                                                       random_state=0)).fit(X, y)
    disp = TileMapDisplay.from_estimator(pipe, tile_shape=(8, 8), estimator_name="pipe")
    assert disp.ax_.shape == (1, 2)
    assert disp.ax_[0, 0].get_ylabel().startswith("pipe")


def test_tile_map_norm_colours(net):
    layout = TileLayout(net, (8, 8))
    disp = TileMapDisplay.from_estimator(net, tile_shape=(8, 8), color="norm")
    assert disp.colorbar_ is not None
    for j, lt in enumerate(layout.layers):
        arr = disp.meshes_[0, j].get_array()
        assert np.ma.count(arr) == lt.n_nonzero_tiles    # empty tiles are masked
        M = layout.matrices()[j][0]
        p, q = np.argwhere(lt.tile_mask)[0]
        rs, cs = lt.tile_slices(p, q)
        np.testing.assert_allclose(arr.reshape(lt.grid)[p, q], np.linalg.norm(M[rs, cs]))


def test_tile_map_from_estimators_grid(data, net, sparse_net):
    other = sparse_net(data, seed=1, sparsity=0.9)
    disp = TileMapDisplay.from_estimators({"a": net, "b": other}, tile_shape=(8, 8))
    assert disp.ax_.shape == (2, 2)
    assert disp.estimator_names == ["a", "b"]
    assert disp.ax_[1, 0].get_ylabel().startswith("b")
    for i, est in enumerate([net, other]):
        layout = TileLayout(est, (8, 8))
        drawn = sum(_n_drawn_kept(m) for m in disp.meshes_[i])
        assert drawn == layout.n_nonzero_tiles


def test_tile_map_compose_on_given_axes(data, net, sparse_net):
    other = sparse_net(data, seed=2)
    fig, axes = plt.subplots(2, 2)
    d1 = TileMapDisplay.from_estimator(net, tile_shape=(8, 8), ax=axes[0])
    d2 = TileMapDisplay.from_estimator(other, tile_shape=(8, 8), ax=axes[1])
    assert d1.figure_ is fig and d2.figure_ is fig
    assert d2.ax_[0, 1] is axes[1, 1]
    with pytest.raises(ValueError, match="ax must hold 2 Axes"):
        TileMapDisplay.from_estimator(net, tile_shape=(8, 8), ax=axes)


def test_tile_map_errors(net):
    with pytest.raises(ValueError, match="color must be"):
        TileMapDisplay.from_estimator(net, color="weights")
    disp = TileMapDisplay(TileLayout(net, (8, 8)).layers)
    with pytest.raises(ValueError, match="tile_values"):
        disp.plot(color="norm")
    assert disp.plot() is disp


def test_tile_map_ragged_rows(data, net):
    X, y = data
    deep = MLPClassifier(hidden_layer_sizes=(8, 8), max_iter=2, random_state=0).fit(X, y)
    disp = TileMapDisplay.from_estimators([("shallow", net), ("deep", deep)], (8, 8))
    assert disp.ax_.shape == (2, 3)
    assert not disp.ax_[0, 2].get_visible()
    assert disp.meshes_[0, 2] is None
