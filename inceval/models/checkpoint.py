"""Read a checkpoint file, adapt the public layouts to ours, and load it strictly.

Supported files: ``.safetensors`` and pickled state dicts (``.pth``, ``.pt``, ``.bin``, read with
``torch.load(weights_only=True)``). Adaptations, each reported as a note:

- ``module.`` (DataParallel) and ``_orig_mod.`` (torch.compile) key prefixes are stripped;
- a dict wrapped under ``state_dict`` or ``model`` is unwrapped;
- the older ``last_linear`` name of the IRv2 classifier becomes ``classif``;
- a 1001-class TF-slim head loses row 0 (the background class);
- ``AuxLogits.*`` tensors are dropped when the model has no auxiliary head;
- BatchNorm ``num_batches_tracked`` counters missing from old files are filled with 0.

Anything else that does not fit raises :class:`InceValError`; a partial load never happens.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from inceval.errors import InceValError

CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
_WRAPPER_KEYS = ("state_dict", "model")
_KEY_PREFIXES = ("module.", "_orig_mod.")
_AUX_PREFIX = "AuxLogits."
_SHOWN = 3  # names listed per category in a mismatch message


@dataclass
class LoadReport:
    """What :func:`load_checkpoint` did.

    Attributes:
        path: the file read.
        sha256: hex digest of the file's bytes.
        notes: one string per adaptation made.
        dropped_background_row: True when a 1001-class head was cut to 1000 classes.
    """

    path: Path
    sha256: str
    notes: list[str] = field(default_factory=list)
    dropped_background_row: bool = False


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read the tensors of a checkpoint file onto the CPU.

    Args:
        path: a ``.safetensors``, ``.pth``, ``.pt`` or ``.bin`` file.

    Returns:
        Name -> tensor, unwrapped from a ``state_dict``/``model`` entry if needed (prefixes are
        left to :func:`adapt_state_dict`).

    Raises:
        InceValError: missing file, unsupported suffix, unreadable or corrupt content, or content
            that is not a flat mapping of names to tensors.
    """
    path = Path(path)
    if not path.exists():
        raise InceValError(f"checkpoint file not found: {path}")
    if not path.is_file():
        raise InceValError(f"checkpoint path {path} is not a file; pass a checkpoint file")
    suffix = path.suffix.lower()
    if suffix not in CHECKPOINT_SUFFIXES:
        raise InceValError(
            f"checkpoint {path}: unsupported file type {suffix or '(none)'!r}; "
            f"use one of {', '.join(CHECKPOINT_SUFFIXES)}"
        )
    raw = _read_safetensors(path) if suffix == ".safetensors" else _read_pickle(path)
    return _unwrap(raw, path)


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises its own error types and OSError
        raise InceValError(
            f"cannot read checkpoint {path}: not a valid safetensors file ({_one_line(exc)}); "
            "the file may be truncated, download or copy it again"
        ) from exc


def _read_pickle(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses arbitrary objects (e.g. a whole pickled nn.Module): say so plainly.
        raise InceValError(
            f"cannot read checkpoint {path}: it holds more than tensors ({_one_line(exc)}); "
            "save model.state_dict() instead of the model object"
        ) from exc
    except Exception as exc:  # torch.load raises RuntimeError, EOFError, ... on corrupt files
        raise InceValError(
            f"cannot read checkpoint {path}: not a readable PyTorch file ({_one_line(exc)}); "
            "the file may be truncated or not a checkpoint"
        ) from exc


def _unwrap(raw: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(raw, dict):
        for key in _WRAPPER_KEYS:
            if isinstance(raw.get(key), dict):
                raw = raw[key]
                break
    if not isinstance(raw, dict) or not raw:
        raise InceValError(
            f"checkpoint {path} holds no state dict ({type(raw).__name__}); "
            "expected a mapping of tensor names to tensors"
        )
    not_tensors = [str(k) for k, v in raw.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise InceValError(
            f"checkpoint {path} mixes non-tensor entries into its state dict "
            f"({', '.join(not_tensors[:_SHOWN])}); expected only tensors, "
            f"or tensors under one of the keys {', '.join(_WRAPPER_KEYS)}"
        )
    return {str(k): v for k, v in raw.items()}


def adapt_state_dict(
    state_dict: dict[str, torch.Tensor], model: nn.Module
) -> tuple[dict[str, torch.Tensor], list[str], bool]:
    """Rewrite a public-layout state dict into ``model``'s layout.

    Args:
        state_dict: tensors as read from a file.
        model: the target network (its ``classifier_name`` attribute names the classifier).

    Returns:
        The adapted dict, notes describing each change, and whether a background row was dropped.
    """
    notes: list[str] = []
    target = model.state_dict()
    sd = dict(state_dict)

    for prefix in _KEY_PREFIXES:
        if sd and all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix) :]: v for k, v in sd.items()}
            notes.append(f"stripped the {prefix!r} prefix from {len(sd)} tensor names")

    classifier = getattr(model, "classifier_name", None)
    if classifier and classifier != "last_linear" and f"{classifier}.weight" not in sd:
        renamed = {k: v for k, v in sd.items() if k.startswith("last_linear.")}
        if renamed and f"{classifier}.weight" in target:
            for key, value in renamed.items():
                del sd[key]
                sd[classifier + key[len("last_linear") :]] = value
            notes.append(f"renamed the classifier last_linear -> {classifier} (older port)")

    dropped = False
    for head in filter(None, (classifier, "AuxLogits.fc")):
        if _drop_background_row(sd, target, head):
            dropped = True
            notes.append(f"dropped background row 0 of a 1001-class head ({head})")

    if not any(k.startswith(_AUX_PREFIX) for k in target):
        aux = [k for k in sd if k.startswith(_AUX_PREFIX)]
        if aux:
            for key in aux:
                del sd[key]
            notes.append(f"ignored {len(aux)} {_AUX_PREFIX}* tensors (the model has no aux head)")

    counters = [
        k
        for k in target
        if k.endswith(".num_batches_tracked")
        and k not in sd
        and k[: -len("num_batches_tracked")] + "running_mean" in sd
    ]
    if counters:
        for key in counters:
            sd[key] = torch.zeros((), dtype=torch.long)
        notes.append(
            f"filled {len(counters)} missing BatchNorm num_batches_tracked counters (unused in eval)"
        )

    cast = [
        k
        for k, v in sd.items()
        if k in target
        and v.is_floating_point()
        and target[k].is_floating_point()
        and v.dtype != target[k].dtype
    ]
    if cast:
        notes.append(f"converted {len(cast)} tensors from {sd[cast[0]].dtype} to {target[cast[0]].dtype}")
        sd.update({k: sd[k].to(target[k].dtype) for k in cast})
    return sd, notes, dropped


def _drop_background_row(sd: dict[str, torch.Tensor], target: dict[str, torch.Tensor], head: str) -> bool:
    weight, bias = f"{head}.weight", f"{head}.bias"
    if weight not in sd or weight not in target:
        return False
    rows, want = sd[weight].shape[0], target[weight].shape[0]
    if rows != want + 1 or sd[weight].shape[1:] != target[weight].shape[1:]:
        return False
    sd[weight] = sd[weight][1:]
    if bias in sd and sd[bias].shape[0] == want + 1:
        sd[bias] = sd[bias][1:]
    return True


def check_fit(state_dict: dict[str, torch.Tensor], model: nn.Module, source: str) -> None:
    """Raise unless ``state_dict`` has exactly the names and shapes of ``model``'s state dict.

    Args:
        state_dict: adapted tensors.
        model: the target network.
        source: how to name the checkpoint in the message (a path).

    Raises:
        InceValError: one line with the counts and the first few missing, unexpected and
            mis-shaped tensors.
    """
    target = model.state_dict()
    missing = [k for k in target if k not in state_dict]
    unexpected = [k for k in state_dict if k not in target]
    misshaped = [
        f"{k} (checkpoint {tuple(state_dict[k].shape)} vs model {tuple(target[k].shape)})"
        for k in target
        if k in state_dict and state_dict[k].shape != target[k].shape
    ]
    if not (missing or unexpected or misshaped):
        return
    parts = [f"{len(missing)} missing, {len(unexpected)} unexpected, {len(misshaped)} mis-shaped tensors"]
    for label, names in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
        if names:
            more = f" (+{len(names) - _SHOWN} more)" if len(names) > _SHOWN else ""
            parts.append(f"{label}: {', '.join(names[:_SHOWN])}{more}")
    name = getattr(model, "model_name", type(model).__name__)
    raise InceValError(
        f"checkpoint {source} does not fit {name}: {'; '.join(parts)}; "
        "check the model name, num_classes and model options match the checkpoint"
    )


def load_state_dict_checked(
    model: nn.Module, state_dict: dict[str, torch.Tensor], source: str, *, assign: bool = False
) -> tuple[list[str], bool]:
    """Adapt ``state_dict`` to ``model`` and load it strictly, in place.

    Args:
        model: the network to fill.
        state_dict: tensors in a public layout.
        source: how to name the tensors' origin in error messages (a path).
        assign: make the checkpoint's tensors the model's own (for a model built on the meta
            device) instead of copying into existing storage.

    Returns:
        The adaptation notes and whether a 1001-class head lost its background row.

    Raises:
        InceValError: any tensor that does not fit; ``model`` is then left unchanged.
    """
    adapted, notes, dropped = adapt_state_dict(state_dict, model)
    check_fit(adapted, model, source)
    model.load_state_dict(adapted, strict=True, assign=assign)
    return notes, dropped


def load_checkpoint(model: nn.Module, path: str | Path, *, assign: bool = False) -> LoadReport:
    """Read, adapt and strictly load a checkpoint file into ``model`` in place.

    Args:
        model: the network to fill.
        path: checkpoint file.
        assign: see :func:`load_state_dict_checked`.

    Returns:
        A :class:`LoadReport` with the file's hash and the adaptations made.

    Raises:
        InceValError: unreadable file or any tensor that does not fit.
    """
    path = Path(path)
    notes, dropped = load_state_dict_checked(model, read_state_dict(path), str(path), assign=assign)
    return LoadReport(path=path, sha256=file_sha256(path), notes=notes, dropped_background_row=dropped)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."
