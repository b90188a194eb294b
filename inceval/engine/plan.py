"""Which views a run renders, and which of them each model and protocol uses.

Models whose :class:`~inceval.eval_config.EvalConfig` is equal see identical pixels for every
protocol, so they form one *view group*: the union of the protocols' views is rendered once per
image and fed to each model of the group. A protocol's views are then index arrays into that
union, and a model computes each distinct view once however many protocols share it (the 12 views
of ``"12"`` are a subset of ``"144"``, so ``1,12,144`` costs 145 views at 299 pixels, not 157).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from torch import nn

from inceval.data.protocols import Protocol
from inceval.data.views import ViewSpec, union_views
from inceval.eval_config import EvalConfig
from inceval.errors import InceValError


@dataclass(frozen=True, eq=False)
class ViewGroup:
    """Models that share one rendering of the views.

    Attributes:
        number: position of the group in the run (0-based).
        eval_config: the preprocessing every member shares.
        views: the union of the protocols' views, rendered once per image.
        protocol_views: per protocol (in run order), int64 indices of its views into ``views``.
        members: positions of the member models in the run's model list.
    """

    number: int
    eval_config: EvalConfig
    views: tuple[ViewSpec, ...]
    protocol_views: tuple[np.ndarray, ...]
    members: tuple[int, ...]

    @property
    def views_per_image(self) -> int:
        """Distinct views each member computes per image."""
        return len(self.views)


def model_eval_config(model: nn.Module) -> EvalConfig:
    """The ``eval_config`` attribute every model of a run must carry.

    Raises:
        InceValError: if the model has none (build models with ``inceval.models.create_model``).
    """
    config = getattr(model, "eval_config", None)
    if not isinstance(config, EvalConfig):
        name = getattr(model, "model_name", type(model).__name__)
        raise InceValError(f"model {name} has no eval_config; build it with "
                           "inceval.models.create_model or set model.eval_config")
    return config


def plan_groups(models: Sequence[nn.Module], protocols: Sequence[Protocol]) -> list[ViewGroup]:
    """Group models by evaluation settings and resolve each group's union of views.

    Args:
        models: the run's models, each with an ``eval_config``.
        protocols: the run's protocols, applied to every model.

    Returns:
        One group per distinct ``eval_config``, in order of first appearance.

    Raises:
        InceValError: for no models or protocols, a protocol named twice, or a protocol that does
            not fit a model's input size.
    """
    if not models:
        raise InceValError("no models to evaluate; pass --models")
    if not protocols:
        raise InceValError("no crop protocols; pass --crops")
    names = [p.name for p in protocols]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InceValError(f"--crops names protocol {repeated[0]} twice; list each protocol once")
    members: dict[EvalConfig, list[int]] = {}
    for position, model in enumerate(models):
        members.setdefault(model_eval_config(model), []).append(position)
    groups = []
    for number, (config, positions) in enumerate(members.items()):
        views, indices = union_views([protocol.resolve(config) for protocol in protocols])
        groups.append(ViewGroup(number, config, views, tuple(indices), tuple(positions)))
    return groups
