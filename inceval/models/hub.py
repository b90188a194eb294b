"""Fetch public weights from the Hugging Face hub, local cache first so offline use works.

The cache directory and offline switch are read from the environment at each call (not at import,
as huggingface_hub's own constants are), so HF_HOME / HF_HUB_CACHE / HF_HUB_OFFLINE set by a caller
or a test always take effect.
"""

from __future__ import annotations

import os
from pathlib import Path

from inceval.errors import InceValError
from inceval.models.registry import WeightsSpec

_TRUE = {"1", "true", "yes", "on"}


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache directory, resolved as huggingface_hub resolves it."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE asks huggingface_hub never to reach the network."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def cached_weights(spec: WeightsSpec) -> Path | None:
    """Path of the weights file in the local hub cache, or None; never touches the network."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(spec.hub_repo, spec.hub_file, cache_dir=hub_cache_dir())
    return Path(found) if isinstance(found, str) else None


def fetch_weights(spec: WeightsSpec) -> Path:
    """Return a local path to the weights file, downloading it when not cached and allowed.

    Args:
        spec: the weights to fetch.

    Returns:
        Path of ``model.safetensors`` inside the hub cache.

    Raises:
        InceValError: not in the cache and the hub is offline or unreachable; the message names
            the repository, file and cache directory and says how to get the file.
    """
    from huggingface_hub import hf_hub_download

    cache = hub_cache_dir()
    try:
        return Path(hf_hub_download(spec.hub_repo, spec.hub_file, cache_dir=cache, local_files_only=True))
    except Exception as exc:  # any miss or damaged cache entry: fall through to the download
        local_error = exc
    if hub_offline():
        reason = "HF_HUB_OFFLINE is set"
    else:
        try:
            return Path(hf_hub_download(spec.hub_repo, spec.hub_file, cache_dir=cache))
        except Exception as exc:  # network, auth and HTTP errors all end the same way for the user
            reason = f"download failed: {_first_line(exc)}"
    raise InceValError(
        f"pretrained weights {spec.name} are not available: {spec.hub_repo}/{spec.hub_file} "
        f"is not in the Hugging Face cache {cache} and {reason}; on a connected machine run "
        f"`hf download {spec.hub_repo} {spec.hub_file}` and copy its cache to {cache} "
        "(or point HF_HOME/HF_HUB_CACHE at it), or pass the file with --weights PATH"
    ) from local_error


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."
