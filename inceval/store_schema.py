"""Validation of a run directory's manifest as read back: every key the readers rely on.

A run directory can be damaged by hand edits, a half-copied folder or another tool. Readers
(``tables``, ``compare``, ``ensemble``, :class:`inceval.store.RunReader`) check the manifest here
before using it, so a damaged run gives one line naming the file, the key and what is wrong
(exit status 2), never a traceback or a wrong number.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

from inceval.errors import InceValError

# A sha256 hex digest (what data.fingerprint and images_sha256 hold).
HEX64 = re.compile(r"^[0-9a-f]{64}$")
# An image index as a JSON object key (unreadable.images): a decimal integer without a sign or
# leading zeros, so that each image has one spelling.
_INDEX_KEY = re.compile(r"^(0|[1-9][0-9]*)$")
PROB_DTYPES = ("float16", "float32")


class _Checker:
    """Checks keys of one manifest; the first problem raises, naming the file and the key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, what: str) -> InceValError:
        return InceValError(f"{self.path}: {key} {what}; the run directory is damaged: restore it "
                            "from a copy or rerun")

    def get(self, mapping: Mapping[str, Any], key: str, where: str, kind: type | tuple[type, ...],
            kind_name: str) -> Any:
        name = f"{where}.{key}" if where else key
        if key not in mapping:
            raise self.fail(f"key '{name}'", "is missing")
        value = mapping[key]
        # bool is an int in Python; a JSON true where a count belongs is still wrong.
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
            raise self.fail(f"key '{name}'", f"should be {kind_name}, not {_json_type(value)}")
        return value

    def count(self, mapping: Mapping[str, Any], key: str, where: str, least: int = 0) -> int:
        value = self.get(mapping, key, where, int, "an integer")
        if value < least:
            raise self.fail(f"key '{where}.{key}'" if where else f"key '{key}'",
                            f"is {value}, below {least}")
        return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _json_type(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "a list", dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def check_manifest(manifest: Any, path: Path) -> None:
    """Check the keys and types a reader relies on, and that they agree with each other.

    Args:
        manifest: the parsed manifest.json.
        path: its path, for messages.

    Raises:
        InceValError: the first problem, as one line naming ``path`` and the key.
    """
    c = _Checker(path)
    if not isinstance(manifest, dict):
        raise InceValError(f"{path} is not an inceval run manifest (not a JSON object)")
    dtype = c.get(manifest, "prob_dtype", "", str, "a string")
    if dtype not in PROB_DTYPES:
        raise c.fail("key 'prob_dtype'", f"is {dtype!r}, not one of {', '.join(PROB_DTYPES)}")
    num_images = c.count(manifest, "num_images", "")
    digest = c.get(manifest, "images_sha256", "", str, "a string")
    if not HEX64.match(digest):
        raise c.fail("key 'images_sha256'", "is not a sha256 hex digest (64 digits)")
    models = c.get(manifest, "models", "", dict, "an object")
    for name, info in models.items():
        c.get(models, name, "models", dict, "an object")
    protocols = c.get(manifest, "protocols", "", dict, "an object")
    for name in protocols:
        record = c.get(protocols, name, "protocols", dict, "an object")
        c.get(record, "version", f"protocols.{name}", int, "an integer")
        c.get(record, "views", f"protocols.{name}", list, "a list")
    data = c.get(manifest, "data", "", dict, "an object")
    fingerprint = c.get(data, "fingerprint", "data", str, "a string")
    if not HEX64.match(fingerprint):
        raise c.fail("key 'data.fingerprint'", "is not a sha256 hex digest (64 digits)")
    if data.get("scored_classes") is not None:
        classes = c.get(data, "scored_classes", "data", list, "a list")
        if not classes or not all(isinstance(x, int) and not isinstance(x, bool) for x in classes) \
                or sorted(set(classes)) != classes:
            raise c.fail("key 'data.scored_classes'", "is not a sorted list of distinct class "
                                                      "indices")
    if "unreadable" in manifest:
        _check_unreadable(c, c.get(manifest, "unreadable", "", dict, "an object"), num_images)
    predictions = c.get(manifest, "predictions", "", dict, "an object")
    for model, files in predictions.items():
        if model not in models:
            raise c.fail(f"key 'predictions.{model}'", "names a model that 'models' lacks")
        files = c.get(predictions, model, "predictions", dict, "an object")
        for protocol in files:
            where = f"predictions.{model}.{protocol}"
            if protocol not in protocols:
                raise c.fail(f"key '{where}'", "names a protocol that 'protocols' lacks")
            _check_entry(c, c.get(files, protocol, f"predictions.{model}", dict, "an object"),
                         where, num_images, protocols[protocol]["version"])


def _check_unreadable(c: _Checker, record: Mapping[str, Any], num_images: int) -> None:
    """``unreadable``: {"count": K, "images": {"<index>": "<reason>", ...}} with K entries.

    Whether it agrees with images.csv's ``error`` column is checked when images.csv is read
    (:mod:`inceval.store`).
    """
    count = c.count(record, "count", "unreadable")
    images = c.get(record, "images", "unreadable", dict, "an object")
    for key, reason in images.items():
        if not _INDEX_KEY.match(key) or int(key) >= num_images:
            raise c.fail(f"key 'unreadable.images.{key}'",
                         f"is not an image index (0..{num_images - 1})")
        if not isinstance(reason, str) or not reason.strip():
            what = "an empty string" if isinstance(reason, str) else _json_type(reason)
            raise c.fail(f"key 'unreadable.images.{key}'",
                         f"should be the reason the image could not be read, not {what}")
    if count != len(images):
        raise c.fail("key 'unreadable.count'", f"is {count} but 'unreadable.images' lists "
                                               f"{len(images)} image(s)")


def _check_entry(c: _Checker, entry: Mapping[str, Any], where: str, num_images: int,
                 version: int) -> None:
    file = c.get(entry, "file", where, str, "a string")
    parts = Path(file).parts
    if Path(file).is_absolute() or ".." in parts or not parts or parts[0] != "predictions":
        raise c.fail(f"key '{where}.file'", f"is {file!r}, not a path under predictions/")
    if c.get(entry, "protocol_version", where, int, "an integer") != version:
        raise c.fail(f"key '{where}.protocol_version'", f"differs from the protocol's version "
                                                        f"{version}")
    rows = c.count(entry, "num_rows", where)
    if rows != num_images:
        raise c.fail(f"key '{where}.num_rows'", f"is {rows} but the run has {num_images} images")
    c.count(entry, "num_classes", where, least=1)
    written = c.count(entry, "rows_written", where)
    if written > rows:
        raise c.fail(f"key '{where}.rows_written'", f"is {written}, more than its {rows} rows")
    complete = c.get(entry, "complete", where, bool, "a boolean")
    if complete and written != rows:
        raise c.fail(f"key '{where}.complete'", f"is true but only {written} of {rows} rows are "
                                                "written")
