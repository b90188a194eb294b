"""Parsing the options of ``inceval run`` into one checked request (no torch, no I/O).

Per-model options (``--weights``, ``--weights-tag``) share one grammar: a comma-separated list
of ``VALUE`` (applies to every model) and ``MODEL=VALUE`` items (override for one model), e.g.
``pretrained``, ``v4=/ckpt/v4.safetensors,irv2=pretrained`` or ``random,v4=pretrained``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from inceval.errors import InceValError

WEIGHT_KEYWORDS = ("pretrained", "random")


def split_list(option: str, text: str) -> tuple[str, ...]:
    """Split a comma-separated option value, refusing empty items and repeats.

    Raises:
        InceValError: naming ``option``.
    """
    items = tuple(item.strip() for item in str(text).split(","))
    if not text or not all(items):
        raise InceValError(f"{option} {text!r} has an empty item; give a comma-separated list "
                           "such as v3,v4")
    repeated = next((item for i, item in enumerate(items) if item in items[:i]), None)
    if repeated is not None:
        raise InceValError(f"{option} lists {repeated} twice; list each once")
    return items


def per_model(option: str, text: str | None, models: Sequence[str],
              default: str | None) -> dict[str, str | None]:
    """Resolve a per-model option to one value per model.

    Args:
        option: the option name, for messages.
        text: the option value, or None when not given.
        models: the model names as given to ``--models``.
        default: the value of models the option does not mention.

    Returns:
        Model name -> value (``default`` where unmentioned).

    Raises:
        InceValError: an item for a model not in ``--models``, two values for one model, or two
            values for all models.
    """
    values: dict[str, str | None] = {name: default for name in models}
    if text is None:
        return values
    overall: str | None = None
    named: dict[str, str] = {}
    for item in split_list(option, text):
        name, sep, value = item.partition("=")
        if not sep:
            if overall is not None:
                raise InceValError(f"{option} {text!r} gives two values for all models ({overall} "
                                   f"and {item}); give one, then MODEL=VALUE overrides")
            overall = item
            continue
        name, value = name.strip(), value.strip()
        if not name or not value:
            raise InceValError(f"{option} item {item!r} must be MODEL=VALUE")
        if name not in models:
            raise InceValError(f"{option} item {item!r} names model {name}, which is not in "
                               f"--models ({','.join(models)})")
        if name in named:
            raise InceValError(f"{option} gives model {name} two values; give one")
        named[name] = value
    for name in models:
        values[name] = named.get(name, overall if overall is not None else default)
    return values


def check_weights_value(model: str, value: str) -> str:
    """Refuse a --weights value that is neither a keyword nor an existing file.

    Raises:
        InceValError: naming the model and the value.
    """
    if value in WEIGHT_KEYWORDS:
        return value
    path = Path(value).expanduser()
    if not path.is_file():
        raise InceValError(f"--weights for {model}: {value!r} is neither 'pretrained', 'random' "
                           "nor an existing checkpoint file; fix the path or the keyword")
    return str(path)


@dataclass(frozen=True)
class RunRequest:
    """Everything ``inceval run`` was asked to do, as plain values.

    Attributes mirror the command-line options; see ``inceval run --help`` for units and
    defaults. ``data`` None means the bundled sample.
    """

    models: tuple[str, ...]
    crops: tuple[str, ...]
    weights: dict[str, str] = field(default_factory=dict)
    weights_tags: dict[str, str | None] = field(default_factory=dict)
    data: Path | None = None
    layout: str = "auto"
    devkit: Path | None = None
    labels: Path | None = None
    blacklist: Path | None = None
    dataset: str = "auto"
    limit: int | None = None
    subset: str | None = None
    batch_size: int | None = None
    max_views_per_forward: int | None = None
    workers: int | None = None
    device: str = "auto"
    backend: str = "auto"
    dtype: str = "float32"
    tf32: bool = False
    compile: bool = False
    out: Path | None = None
    name: str | None = None
    overwrite: bool = False
    resume: bool = False
    strict: bool = False
    chunk_size: int = 1024
    seed: int = 0
    command: str | None = None

    @classmethod
    def from_options(cls, *, models: str, crops: str, weights: str | None,
                     weights_tag: str | None, **options: object) -> "RunRequest":
        """Build a request from raw option strings (the CLI's values).

        Raises:
            InceValError: malformed lists, per-model items for unknown models, bad weight values,
                or dataset options given without ``--data``.
        """
        model_list = split_list("--models", models)
        crop_list = split_list("--crops", crops)
        weights_map = per_model("--weights", weights, model_list, "pretrained")
        checked = {m: check_weights_value(m, v) for m, v in weights_map.items() if v is not None}
        tags = per_model("--weights-tag", weights_tag, model_list, None)
        if options.get("data") is None:
            for key in ("devkit", "labels", "blacklist"):
                if options.get(key) is not None:
                    raise InceValError(f"--{key} needs --data; without --data the bundled sample "
                                       "is evaluated with its own labels")
            for key in ("layout", "dataset"):
                if options.get(key, "auto") != "auto":
                    raise InceValError(f"--{key} needs --data; without --data the bundled sample "
                                       "is evaluated")
        return cls(models=model_list, crops=crop_list, weights=checked, weights_tags=tags,
                   **options)  # type: ignore[arg-type]

    @property
    def random_models(self) -> list[str]:
        """Models evaluated with random weights (their accuracy is meaningless)."""
        return [m for m in self.models if self.weights.get(m) == "random"]
