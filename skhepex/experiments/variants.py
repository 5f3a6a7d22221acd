"""The HE-PEx variants as :class:`~skhepex.pruning.HEPEx` step lists, and their grids."""

from ..pruning import Expander, MagnitudePruner, Permuter, TilePruner

__all__ = ["VARIANTS", "VARIANT_DOC", "STEP_NAMES", "variant_steps", "default_grid"]

# The constants are documented in skhepex/experiments/__init__.py.
VARIANT_DOC = {
    "dense": "no pruning",
    "P": "magnitude pruning only",
    "Hunter": "tile pruning of the dense network, without permutation "
              "(Hunter-style structured pruning)",
    "prune+tiles": "magnitude pruning, then tile pruning (no permutation, no expansion)",
    "PPTE": "prune, permute, tile-prune, expand (HE-PEx)",
}

VARIANTS = ("dense", "P", "Hunter", "PPTE")

STEP_NAMES = ("prune", "permute", "tiles", "expand")

_STEPS_USED = {
    "dense": (),
    "P": ("prune",),
    "Hunter": ("tiles",),
    "prune+tiles": ("prune", "tiles"),
    "PPTE": ("prune", "permute", "tiles", "expand"),
}


def _steps_used(variant):
    """Names of the steps ``variant`` uses; ``ValueError`` for an unknown variant."""
    if variant not in _STEPS_USED:
        raise ValueError(f"Unknown variant {variant!r}; expected one of "
                         f"{tuple(VARIANT_DOC)}.")
    return _STEPS_USED[variant]


def variant_steps(variant, sparsity=0.8, tile_sparsity=0.5, fine_tune_iter=10, *,
                  permute_inputs=False, permute_outputs=False, row_weight=1.0,
                  row_cost=0.0):
    """The :class:`~skhepex.pruning.HEPEx` steps of one variant.

    Every variant shares the same step settings (only the presence of a step
    differs), so e.g. the Hunter-style baseline gets the same global,
    data-driven tile scores as PPTE: global gradual magnitude pruning
    (3 rounds), :class:`~skhepex.pruning.Permuter`, global gradual
    Taylor-scored tile pruning with regrowth inside surviving tiles
    (3 rounds), :class:`~skhepex.pruning.Expander`.

    Parameters
    ----------
    variant : {"dense", "P", "Hunter", "prune+tiles", "PPTE"}
        The variant; see :data:`VARIANT_DOC`.
    sparsity : float, default=0.8
        Weight sparsity of the magnitude pruner.
    tile_sparsity : float, default=0.5
        Fraction of tiles (pruning units) removed by the tile pruner.
    fine_tune_iter : int, default=10
        Fine-tuning epochs of each step.
    permute_inputs : bool, default=False
        Let the permuter also permute the network's input features (the
        client then permutes its data; impossible for a CNN).
    permute_outputs : bool, default=False
        Let the permuter also permute the network's outputs.
    row_weight : float, default=1.0
        ``row_weight`` of the permuter.
    row_cost : float or "auto", default=0.0
        ``row_cost`` of the tile pruner (0 ranks tiles by score alone).

    Returns
    -------
    steps : list of (str, estimator or "passthrough")
        Always the four names of :data:`STEP_NAMES`
        (``prune, permute, tiles, expand``); unused steps are
        ``"passthrough"``, so all variants are points of one grid.

    Raises
    ------
    ValueError
        If ``variant`` is not a key of :data:`VARIANT_DOC`.
    """
    use = _steps_used(variant)
    steps = {
        "prune": MagnitudePruner(sparsity=sparsity, scope="global", n_steps=3,
                                 fine_tune_iter=fine_tune_iter),
        "permute": Permuter(random_state=0, permute_inputs=permute_inputs,
                            permute_outputs=permute_outputs, row_weight=row_weight),
        "tiles": TilePruner(tile_sparsity=tile_sparsity, criterion="taylor", scope="global",
                            n_steps=3, regrow=True, fine_tune_iter=fine_tune_iter,
                            row_cost=row_cost, random_state=0),
        "expand": Expander(fine_tune_iter=fine_tune_iter),
    }
    return [(name, steps[name] if name in use else "passthrough") for name in STEP_NAMES]


def default_grid(variant, quick=False):
    """Sparsity settings swept for a variant by ``skhepex demo`` and ``skhepex bench``.

    Parameters
    ----------
    variant : {"dense", "P", "Hunter", "prune+tiles", "PPTE"}
        The variant; see :data:`VARIANT_DOC`.
    quick : bool, default=False
        Return the small grid of ``--quick`` runs.

    Returns
    -------
    grid : list of (float, float)
        The ``(sparsity, tile_sparsity)`` pairs to fit; ``[(0.0, 0.0)]`` for
        ``"dense"``.

    Raises
    ------
    ValueError
        If ``variant`` is not a key of :data:`VARIANT_DOC`.
    """
    _steps_used(variant)  # validates the name
    tiles = (0.6, 0.8, 0.9) if quick else (0.3, 0.5, 0.7, 0.8, 0.85, 0.9, 0.93)
    weights = (0.95,) if quick else (0.9, 0.97)
    if variant == "dense":
        return [(0.0, 0.0)]
    if variant == "P":
        return [(s, 0.0) for s in ((0.8, 0.95) if quick else (0.5, 0.7, 0.9, 0.95, 0.99))]
    if variant == "Hunter":
        return [(0.0, t) for t in tiles]
    return [(s, t) for s in weights for t in tiles]
