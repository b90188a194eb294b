"""The one way to get a network: build it, fill it with weights, attach its evaluation settings."""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from inceval.errors import InceValError
from inceval.eval_config import EvalConfig
from inceval.models.checkpoint import LoadReport, load_checkpoint
from inceval.models.hub import fetch_weights
from inceval.models.registry import (
    DEFAULT_EVAL_CONFIG,
    ModelSpec,
    WeightsSpec,
    list_model_names,
    resolve_model,
    resolve_weights,
)

_KEYWORDS = ("random", "pretrained")


def list_models() -> list[str]:
    """Canonical names of every network, in registry order (``v3``, ``v4``, ``irv2``, ...)."""
    return list_model_names()


def get_eval_config(name: str, weights_tag: str | None = None) -> EvalConfig:
    """Preprocessing settings of a model's weights, without building the model.

    Args:
        name: model name, alias, or full weights name (``inception_v3.gluon_in1k``).
        weights_tag: weights tag; default the model's default weights. Networks without public
            weights get the Inception defaults (299 input, crop 0.875, bicubic, 0.5/0.5).

    Raises:
        InceValError: unknown model or tag.
    """
    spec, weights = _resolve(name, weights_tag)
    return weights.eval_config if weights else DEFAULT_EVAL_CONFIG


def create_model(
    name: str,
    weights: str | os.PathLike[str] = "random",
    num_classes: int = 1000,
    *,
    weights_tag: str | None = None,
    seed: int = 0,
    **model_kwargs: Any,
) -> nn.Module:
    """Build a network in eval mode with its weights and evaluation settings.

    Args:
        name: ``v3``, ``v4``, ``irv2``, ``irv2-paper``, ``irv1``, an alias (``inception_v3``) or a
            full weights name (``inception_v3.tv_in1k``, which also selects those weights).
        weights: ``"random"`` (seeded initialisation), ``"pretrained"`` (the public weights,
            from the Hugging Face cache or hub) or the path of a checkpoint file.
        num_classes: classifier outputs.
        weights_tag: which public weights (``tv_in1k`` or ``inception_v3.tv_in1k``); default the
            model's default. For a checkpoint file it selects the evaluation settings.
        seed: seed of the random initialisation; the caller's global RNG state is preserved.
        **model_kwargs: passed to the network constructor (``aux_logits``, ``residual_scales``,
            ``drop_rate``).

    Returns:
        The model, with attributes ``model_name`` (canonical name), ``eval_config`` and
        ``weights_info`` (JSON-able: source, tag, path, sha256, seed, notes,
        dropped_background_row).

    Raises:
        InceValError: unknown name, tag or option; no public weights; weights not available
            offline; unreadable checkpoint or one that does not fit.
    """
    spec, weights_spec = _resolve(name, weights_tag)
    explicit_tag = weights_tag is not None or resolve_model(name)[1] is not None
    source = _weights_source(weights)
    if source == "pretrained" and weights_spec is None:
        raise InceValError(
            f"{spec.name} ({spec.paper_name}) has no public pretrained weights; "
            "use weights 'random' or pass a checkpoint file (--weights PATH)"
        )
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise InceValError(f"num_classes must be a positive integer, got {num_classes!r}")

    # Loaded weights replace every tensor, so skip the random initialisation (a second or more
    # for IRv2) by building on the meta device and adopting the checkpoint's tensors.
    model = _build(spec, num_classes, seed, model_kwargs, on_meta=source != "random")
    report: LoadReport | None = None
    notes: list[str] = []
    if source == "pretrained":
        report = load_checkpoint(model, fetch_weights(weights_spec), assign=True)
    elif source == "file":
        report = load_checkpoint(model, Path(weights), assign=True)
    if source != "random":
        _check_materialised(model, spec)
    if source == "file" and not explicit_tag and weights_spec is not None:
        notes.append(
            f"evaluation settings of the default weights {weights_spec.name}; "
            "pass weights_tag if the file holds other weights"
        )

    model.eval()
    model.model_name = spec.name
    model.eval_config = weights_spec.eval_config if weights_spec else DEFAULT_EVAL_CONFIG
    model.weights_info = {
        "source": source,
        "tag": weights_spec.name if weights_spec and (source == "pretrained" or explicit_tag) else None,
        "path": str(report.path) if report else None,
        "sha256": report.sha256 if report else None,
        "seed": seed if source == "random" else None,
        "notes": (report.notes if report else []) + notes,
        "dropped_background_row": bool(report and report.dropped_background_row),
    }
    return model


def _resolve(name: str, weights_tag: str | None) -> tuple[ModelSpec, WeightsSpec | None]:
    spec, tag_from_name = resolve_model(name)
    if tag_from_name and weights_tag is not None:
        chosen = resolve_weights(spec, weights_tag)
        if chosen is None or chosen.name != tag_from_name:
            raise InceValError(
                f"model name {name!r} selects weights {tag_from_name} but weights_tag is "
                f"{weights_tag!r}; give only one of them"
            )
    return spec, resolve_weights(spec, weights_tag or tag_from_name)


def _weights_source(weights: str | os.PathLike[str]) -> str:
    if isinstance(weights, str) and weights in _KEYWORDS:
        return weights
    if isinstance(weights, (str, os.PathLike)):
        path = Path(weights)
        if not path.exists():
            raise InceValError(
                f"weights {str(weights)!r}: no such checkpoint file; "
                "use 'random', 'pretrained' or the path of a .safetensors/.pth/.pt/.bin file"
            )
        return "file"
    raise InceValError(f"weights must be 'random', 'pretrained' or a file path, got {weights!r}")


def _build(
    spec: ModelSpec, num_classes: int, seed: int, model_kwargs: dict[str, Any], *, on_meta: bool
) -> nn.Module:
    cls = spec.load_class()
    params = inspect.signature(cls.__init__).parameters.values()
    accepted = [
        p.name
        for p in params
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in ("self", "num_classes")
    ]
    open_ended = any(p.kind is p.VAR_KEYWORD for p in params)
    unknown = [] if open_ended else sorted(set(model_kwargs) - set(accepted))
    if unknown:
        raise InceValError(
            f"{spec.name} does not take option(s) {', '.join(unknown)}; "
            f"its options: {', '.join(accepted) or 'none'}"
        )
    try:
        if on_meta:
            return build_uninitialised(cls, num_classes=num_classes, **model_kwargs)
        # A private RNG stream: the same seed gives the same weights whatever the caller did
        # before, and the caller's own random sequence continues as if nothing happened.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return cls(num_classes=num_classes, **model_kwargs)
    except (TypeError, ValueError) as exc:
        if not model_kwargs:
            raise
        raise InceValError(f"invalid option for {spec.name}: {exc}") from exc


def build_uninitialised(cls: type[nn.Module], **kwargs: Any) -> nn.Module:
    """Construct ``cls(**kwargs)`` on the meta device, skipping weight initialisation.

    Every tensor is a meta tensor (shape and dtype only) until a state dict is loaded with
    ``assign=True``.
    """
    with torch.device("meta"), _SkipInitialisation():
        return cls(**kwargs)


class _SkipInitialisation(TorchFunctionMode):
    """Turns in-place tensor methods (the initialisers ``normal_``, ``uniform_``, ...) into no-ops.

    On meta tensors they compute nothing anyway, but ``normal_`` would make torch import its
    compiler stack (seconds) to find a meta kernel.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        name = getattr(func, "__name__", "")
        if name.endswith("_") and not name.startswith("_") and args and isinstance(args[0], torch.Tensor):
            return args[0]
        return func(*args, **(kwargs or {}))


def _check_materialised(model: nn.Module, spec: ModelSpec) -> None:
    # A tensor outside the state dict (a non-persistent buffer) would stay on meta: a bug of the
    # network class, not of the user's file.
    left = [name for name, t in (*model.named_parameters(), *model.named_buffers()) if t.is_meta]
    if left:
        raise RuntimeError(f"{spec.name}: tensors not filled by the checkpoint: {', '.join(left[:3])}")
