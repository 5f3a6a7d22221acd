"""Encrypted CKKS inference with tile tensors (TenSEAL/SEAL).

:class:`HEPredictor` wraps a fitted network (or an ``HEPEx`` / ``Pipeline``
ending in one) for encrypted inference; :func:`he_cost_report` counts the
packed network's operations and memory and predicts its latency without keys.

The modules read top-down: :mod:`~skhepex.he.params` (CKKS parameters and the
128-bit policy), :mod:`~skhepex.he.plan` (frozen plan objects),
:mod:`~skhepex.he.stages` (network -> stage dicts), :mod:`~skhepex.he.compiler`
(stages -> plan), :mod:`~skhepex.he.program` (the op sequence and the backend
protocol), :mod:`~skhepex.he.backends` / :mod:`~skhepex.he.seal_backend`,
:mod:`~skhepex.he.packing` (slot layout), :mod:`~skhepex.he.serialization`,
:mod:`~skhepex.he.wire` (batches and results), :mod:`~skhepex.he.client`,
:mod:`~skhepex.he.server`, :mod:`~skhepex.he.costs`, :mod:`~skhepex.he.planner`,
:mod:`~skhepex.he.report` and :mod:`~skhepex.he.predictor` (orchestration).
TenSEAL is imported only by the client, the server and the SEAL backend.
"""
from ..lazy import attach
from .compiler import compile_stages, count_ops, required_depth
from .costs import (measure_unit_costs, memory_estimate, predict_latency,
                    tabulated_unit_costs, unit_costs)
from .params import CKKSParams, choose_params, resolve_params, validate_params
from .plan import CompiledPlan, PtKey
from .planner import choose_tile_shape
from .predictor import HEPredictor
from .report import HECostReport, he_cost_report
from .bounds import PrecisionError
from .serialization import SerializationError
from .simulator import PlainSimulator, reference_forward
from .stages import build_stages
from .wire import BindingError, EncryptedBatch, EncryptedResult

_LAZY = {"Client": ".client", "ServerModel": ".server", "RemoteServer": "..serve.remote",
         "RemoteError": "..serve.remote"}

__all__ = ["HEPredictor", "HECostReport", "he_cost_report", "choose_tile_shape",
           "build_stages", "CKKSParams", "choose_params", "resolve_params", "validate_params",
           "Client", "ServerModel", "EncryptedBatch", "EncryptedResult", "PlainSimulator",
           "reference_forward", "CompiledPlan", "PtKey", "compile_stages", "count_ops",
           "required_depth", "measure_unit_costs", "tabulated_unit_costs", "unit_costs",
           "memory_estimate", "predict_latency", "SerializationError", "BindingError",
           "PrecisionError", "RemoteServer", "RemoteError"]


__getattr__, __dir__ = attach(__name__, _LAZY)
