"""Reports built from stored runs: the paper's tables (tables.py, render.py) and run comparisons
(compare.py), with the paper's own numbers as data (paper.py, paper_values.json).

Reports read runs through :mod:`inceval.store` only; they never evaluate a model.
"""
