"""Evaluation engine: metrics, per-image prediction store, ensembles."""
