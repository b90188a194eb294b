"""inceval: exact, reproducible ImageNet evaluation of Inception networks."""

__version__ = "0.1.0"
