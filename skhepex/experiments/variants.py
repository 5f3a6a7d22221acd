"""The HE-PEx variants as :class:`~skhepex.pruning.HEPEx` step lists, and their grids."""

from ..pruning import Expander, MagnitudePruner, Permuter, TilePruner

__all__ = ["VARIANTS", "VARIANT_DOC", "STEP_NAMES", "ABLATION_STEPS", "variant_steps",
           "build_steps", "n_rounds", "default_grid"]

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


#: Step names of every ablation variant (the letters: Prune, Permute, Tile-prune, Expand).
ABLATION_STEPS = {
    "P": ("prune",),
    "T": ("tiles",),
    "TE": ("tiles", "expand"),
    "PT": ("prune", "tiles"),
    "PPT": ("prune", "permute", "tiles"),
    "PPTE": ("prune", "permute", "tiles", "expand"),
}

#: Fine-tuning rounds of every step (epochs are split evenly over the rounds).
_ROUNDS = {"prune": 3, "permute": 0, "tiles": 3, "expand": 1}


def n_rounds(used):
    """Fine-tuning rounds of a step list that uses the steps ``used``.

    Parameters
    ----------
    used : sequence of str
        Step names among :data:`STEP_NAMES`.

    Returns
    -------
    rounds : int
        Magnitude and tile pruning fine-tune after each of their 3 rounds,
        the expander once, the permuter never.
    """
    return sum(_ROUNDS[name] for name in used)


def build_steps(used, sparsity=0.8, tile_sparsity=0.5, fine_tune_iter=10, *,
                permute_inputs=False, permute_outputs=False, row_weight=1.0,
                row_cost=0.0, epochs=None, random_state=0, permutation="budget"):
    """The four :data:`STEP_NAMES` steps, those not in ``used`` as ``"passthrough"``.

    See :func:`variant_steps` for the parameters; ``used`` names the steps
    kept (e.g. ``ABLATION_STEPS["PPT"]``).

    Parameters
    ----------
    used : sequence of str
        Step names to use.
    sparsity : float, default=0.8
        Weight sparsity of the magnitude pruner.
    tile_sparsity : float, default=0.5
        Tile budget of the tile pruner (and of a budget-aware permuter).
    fine_tune_iter : int, default=10
        Epochs per round (ignored when ``epochs`` is given).
    permute_inputs : bool, default=False
        Permute the input features too.
    permute_outputs : bool, default=False
        Permute the outputs too.
    row_weight : float, default=1.0
        ``row_weight`` of the permuter.
    row_cost : float or "auto", default=0.0
        ``row_cost`` of the tile pruner.
    epochs : int, default=None
        Total fine-tuning epochs, split over the rounds.
    random_state : int, default=0
        Seed of every step (one fine-tuning draw).
    permutation : {"budget", "tiles"}, default="budget"
        Objective of the permutation (see :func:`variant_steps`).

    Returns
    -------
    steps : list of (str, estimator or "passthrough")
        The four steps in :data:`STEP_NAMES` order.
    """
    unknown = set(used) - set(STEP_NAMES)
    if unknown:
        raise ValueError(f"Unknown steps {sorted(unknown)}; expected names of {STEP_NAMES}.")
    if epochs is not None:
        rounds = n_rounds(used)
        fine_tune_iter = int(epochs) // rounds if rounds else 0
    budget = permutation == "budget"
    steps = {
        "prune": MagnitudePruner(sparsity=sparsity, scope="global", n_steps=3,
                                 fine_tune_iter=fine_tune_iter, random_state=random_state),
        "permute": Permuter(random_state=random_state, permute_inputs=permute_inputs,
                            permute_outputs=permute_outputs, row_weight=row_weight,
                            tile_sparsity=tile_sparsity if budget else None),
        "tiles": TilePruner(tile_sparsity=tile_sparsity, criterion="taylor", scope="global",
                            n_steps=3, regrow=True, fine_tune_iter=fine_tune_iter,
                            row_cost=row_cost, random_state=random_state,
                            permute=budget and "permute" in used,
                            permute_inputs=permute_inputs),
        "expand": Expander(fine_tune_iter=fine_tune_iter, random_state=random_state),
    }
    if epochs is not None and "expand" in used:   # the remainder: exactly ``epochs``
        steps["expand"].set_params(
            fine_tune_iter=int(epochs) - fine_tune_iter * (n_rounds(used) - 1))
    return [(name, steps[name] if name in used else "passthrough") for name in STEP_NAMES]


def variant_steps(variant, sparsity=0.8, tile_sparsity=0.5, fine_tune_iter=10, *,
                  permute_inputs=False, permute_outputs=False, row_weight=1.0,
                  row_cost=0.0, epochs=None, random_state=0, permutation="budget"):
    """The :class:`~skhepex.pruning.HEPEx` steps of one variant.

    Every variant shares the same step settings (only the presence of a step
    differs), so e.g. the Hunter-style baseline gets the same global,
    data-driven tile scores as PPTE: global gradual magnitude pruning
    (3 rounds), :class:`~skhepex.pruning.Permuter`, global gradual
    Taylor-scored tile pruning with regrowth inside surviving tiles
    (3 rounds), :class:`~skhepex.pruning.Expander`. With ``epochs`` every
    variant gets the same total fine-tuning epochs, split over its rounds.

    Parameters
    ----------
    variant : {"dense", "P", "Hunter", "prune+tiles", "PPTE"}
        The variant; see :data:`VARIANT_DOC`.
    sparsity : float, default=0.8
        Weight sparsity of the magnitude pruner.
    tile_sparsity : float, default=0.5
        Fraction of tiles (pruning units) removed by the tile pruner.
    fine_tune_iter : int, default=10
        Fine-tuning epochs of each round of each step (ignored when
        ``epochs`` is given).
    permute_inputs : bool, default=False
        Let the permuter also permute the network's input features (the
        client then permutes its data; impossible for a CNN).
    permute_outputs : bool, default=False
        Let the permuter also permute the network's outputs.
    row_weight : float, default=1.0
        ``row_weight`` of the permuter.
    row_cost : float or "auto", default=0.0
        ``row_cost`` of the tile pruner (0 ranks tiles by score alone).
    epochs : int, default=None
        Total fine-tuning epochs of the variant, split evenly over its
        rounds (:func:`n_rounds`; the expander takes the remainder), so that
        variants compared at the same ``epochs`` get the same budget.
    random_state : int, default=0
        Seeds the fine-tuning of every step, the Taylor minibatches and the
        permuter's starts (one "fine-tuning draw").
    permutation : {"budget", "tiles"}, default="budget"
        ``"budget"``: the permuter maximises the Taylor importance kept in the
        tiles ``tile_sparsity`` allows, and the tile pruner re-permutes before
        each of its rounds (``TilePruner(permute=True)``); ``"tiles"``: the
        original objective, fewest non-zero tiles of the magnitude-pruned
        network, permuted once.

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
    return build_steps(_steps_used(variant), sparsity, tile_sparsity, fine_tune_iter,
                       permute_inputs=permute_inputs, permute_outputs=permute_outputs,
                       row_weight=row_weight, row_cost=row_cost, epochs=epochs,
                       random_state=random_state, permutation=permutation)


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
        ``"dense"``. Every tile-pruning variant gets the same tile budgets
        (the variants with magnitude pruning at one sparsity, 0.8), so that
        selections compare equal candidate counts.

    Raises
    ------
    ValueError
        If ``variant`` is not a key of :data:`VARIANT_DOC`.
    """
    _steps_used(variant)  # validates the name
    tiles = (0.6, 0.8, 0.9) if quick else (0.3, 0.5, 0.7, 0.8, 0.85, 0.9, 0.93)
    if variant == "dense":
        return [(0.0, 0.0)]
    if variant == "P":
        return [(s, 0.0) for s in ((0.8, 0.95) if quick else (0.5, 0.7, 0.9, 0.95, 0.99))]
    if variant == "Hunter":
        return [(0.0, t) for t in tiles]
    # one magnitude sparsity: every tile-pruning variant gets the same candidates
    return [(0.8, t) for t in tiles]
