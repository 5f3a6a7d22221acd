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
TenSEAL is imported only by the client, the server and the SEAL backend;
scikit-learn only by the modules that read an estimator (stages, compiler,
planner, predictor, report).
"""
from ..lazy import attach

#: Public name -> module that defines it, imported on first access (PEP 562):
#: a server or client process (``skhepex.he.server``, ``skhepex.he.client``)
#: then imports neither scikit-learn nor the compiler.
_LAZY = {
    "HEPredictor": ".predictor", "HECostReport": ".report", "he_cost_report": ".report",
    "choose_tile_shape": ".planner", "build_stages": ".stages",
    "CKKSParams": ".params", "choose_params": ".params", "resolve_params": ".params",
    "validate_params": ".params", "Client": ".client", "ServerModel": ".server",
    "EncryptedBatch": ".wire", "EncryptedResult": ".wire", "BindingError": ".wire",
    "PlainSimulator": ".simulator", "reference_forward": ".simulator",
    "CompiledPlan": ".plan", "PtKey": ".plan", "compile_stages": ".compiler",
    "count_ops": ".compiler", "required_depth": ".compiler",
    "measure_unit_costs": ".costs", "tabulated_unit_costs": ".costs", "unit_costs": ".costs",
    "memory_estimate": ".costs", "predict_latency": ".costs",
    "SerializationError": ".serialization", "PrecisionError": ".bounds",
    "RemoteServer": "..serve.remote", "RemoteError": "..serve.remote",
}

__all__ = ["HEPredictor", "HECostReport", "he_cost_report", "choose_tile_shape",
           "build_stages", "CKKSParams", "choose_params", "resolve_params", "validate_params",
           "Client", "ServerModel", "EncryptedBatch", "EncryptedResult", "PlainSimulator",
           "reference_forward", "CompiledPlan", "PtKey", "compile_stages", "count_ops",
           "required_depth", "measure_unit_costs", "tabulated_unit_costs", "unit_costs",
           "memory_estimate", "predict_latency", "SerializationError", "BindingError",
           "PrecisionError", "RemoteServer", "RemoteError"]


__getattr__, __dir__ = attach(__name__, _LAZY)
