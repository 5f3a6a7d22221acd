"""Encrypted CKKS inference with tile tensors (TenSEAL/SEAL).

:class:`HEPredictor` wraps a fitted network (or an ``HEPEx`` / ``Pipeline``
ending in one) for encrypted inference; :func:`he_cost_report` counts the
packed network's operations and memory and predicts its latency without keys.
The engine (:mod:`skhepex.he.engine`) and parameter selection
(:mod:`skhepex.he.params`) are usable on their own.
"""
from .engine import (Client, CompiledPlan, EncryptedBatch, EncryptedResult, PlainSimulator,
                     ServerModel, compile_stages, count_ops, measure_unit_costs,
                     memory_estimate, predict_latency)
from .params import CKKSParams, choose_params, validate_params
from .predictor import HEPredictor
from .report import HECostReport, build_stages, choose_tile_shape, he_cost_report

__all__ = ["HEPredictor", "HECostReport", "he_cost_report", "choose_tile_shape",
           "build_stages", "CKKSParams", "choose_params", "validate_params", "Client",
           "ServerModel", "EncryptedBatch", "EncryptedResult", "PlainSimulator",
           "CompiledPlan", "compile_stages", "count_ops", "measure_unit_costs",
           "memory_estimate", "predict_latency"]
