"""Which views a run renders, and which of them each model and protocol uses.

Views are rendered as uint8 pixels and every model normalises them itself, so only the input size
decides which models can share a rendering: models of one input size form a *view group*. The
group renders the union of all its members' protocol views once per image (Inception-v4 and
Inception-ResNet-v2 differ only in the single-crop view of ``"1"``, so ``1,12,144`` renders 146
views at 299 pixels for the pair, not 290). Each member computes its own distinct views once
however many protocols share them (the 12 views of ``"12"`` are a subset of ``"144"``, so
``1,12,144`` costs each model 145 views, not 157), and a protocol's views are index arrays into
them.
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
class MemberViews:
    """One model's share of a view group.

    Attributes:
        position: position of the model in the run's model list.
        eval_config: the model's own preprocessing (its mean/std normalise the shared pixels).
        views: int64 indices into the group's views of the model's distinct views, in the order
            the model computes them (the order it would render them alone).
        protocol_views: per protocol (in run order), int64 indices of its views into the group's
            views, in the protocol's order.
        selection: ``views`` when the model computes something other than the rendered views as
            they are (a subset, or another order); None when it computes all of them in order.
        computed_protocol_views: per protocol, int64 indices of its views along dimension 1 of
            what the model computes: the rendered views, or ``selection`` of them.
    """

    position: int
    eval_config: EvalConfig
    views: np.ndarray
    protocol_views: tuple[np.ndarray, ...]
    selection: np.ndarray | None
    computed_protocol_views: tuple[np.ndarray, ...]

    @property
    def views_per_image(self) -> int:
        """Distinct views the model computes per image."""
        return len(self.views)


@dataclass(frozen=True, eq=False)
class ViewGroup:
    """Models that share one rendering of the views.

    Attributes:
        number: position of the group in the run (0-based).
        input_size: the side of every view of the group, in pixels.
        views: the union of every member's protocol views, rendered once per image.
        members: the member models, in run order.
    """

    number: int
    input_size: int
    views: tuple[ViewSpec, ...]
    members: tuple[MemberViews, ...]

    @property
    def rendered_views_per_image(self) -> int:
        """Views the loader renders per image for this group."""
        return len(self.views)

    @property
    def positions(self) -> tuple[int, ...]:
        """Positions of the member models in the run's model list."""
        return tuple(member.position for member in self.members)


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


def _member(position: int, config: EvalConfig, view_lists: Sequence[Sequence[ViewSpec]],
            index_of: dict[ViewSpec, int], num_rendered: int) -> MemberViews:
    own, own_protocol_views = union_views(view_lists)
    views = np.asarray([index_of[view] for view in own], dtype=np.int64)
    protocol_views = tuple(views[idx] for idx in own_protocol_views)
    if np.array_equal(views, np.arange(num_rendered)):
        return MemberViews(position, config, views, protocol_views, None, protocol_views)
    return MemberViews(position, config, views, protocol_views, views, tuple(own_protocol_views))


def plan_groups(models: Sequence[nn.Module], protocols: Sequence[Protocol]) -> list[ViewGroup]:
    """Group models by input size and resolve each group's union of views.

    Args:
        models: the run's models, each with an ``eval_config``.
        protocols: the run's protocols, applied to every model.

    Returns:
        One group per distinct input size, in order of first appearance; its views in order of
        first appearance over its members (run order) and their protocols (run order).

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
    by_size: dict[int, list[tuple[int, EvalConfig, list[tuple[ViewSpec, ...]]]]] = {}
    for position, model in enumerate(models):
        config = model_eval_config(model)
        view_lists = [protocol.resolve(config) for protocol in protocols]
        by_size.setdefault(config.input_size, []).append((position, config, view_lists))
    groups = []
    for number, (size, entries) in enumerate(by_size.items()):
        views, _ = union_views([listed for _, _, lists in entries for listed in lists])
        index_of = {view: i for i, view in enumerate(views)}
        members = tuple(_member(position, config, lists, index_of, len(views))
                        for position, config, lists in entries)
        groups.append(ViewGroup(number, size, views, members))
    return groups
