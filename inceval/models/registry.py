"""The model zoo as plain data: which networks exist and which public weights they accept.

Every entry is a frozen dataclass written out literally below. The lookup tables are built from
those literals by :func:`_index`, which refuses a duplicate name, so a clash is an import error
rather than a silent overwrite. Nothing here imports torch or builds a network.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

from inceval.errors import InceValError
from inceval.eval_config import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, EvalConfig

# The published single-crop figures of the public checkpoints (all 50,000 validation images).
_TIMM_RESULTS = "timm results-imagenet.csv, single 299 crop, all 50,000 images (shared/notes/paper.md)"

_INCEPTION_EVAL = EvalConfig(input_size=299, crop_pct=0.875, interpolation="bicubic")
_IRV2_EVAL = EvalConfig(input_size=299, crop_pct=0.8975, interpolation="bicubic")
_GLUON_EVAL = EvalConfig(
    input_size=299,
    crop_pct=0.875,
    interpolation="bicubic",
    mean=IMAGENET_DEFAULT_MEAN,
    std=IMAGENET_DEFAULT_STD,
)


@dataclass(frozen=True)
class WeightsSpec:
    """One set of public weights, named ``arch.tag`` as on the Hugging Face hub (``timm/arch.tag``).

    Attributes:
        arch: architecture prefix of the tag (``inception_v3``).
        tag: weights tag (``tf_in1k``).
        eval_config: preprocessing these weights were evaluated with.
        top1: published single-crop top-1 accuracy in percent.
        top5: published single-crop top-5 accuracy in percent.
        accuracy_source: where the two figures come from.
        description: one line on the origin of the weights.
        hub_file: file name inside the hub repository.
    """

    arch: str
    tag: str
    eval_config: EvalConfig
    top1: float
    top5: float
    accuracy_source: str
    description: str
    hub_file: str = "model.safetensors"

    @property
    def name(self) -> str:
        """Full weights name, ``arch.tag``."""
        return f"{self.arch}.{self.tag}"

    @property
    def hub_repo(self) -> str:
        """Hugging Face hub repository holding :attr:`hub_file`."""
        return f"timm/{self.name}"


@dataclass(frozen=True)
class ModelSpec:
    """One network of the zoo.

    Attributes:
        name: canonical short name (``v3``).
        arch: timm-style architecture name; also the prefix of its weights tags.
        aliases: other accepted names.
        paper_name: the name the paper's tables use.
        builder: ``module:Class`` of the network, imported only when a model is built.
        description: one line for listings.
        weights: tags of the public weights, default first; empty when none were released.
    """

    name: str
    arch: str
    aliases: tuple[str, ...]
    paper_name: str
    builder: str
    description: str
    weights: tuple[str, ...] = ()

    @property
    def default_weights(self) -> str | None:
        """Full name of the default weights, or None when the network has no public weights."""
        return f"{self.arch}.{self.weights[0]}" if self.weights else None

    def load_class(self) -> type:
        """Import and return the network class (the only place a family module is imported)."""
        module_name, _, class_name = self.builder.partition(":")
        return getattr(importlib.import_module(module_name), class_name)


_T = TypeVar("_T")


def _index(entries: Iterable[_T], key_of: str) -> dict[str, _T]:
    """Map each entry by its ``key_of`` attribute; a repeated key is a programming error."""
    table: dict[str, _T] = {}
    for entry in entries:
        key = getattr(entry, key_of)
        if key in table:
            raise ValueError(f"duplicate registry entry {key!r}")
        table[key] = entry
    return table


MODELS: dict[str, ModelSpec] = _index(
    (
        ModelSpec(
            name="v3",
            arch="inception_v3",
            aliases=("inception_v3",),
            paper_name="Inception-v3",
            builder="inceval.models.inception_v3:InceptionV3",
            description="Inception-v3 (Szegedy et al. 2015), the paper's non-residual baseline",
            weights=("tf_in1k", "tv_in1k", "tf_adv_in1k", "gluon_in1k"),
        ),
        ModelSpec(
            name="v4",
            arch="inception_v4",
            aliases=("inception_v4",),
            paper_name="Inception-v4",
            builder="inceval.models.inception_v4:InceptionV4",
            description="Inception-v4, the paper's pure Inception network",
            weights=("tf_in1k",),
        ),
        ModelSpec(
            name="irv2",
            arch="inception_resnet_v2",
            aliases=("inception_resnet_v2",),
            paper_name="Inception-ResNet-v2",
            builder="inceval.models.inception_resnet_v2:InceptionResNetV2",
            description="Inception-ResNet-v2 as released by TF-slim (v3-like stem)",
            weights=("tf_in1k", "tf_ens_adv_in1k"),
        ),
        ModelSpec(
            name="irv2-paper",
            arch="inception_resnet_v2_paper",
            aliases=(),
            paper_name="Inception-ResNet-v2",
            builder="inceval.models.inception_resnet_v2:InceptionResNetV2Paper",
            description="Inception-ResNet-v2 as drawn in the paper (v4 stem); no public weights",
        ),
        ModelSpec(
            name="irv1",
            arch="inception_resnet_v1",
            aliases=("inception_resnet_v1",),
            paper_name="Inception-ResNet-v1",
            builder="inceval.models.inception_resnet_v1:InceptionResNetV1",
            description="Inception-ResNet-v1 as drawn in the paper; no public weights",
        ),
    ),
    "name",
)

WEIGHTS: dict[str, WeightsSpec] = _index(
    (
        WeightsSpec(
            "inception_v3",
            "tf_in1k",
            _INCEPTION_EVAL,
            77.866,
            93.644,
            _TIMM_RESULTS,
            "Google's TF-slim weights (the paper's own training), ported",
        ),
        WeightsSpec(
            "inception_v3",
            "tv_in1k",
            _INCEPTION_EVAL,
            77.472,
            93.468,
            _TIMM_RESULTS,
            "torchvision's port of Google's weights (carries AuxLogits tensors)",
        ),
        WeightsSpec(
            "inception_v3",
            "tf_adv_in1k",
            _INCEPTION_EVAL,
            77.598,
            93.726,
            _TIMM_RESULTS,
            "Google's adversarially trained weights (Kurakin et al. 2016), ported",
        ),
        WeightsSpec(
            "inception_v3",
            "gluon_in1k",
            _GLUON_EVAL,
            78.806,
            94.372,
            _TIMM_RESULTS,
            "MXNet Gluon weights; ImageNet mean/std, not the Inception 0.5/0.5",
        ),
        WeightsSpec(
            "inception_v4",
            "tf_in1k",
            _INCEPTION_EVAL,
            80.144,
            94.982,
            _TIMM_RESULTS,
            "Google's TF-slim weights, ported",
        ),
        WeightsSpec(
            "inception_resnet_v2",
            "tf_in1k",
            _IRV2_EVAL,
            80.434,
            95.312,
            _TIMM_RESULTS,
            "Google's TF-slim weights, ported",
        ),
        WeightsSpec(
            "inception_resnet_v2",
            "tf_ens_adv_in1k",
            _IRV2_EVAL,
            79.998,
            94.940,
            _TIMM_RESULTS,
            "Google's ensemble-adversarially trained weights (Tramer et al. 2017), ported",
        ),
    ),
    "name",
)

# Networks without released weights are evaluated with the Inception defaults.
DEFAULT_EVAL_CONFIG = _INCEPTION_EVAL


def _normalise(name: str) -> str:
    # Users type irv2_paper / IRV2-Paper / inception-v3 interchangeably.
    return name.strip().lower().replace("_", "-")


def _lookup_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for spec in MODELS.values():
        for key in (spec.name, *spec.aliases):
            if _normalise(key) in table:
                raise ValueError(f"model name or alias {key!r} is registered twice")
            table[_normalise(key)] = spec.name
    return table


_NAMES = _lookup_table()


def list_model_names() -> list[str]:
    """Canonical model names in registry order."""
    return list(MODELS)


def resolve_model(name: str) -> tuple[ModelSpec, str | None]:
    """Find a model by name, alias or full weights name.

    Args:
        name: ``v3``, an alias such as ``inception_v3``, or a weights name such as
            ``inception_v3.tv_in1k`` (which also selects those weights).

    Returns:
        The model spec and the full weights name the name selected, or None.

    Raises:
        InceValError: unknown name; the message lists close matches and every name.
    """
    if not isinstance(name, str) or not name.strip():
        raise InceValError(f"model name must be a non-empty string, got {name!r}; {_available()}")
    key = _normalise(name)
    if key in _NAMES:
        return MODELS[_NAMES[key]], None
    for weights in WEIGHTS.values():
        if _normalise(weights.name) == key:
            return _model_of_arch(weights.arch), weights.name
    spelled = {_normalise(n): n for s in MODELS.values() for n in (s.name, *s.aliases, *weights_names(s))}
    close = [spelled[c] for c in difflib.get_close_matches(key, list(spelled), n=3, cutoff=0.5)]
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise InceValError(f"unknown model {name!r}; {hint}{_available()}")


def resolve_weights(spec: ModelSpec, tag: str | None) -> WeightsSpec | None:
    """Pick the weights of ``spec`` named by ``tag``, or its default weights.

    Args:
        spec: the model.
        tag: short (``tv_in1k``) or full (``inception_v3.tv_in1k``) tag; None for the default.

    Returns:
        The weights spec, or None when ``tag`` is None and the model has no public weights.

    Raises:
        InceValError: the tag does not belong to the model; the message lists its tags.
    """
    if tag is None:
        return WEIGHTS[spec.default_weights] if spec.default_weights else None
    short = tag.strip().lower()
    if short.startswith(spec.arch + "."):
        short = short[len(spec.arch) + 1 :]
    if short in spec.weights:
        return WEIGHTS[f"{spec.arch}.{short}"]
    if not spec.weights:
        raise InceValError(
            f"weights tag {tag!r} given, but {spec.name} has no public weights; "
            "drop the tag or pass a checkpoint file"
        )
    raise InceValError(
        f"unknown weights tag {tag!r} for {spec.name}; available: {', '.join(weights_names(spec))}"
    )


def weights_names(spec: ModelSpec) -> list[str]:
    """Full weights names of a model, default first."""
    return [f"{spec.arch}.{tag}" for tag in spec.weights]


def _model_of_arch(arch: str) -> ModelSpec:
    return next(spec for spec in MODELS.values() if spec.arch == arch)


def _available() -> str:
    names = [f"{s.name} ({', '.join(s.aliases)})" if s.aliases else s.name for s in MODELS.values()]
    return f"available: {', '.join(names)}"
