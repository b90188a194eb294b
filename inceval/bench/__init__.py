"""Throughput measurements: ``inceval bench`` and the bench-JSON regression gate.

Modules, one job each:

* :mod:`~inceval.bench.synthetic` - generated photograph-like JPEGs for a bench without data.
* :mod:`~inceval.bench.calibration` - the device's GEMM rate and the fixed reference workload.
* :mod:`~inceval.bench.memory` - peak host RSS and peak device memory of one measurement.
* :mod:`~inceval.bench.stages` - the four measurements: feeder, view pipeline, model, end to end.
* :mod:`~inceval.bench.runner` - models x protocols x stages into one result document.
* :mod:`~inceval.bench.result` - the versioned JSON format: rows, validation, reading.
* :mod:`~inceval.bench.compare` - two results compared on normalised throughput.
* :mod:`~inceval.bench.presets` - the small fixed bench of the CI gate.
* :mod:`~inceval.bench.gate` - the gate's baseline, and its demonstration under load.

The command line is ``inceval bench`` (:mod:`inceval.cli.bench`) and ``inceval compare A.json
B.json`` (docs/bench.md).
"""
