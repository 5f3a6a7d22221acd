"""Paper-style experiments on the embedded digits data.

Shared by ``skhepex demo``, ``skhepex bench`` and the scripts in
``benchmarks/``: the tasks (classification with an MLP or a CNN, image
compression and denoising with autoencoders, :func:`load_task`), the HE-PEx
variants as :class:`~skhepex.pruning.HEPEx` step lists (:data:`VARIANT_DOC`,
:func:`variant_steps`), the sparsity sweeps (:func:`sweep`), the selection of
the cheapest model within a degradation budget (:func:`select_within`), the
encrypted measurement of selected models with :class:`~skhepex.HEPredictor`
(:func:`measure_encrypted`, :func:`measure_encrypted_many`: a warm-up, then the
median of several timed runs; the only functions that load TenSEAL), and the
JSON record schema (:func:`json_record`, :func:`read_records`).

Degradation is relative: ``(dense_score - score) / |dense_score|`` of the
held-out accuracy (classification) or R² (autoencoders). Selection uses a
validation split carved from the training data, never the test data.
"""

from . import records as _records
from . import tasks as _tasks
from . import variants as _variants
from .records import json_record, read_records
from .runs import measure_encrypted, measure_encrypted_many, select_within, sweep
from .tasks import Task, load_task
from .variants import default_grid, variant_steps

__all__ = ["Task", "TASKS", "VARIANTS", "VARIANT_DOC", "STEP_NAMES", "FINE_TUNE_ITER",
           "CIPHERTEXT_KEYS", "default_grid", "load_task", "measure_encrypted",
           "measure_encrypted_many", "select_within", "sweep", "variant_steps", "json_record",
           "read_records"]

# The constants are defined in the submodules; they are bound here with their
# documentation (``#:`` comments are read from this module by the API docs).

#: Task names accepted by :func:`load_task`, with a one-line description.
TASKS = _tasks.TASKS

#: Fine-tuning epochs per pruning step that each task needs (autoencoders
#: recover slowly); used by :func:`sweep` when ``fine_tune_iter=None``.
FINE_TUNE_ITER = _tasks.FINE_TUNE_ITER

#: Every variant name and what it does. The names are spelled the same in the
#: command line, the JSON records, the plots and ``benchmarks/``.
VARIANT_DOC = _variants.VARIANT_DOC

#: The variants compared by ``skhepex demo`` and ``skhepex bench``, in display
#: order.
VARIANTS = _variants.VARIANTS

#: The step names of every variant's step list, in order.
STEP_NAMES = _variants.STEP_NAMES

#: The ablation variants of ``benchmarks/pruning.py`` and the steps each uses
#: (letters: Prune, Permute, Tile-prune, Expand), for :func:`build_steps`.
ABLATION_STEPS = _variants.ABLATION_STEPS

#: Record keys holding the weight-ciphertext count, by priority: the first
#: present one is returned by :func:`read_records` as ``"n_ciphertexts"``.
CIPHERTEXT_KEYS = _records.CIPHERTEXT_KEYS
