"""The JSON record schema of the experiments: writing and reading records.

``skhepex demo --out`` (``demo.json``) and ``skhepex bench --out``
(``results.json``) write the records of :func:`~skhepex.experiments.sweep`
with :func:`json_record` under a ``"records"`` key;
:func:`read_records` reads them back (and the other layouts it tolerates),
e.g. for :meth:`skhepex.plotting.ParetoDisplay.from_json`.

This module needs only the standard library.
"""

import json
import os
from numbers import Real

__all__ = ["CIPHERTEXT_KEYS", "json_record", "read_records"]

# ciphertext-count keys by priority (documented in skhepex/experiments/__init__.py)
CIPHERTEXT_KEYS = ("n_ciphertexts", "n_nonzero_tiles", "ciphertexts", "weight_ciphertexts")

_RECORD_LIST_KEYS = ("records", "results", "rows")


def json_record(record):
    """A JSON-friendly copy of a sweep record, without the fitted model.

    Parameters
    ----------
    record : dict
        A record of :func:`~skhepex.experiments.sweep` or
        :func:`~skhepex.experiments.select_within`.

    Returns
    -------
    record : dict
        A shallow copy of ``record`` without its ``"model"`` key.
    """
    return {k: v for k, v in record.items() if k != "model"}


def _record_list(obj):
    """Flatten the tolerated layouts into a list (items not yet checked)."""
    if isinstance(obj, list):
        return obj
    if isinstance(obj, dict):
        for key in _RECORD_LIST_KEYS:
            if isinstance(obj.get(key), list):
                return obj[key]
        # {variant: record} or {variant: [records]}
        if obj and all(isinstance(v, (dict, list)) for v in obj.values()):
            out = []
            for variant, val in obj.items():
                for rec in (val if isinstance(val, list) else [val]):
                    if isinstance(rec, dict):
                        out.append({"variant": variant, **rec})
            return out
    raise ValueError(
        "Benchmark JSON must be a list of records, a dict with a 'records' (or "
        "'results'/'rows') list, or a dict mapping variant names to records; got "
        f"{type(obj).__name__}.")


def read_records(path_or_data, task=None):
    """Read experiment records from benchmark JSON (``skhepex bench`` / ``demo``).

    Accepted layouts (the writers of skhepex conform to the first two):

    - a list of records;
    - a dict with a list under ``"records"`` (or ``"results"``, ``"rows"``);
      other keys (metadata, summaries) are ignored;
    - a dict mapping variant names to one record or a list of records (the
      variant name is then stored under ``"variant"``).

    Each record is a dict; the keys used by the readers are:

    - ``"variant"`` (str, optional): variant name, e.g. ``"dense"``,
      ``"P"``, ``"Hunter"``, ``"PPTE"`` (see
      :data:`~skhepex.experiments.VARIANT_DOC`);
    - ``"n_ciphertexts"`` (int): weight ciphertexts (non-zero tiles); if
      absent, the first of ``"n_nonzero_tiles"``, ``"ciphertexts"`` and
      ``"weight_ciphertexts"`` (:data:`CIPHERTEXT_KEYS`) is used;
    - ``"score"`` (float): held-out score, higher is better (accuracy or R²);
    - ``"task"`` (str, optional): task name; records of several tasks must be
      separated with ``task=``;
    - ``"metric"`` (str, optional): name of the score.

    Items that are not dicts are skipped; other keys are kept as they are.

    Parameters
    ----------
    path_or_data : str, path-like, list or dict
        A JSON file path, or the already-loaded data.
    task : str, default=None
        Keep only the records whose ``"task"`` equals this (compared as
        strings). ``None`` keeps all records, which must then belong to at
        most one task.

    Returns
    -------
    records : list of dict
        Copies of the selected records. A numeric ciphertext count, found
        under any key of :data:`CIPHERTEXT_KEYS`, is stored as a non-negative
        ``"n_ciphertexts"`` (the ciphertext scorers of
        :mod:`skhepex.pruning` return negative counts).

    Raises
    ------
    ValueError
        If the layout is not one of the above, if ``task`` matches no record,
        or if ``task`` is ``None`` and the records span several tasks.

    Examples
    --------
    >>> from skhepex.experiments import read_records
    >>> read_records({"P": {"n_nonzero_tiles": -10, "score": 0.9}})
    [{'variant': 'P', 'n_nonzero_tiles': -10, 'score': 0.9, 'n_ciphertexts': 10}]
    """
    data = path_or_data
    if isinstance(data, (str, os.PathLike)):
        with open(data, encoding="utf-8") as fh:
            data = json.load(fh)
    records = [dict(r) for r in _record_list(data) if isinstance(r, dict)]
    tasks = sorted({str(r["task"]) for r in records if r.get("task") is not None})
    if task is not None:
        records = [r for r in records if str(r.get("task")) == str(task)]
        if not records:
            raise ValueError(f"No record has task={task!r}; tasks: {tasks}.")
    elif len(tasks) > 1:
        raise ValueError(f"The records span several tasks {tasks}; pick one with task=.")
    for rec in records:
        ct = next((rec[k] for k in CIPHERTEXT_KEYS if rec.get(k) is not None), None)
        if isinstance(ct, Real) and not isinstance(ct, bool):
            rec["n_ciphertexts"] = abs(ct)
    return records
