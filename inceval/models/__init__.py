"""Inception networks of the paper, their weights and evaluation settings.

Public API::

    from inceval.models import create_model, list_models, get_eval_config, prepare_for_inference
"""

from inceval.models.factory import create_model, get_eval_config, list_models
from inceval.models.inference import autocast_context, prepare_for_inference

__all__ = [
    "autocast_context",
    "create_model",
    "get_eval_config",
    "list_models",
    "prepare_for_inference",
]
