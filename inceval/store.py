"""The results store: one run directory of per-image predictions, and the errors computed from it.

Layout (schema version 1; full reference in docs/results-format.md)::

    RUN_DIR/
      manifest.json                  what was run, on what, how; status of every prediction file
      images.csv                     index,path,label,blacklisted  (one row per image, run order)
      predictions/<model>/<protocol>.npy   N x C mean softmax probabilities, images.csv order
      .lock                          held (flock) by the writing process; carries no data

Writing (the ``inceval run`` engine and ``inceval ensemble``)::

    writer = RunWriter.create(run_dir, manifest=manifest, images=images)   # or RunWriter.resume
    writer.open_predictions("v4", "144", num_classes=1000)
    writer.write("v4", "144", start_row, probs)   # probs (B, C) float32; stored as float16
    writer.mark_complete("v4", "144")             # every row written
    writer.finish({"throughput": {...}})          # merges keys into the manifest, releases the lock

``manifest`` must hold ``models`` (name -> dict), ``protocols`` (name -> {"version": int,
"views": [labels]}) and ``data`` ({"fingerprint": 64 hex digits, ...}); everything else the caller
puts there (versions, command line, device...) is kept as given. The store adds and owns
``format``, ``schema_version``, ``prob_dtype``, ``num_images``, ``images_sha256``, ``predictions``,
``started_at`` (unless given) and ``finished_at``.

Each :meth:`RunWriter.write` copies rows into a memory-mapped ``.npy`` file; the rows are flushed
to the file *before* the manifest's ``rows_written`` is raised, so after a crash the manifest never
claims rows that are not on disk, and :meth:`RunWriter.resume` can continue from
:meth:`RunWriter.rows_written`. Writes must not leave gaps (``start_row <= rows_written``);
rewriting rows already written is allowed, so a resumed run may restart at a batch boundary.

Reading::

    run = RunReader(run_dir)
    run.manifest, run.images, run.labels, run.blacklisted, run.fingerprint, run.num_images
    run.entries()                        # [(model, protocol), ...]
    run.status("v4", "144")              # EntryStatus: rows written, complete, protocol version
    run.probabilities("v4", "144")       # read-only memmap (N, C); refuses incomplete files
    run.results()                        # [Score, ...]: top-1/top-5 error, all and non-blacklisted
    run.errors, run.unreadable, run.num_unreadable   # images that could not be read (NaN rows)

Unreadable images are never scored: ``Score.images`` counts the others, ``Score.unreadable``
those left out. images.csv's ``error`` column and the manifest's ``unreadable`` record must agree
(``images_sha256`` covers images.csv without that column); :func:`scored_difference` and
:func:`require_same_images` tell runs of the same images that could not read the same ones.

Every problem a user can fix (not a run, newer schema, incomplete file, modified images.csv, disk
full, directory in use) raises :class:`~inceval.errors.InceValError` with a one-line message; API
misuse by the calling code raises ValueError.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import mmap
import os
import re
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
from numpy.lib.format import open_memmap

from inceval.engine.metrics import TIE_RULE
from inceval.errors import InceValError
from inceval.scoring import (SUBSETS, Score, check_rows_finite, restrict_to_classes,
                             score_from_tally, tally_subsets, unreadable_counts)
from inceval.store_schema import HEX64, PROB_DTYPES, check_manifest

try:  # POSIX advisory locks; elsewhere a second writer is not detected.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

SCHEMA_VERSION = 1
FORMAT = "inceval-run"
MANIFEST = "manifest.json"
IMAGES = "images.csv"
PREDICTIONS = "predictions"
LOCK = ".lock"
IMAGE_COLUMNS = ("index", "path", "label", "blacklisted")
# Last column of images.csv: empty, or why the image could not be evaluated (its rows are NaN).
ERROR_COLUMN = "error"
# Directory of chunk markers: chunks/NNNNNN.json exists once every row of that chunk is on disk.
CHUNKS = "chunks"

# Keys of the manifest that only the store writes.
_STORE_KEYS = frozenset(
    {"format", "schema_version", "prob_dtype", "num_images", "images_sha256", "predictions",
     "finished_at", "unreadable"}
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
# Mean softmax rows sum to 1; float16 inputs and view averaging stay far inside this tolerance.
_ROW_SUM_TOLERANCE = 1e-2
_SCORE_CHUNK_ROWS = 4096


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def check_name(kind: str, name: str) -> str:
    """Return ``name`` if it can be a file name in the store (model, protocol, ensemble name).

    Raises:
        InceValError: for empty names, path separators, or a leading dot or dash.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise InceValError(
            f"{kind} name {name!r} cannot be stored; use letters, digits and . _ + - "
            "(not starting with . + or -)"
        )
    return name


# ----------------------------------------------------------------------------------------------
# Small file helpers: every failure becomes a one-line InceValError naming the file.


def resume_command(manifest: Mapping[str, Any]) -> str:
    """The command that continues a run: the command line it recorded, with ``--resume``."""
    command = manifest.get("command")
    if not isinstance(command, str) or not command.startswith("inceval run"):
        return "the inceval run command that made it, with --resume"
    return command if " --resume" in f" {command}" else f"{command} --resume"


def _write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise InceValError(f"cannot write {path}: {exc.strerror or exc}; free space or fix "
                           "permissions") from exc


def _manifest_bytes(manifest: Mapping[str, Any]) -> bytes:
    try:
        return (json.dumps(manifest, indent=2, allow_nan=False) + "\n").encode()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"manifest is not plain JSON data: {exc}") from exc


def _images_frame(images: pd.DataFrame | Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Validate the image table given to :meth:`RunWriter.create` and put it in store order."""
    frame = images.copy() if isinstance(images, pd.DataFrame) else pd.DataFrame(list(images))
    missing = [c for c in ("path", "label", "blacklisted") if c not in frame.columns]
    if missing:
        raise ValueError(f"images lack column(s) {missing}; need path, label, blacklisted")
    if len(frame) == 0:
        raise ValueError("images is empty")
    n = len(frame)
    if "index" in frame.columns:
        if not np.array_equal(frame["index"].to_numpy(), np.arange(n)):
            raise ValueError("images 'index' must be 0..N-1 in order")
        frame = frame.drop(columns="index")
    paths = frame["path"]
    if not all(isinstance(p, str) and p for p in paths):
        raise ValueError("every image path must be a non-empty string")
    if paths.duplicated().any():
        raise ValueError(f"duplicate image path {paths[paths.duplicated()].iloc[0]!r}")
    labels = frame["label"].to_numpy()
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise ValueError("image labels must be non-negative integers")
    flags = frame["blacklisted"].to_numpy()
    if not (flags.dtype == bool or np.isin(flags, (0, 1)).all()):
        raise ValueError("'blacklisted' must be booleans or 0/1")
    frame["label"] = labels.astype(np.int64)
    frame["blacklisted"] = flags.astype(bool)
    frame.insert(0, "index", np.arange(n))
    if ERROR_COLUMN not in frame.columns:
        frame[ERROR_COLUMN] = ""
    frame[ERROR_COLUMN] = frame[ERROR_COLUMN].fillna("").astype(str)
    extra = [c for c in frame.columns if c not in IMAGE_COLUMNS and c != ERROR_COLUMN]
    return frame[[*IMAGE_COLUMNS, *extra, ERROR_COLUMN]]


def _images_csv_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.StringIO()
    out = frame.copy()
    out["blacklisted"] = out["blacklisted"].astype(np.int8)
    out.to_csv(buffer, index=False, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    return buffer.getvalue().encode()


def images_identity_sha256(frame: pd.DataFrame) -> str:
    """sha256 of images.csv as rendered without its ``error`` column (the manifest's
    ``images_sha256``): it covers which images, labels and flags, not which failed to decode."""
    identity = frame.drop(columns=[ERROR_COLUMN]) if ERROR_COLUMN in frame.columns else frame
    return hashlib.sha256(_images_csv_bytes(identity)).hexdigest()


def _validate_manifest(manifest: Mapping[str, Any]) -> None:
    for key in ("models", "protocols", "data"):
        if not isinstance(manifest.get(key), Mapping):
            raise ValueError(f"manifest needs a {key!r} mapping")
    for name in manifest["models"]:
        check_name("model", name)
    for name, protocol in manifest["protocols"].items():
        check_name("protocol", name)
        if not isinstance(protocol, Mapping) or not isinstance(protocol.get("version"), int):
            raise ValueError(f"manifest protocol {name!r} needs an integer 'version'")
        if not isinstance(protocol.get("views"), list):
            raise ValueError(f"manifest protocol {name!r} needs a 'views' list of labels")
    fingerprint = manifest["data"].get("fingerprint")
    if not isinstance(fingerprint, str) or not HEX64.match(fingerprint):
        raise ValueError("manifest data.fingerprint must be a sha256 hex string (64 digits)")
    clash = _STORE_KEYS & set(manifest)
    if clash:
        raise ValueError(f"manifest keys {sorted(clash)} are written by the store only")


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> None:
    """Deep-merge ``extra`` into ``base`` (mappings merge, everything else replaces)."""
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
            continue
        try:
            base[key] = json.loads(json.dumps(value, allow_nan=False))  # a private copy
        except (TypeError, ValueError) as exc:
            raise ValueError(f"manifest value of {key!r} is not plain JSON data: {exc}") from exc


def _release_pages(mm: np.memmap) -> None:
    """Drop a flushed memory map's pages from this process's resident memory.

    The rows are on disk (the map was just flushed) and the map is shared, so the kernel reads
    them back if they are touched again; without this, every row ever written stays resident and
    a 50,000-image run of several models and protocols holds hundreds of MB for nothing.
    """
    handle = getattr(mm, "_mmap", None)
    if handle is not None and hasattr(handle, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        handle.madvise(mmap.MADV_DONTNEED)


def _chunk_file_name(number: int) -> str:
    return f"{number:06d}.json"


def _prediction_path(run_dir: Path, model: str, protocol: str) -> Path:
    return run_dir / PREDICTIONS / model / f"{protocol}.npy"


# ----------------------------------------------------------------------------------------------
# Writing


class RunWriter:
    """Writes one run directory; hold one per process (the directory is locked while open).

    Use :meth:`create` for a new run and :meth:`resume` to continue an interrupted one. The writer
    is a context manager: leaving the ``with`` block on an exception saves the progress made so
    far (without ``finished_at``); :meth:`finish` must be called for a normal end.
    """

    def __init__(self, run_dir: Path, manifest: dict[str, Any], images: pd.DataFrame,
                 lock: Any, flush_interval_s: float, primary: bool = True) -> None:
        """Internal; use :meth:`create`, :meth:`resume` or :meth:`attach`."""
        self._run_dir = run_dir
        self._manifest = manifest
        self._images = images
        self._labels = images["label"].to_numpy()
        self._lock = lock
        self._primary = primary
        self._open = True
        self._flush_interval_s = flush_interval_s
        self._maps: dict[tuple[str, str], np.memmap] = {}
        self._dirty: set[tuple[str, str]] = set()
        self._last_save = time.monotonic()
        self._unreadable: dict[int, str] = {
            int(p): str(r) for p, r in (manifest.get("unreadable") or {}).get("images", {}).items()
        }

    # -- construction --------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        run_dir: str | os.PathLike[str],
        *,
        manifest: Mapping[str, Any],
        images: pd.DataFrame | Iterable[Mapping[str, Any]],
        prob_dtype: str = "float16",
        overwrite: bool = False,
        flush_interval_s: float = 0.0,
    ) -> "RunWriter":
        """Start a new run: write images.csv and the manifest, and lock the directory.

        Args:
            run_dir: directory to create (parents too). It must be absent or empty, unless
                ``overwrite`` is set and it holds an earlier inceval run and nothing else.
            manifest: the caller's part of the manifest (see the module docstring).
            images: one row per image in evaluation order with ``path`` (relative to the data
                root), ``label`` (class index) and ``blacklisted`` (bool); an ``index`` column, if
                given, must be 0..N-1; extra columns are stored after the four standard ones.
            prob_dtype: "float16" (default; 2 bytes per probability, about 3 significant digits)
                or "float32".
            overwrite: replace an earlier run in ``run_dir`` (only the store's own files are
                removed; a directory with anything else in it is refused).
            flush_interval_s: least seconds between progress records; 0 records after every
                write. A crash loses at most this much work.

        Raises:
            InceValError: directory not empty, in use, or not writable.
            ValueError: malformed ``manifest`` or ``images``.
        """
        if prob_dtype not in PROB_DTYPES:
            raise ValueError(f"prob_dtype must be one of {PROB_DTYPES}, got {prob_dtype!r}")
        _validate_manifest(manifest)
        frame = _images_frame(images)
        path = Path(run_dir)
        _prepare_empty_dir(path, overwrite)
        lock = _acquire_lock(path)
        try:
            csv_bytes = _images_csv_bytes(frame)
            full: dict[str, Any] = {"format": FORMAT, "schema_version": SCHEMA_VERSION}
            _merge(full, manifest)
            full.setdefault("started_at", _now())
            full.update(
                prob_dtype=prob_dtype,
                num_images=len(frame),
                images_sha256=images_identity_sha256(frame),
                predictions={},
                finished_at=None,
            )
            _write_atomic(path / IMAGES, csv_bytes)
            writer = cls(path, full, frame, lock, flush_interval_s)
            writer._save_manifest()
        except BaseException:
            _release_lock(lock)
            raise
        return writer

    @classmethod
    def resume(
        cls,
        run_dir: str | os.PathLike[str],
        *,
        manifest: Mapping[str, Any] | None = None,
        flush_interval_s: float = 0.0,
    ) -> "RunWriter":
        """Reopen an existing run to add rows, prediction files, models or protocols.

        Args:
            run_dir: an existing run directory written with this schema version.
            manifest: the new invocation's manifest part. It must agree with the stored one on the
                image fingerprint, the version of every protocol both name, and the weights
                (``weights``, ``weights_tag``, ``weights_file``, ``weights_sha256``) of every
                model both name; new
                models and protocols are added, other keys updated.
            flush_interval_s: as for :meth:`create`.

        Raises:
            InceValError: not a run, other schema version, directory in use, or a disagreement
                with ``manifest`` (the message names the key).
        """
        path = Path(run_dir)
        # Validates format, schema and images.csv; the unreadable-image records may disagree
        # after a crash between their two writes: both are rewritten from the chunk markers below.
        reader = RunReader(path, _records_may_lag=True)
        stored = json.loads(json.dumps(reader.manifest))
        if manifest is not None:
            _validate_manifest(manifest)
            _check_resumable(path, stored, manifest)
            _merge(stored, manifest)
        stored["finished_at"] = None
        lock = _acquire_lock(path)
        try:
            writer = cls(path, stored, reader.images, lock, flush_interval_s)
            if CHUNKS in stored:
                writer._record_chunk_progress(rewrite_unreadable=True)
            writer._save_manifest()
        except BaseException:
            _release_lock(lock)
            raise
        return writer

    @classmethod
    def attach(cls, run_dir: str | os.PathLike[str]) -> "RunWriter":
        """Join a run another process created and holds (a rank > 0 of a sharded run).

        The attached writer writes rows and chunk markers only: never the manifest or images.csv,
        and it takes no lock. Its prediction files must exist (the primary opens every file
        before the other ranks attach).

        Raises:
            InceValError: not a run, or a damaged prediction file.
        """
        path = Path(run_dir)
        reader = RunReader(path)
        writer = cls(path, json.loads(json.dumps(reader.manifest)), reader.images, None, 0.0,
                     primary=False)
        for model, protocol in reader.entries():
            writer.open_predictions(model, protocol,
                                    int(reader.manifest["predictions"][model][protocol]
                                        ["num_classes"]))
        return writer

    # -- properties ----------------------------------------------------------------------------

    @property
    def run_dir(self) -> Path:
        """The run directory."""
        return self._run_dir

    @property
    def manifest(self) -> dict[str, Any]:
        """A copy of the manifest as it will be written."""
        return json.loads(json.dumps(self._manifest))

    @property
    def num_images(self) -> int:
        """Rows of every prediction file (images in images.csv)."""
        return int(self._manifest["num_images"])

    def rows_written(self, model: str, protocol: str) -> int:
        """Rows 0..rows_written-1 of this file are written (0 for a file not opened yet)."""
        entry = self._manifest["predictions"].get(model, {}).get(protocol)
        return int(entry["rows_written"]) if entry else 0

    def is_complete(self, model: str, protocol: str) -> bool:
        """Whether :meth:`mark_complete` was called for this file."""
        entry = self._manifest["predictions"].get(model, {}).get(protocol)
        return bool(entry and entry["complete"])

    # -- prediction files ----------------------------------------------------------------------

    def open_predictions(self, model: str, protocol: str, num_classes: int = 1000) -> None:
        """Create ``predictions/<model>/<protocol>.npy`` (or reopen it when resuming).

        The file is allocated in full at once so that a full disk fails here, loudly, and not in
        the middle of the run.

        Raises:
            ValueError: model or protocol not in the manifest, a label >= ``num_classes``, or a
                reopened file whose shape or dtype differs.
            InceValError: the file cannot be created or is damaged.
        """
        self._require_open()
        if model not in self._manifest["models"]:
            raise ValueError(f"model {model!r} is not in the manifest's models")
        if protocol not in self._manifest["protocols"]:
            raise ValueError(f"protocol {protocol!r} is not in the manifest's protocols")
        if len(self._labels) and int(self._labels.max()) >= num_classes:
            raise ValueError(f"labels go up to {int(self._labels.max())} but num_classes is "
                             f"{num_classes}")
        key = (model, protocol)
        if key in self._maps:
            return
        path = _prediction_path(self._run_dir, model, protocol)
        dtype = np.dtype(self._manifest["prob_dtype"])
        shape = (self.num_images, num_classes)
        entry = self._manifest["predictions"].get(model, {}).get(protocol)
        if entry is None:
            self._maps[key] = _allocate(path, shape, dtype)
            self._manifest["predictions"].setdefault(model, {})[protocol] = {
                "file": path.relative_to(self._run_dir).as_posix(),
                "protocol_version": self._manifest["protocols"][protocol]["version"],
                "num_rows": shape[0],
                "num_classes": num_classes,
                "rows_written": 0,
                "complete": False,
            }
            self._save_manifest()
            return
        if entry["num_classes"] != num_classes:
            raise ValueError(f"{path} holds {entry['num_classes']} classes, not {num_classes}")
        if entry["protocol_version"] != self._manifest["protocols"][protocol]["version"]:
            raise ValueError(f"{path} was written with another version of protocol {protocol}")
        try:
            mm = open_memmap(path, mode="r+")
        except (OSError, ValueError) as exc:
            raise InceValError(f"cannot reopen {path}: {exc}; delete the run and start "
                               "again") from exc
        if mm.shape != shape or mm.dtype != dtype:
            raise InceValError(f"{path} has shape {mm.shape} {mm.dtype}, the manifest says "
                               f"{shape} {dtype}; delete the run and start again")
        self._maps[key] = mm

    def write(self, model: str, protocol: str, start_row: int, probs: Any) -> None:
        """Store rows ``start_row .. start_row + B - 1`` of one prediction file.

        Args:
            model: a model name opened with :meth:`open_predictions`.
            protocol: a protocol name opened with it.
            start_row: first row (image index); at most :meth:`rows_written` (no gaps).
            probs: (B, C) mean softmax probabilities (numpy or torch, any float dtype); each row
                must be finite, non-negative and sum to 1 within 0.01.

        Raises:
            ValueError: file not opened or already complete, wrong shape, a gap, rows that are
                not probabilities.
            InceValError: non-finite values (nothing is written for the batch), or a failed
                write of the progress record.
        """
        entry, array = self._writable(model, protocol, probs)
        key = (model, protocol)
        rows = array.shape[0] if array.ndim == 2 else -1
        if array.ndim != 2 or array.shape[1] != entry["num_classes"]:
            raise ValueError(f"probs must have shape (B, {entry['num_classes']}), got "
                             f"{array.shape}")
        if not 0 <= start_row <= entry["rows_written"]:
            raise ValueError(f"start_row {start_row} would leave a gap after row "
                             f"{entry['rows_written']} of {model}/{protocol}")
        if start_row + rows > entry["num_rows"]:
            raise ValueError(f"rows {start_row}..{start_row + rows - 1} exceed the "
                             f"{entry['num_rows']} images of the run")
        _check_probabilities(array, model, protocol, start_row)
        self._maps[key][start_row:start_row + rows] = array
        entry["rows_written"] = max(entry["rows_written"], start_row + rows)
        self._dirty.add(key)
        if time.monotonic() - self._last_save >= self._flush_interval_s:
            self._save_progress()

    def mark_complete(self, model: str, protocol: str) -> None:
        """Record that every row of this file is written; it is read-only from now on.

        Raises:
            ValueError: rows are missing.
        """
        self._require_open()
        entry = self._manifest["predictions"].get(model, {}).get(protocol)
        if entry is None or (model, protocol) not in self._maps:
            raise ValueError(f"open_predictions({model!r}, {protocol!r}) was not called")
        if entry["rows_written"] != entry["num_rows"]:
            raise ValueError(f"{model}/{protocol}: {entry['rows_written']} of "
                             f"{entry['num_rows']} rows written; cannot mark complete")
        entry["complete"] = True
        self._dirty.add((model, protocol))
        self._save_progress()

    # -- chunks: the engine's unit of resuming and sharding -------------------------------------

    def write_rows(self, model: str, protocol: str, indices: Any, probs: Any) -> None:
        """Store the rows of the images ``indices`` (any positions) of one prediction file.

        Used with chunk markers (:meth:`complete_chunk`), which say what is done; ``rows_written``
        is then derived from the markers, not from the writes.

        Raises:
            ValueError: file not opened or complete, shapes that disagree, positions out of range.
            InceValError: non-finite probabilities (nothing is written for the batch).
        """
        entry, array = self._writable(model, protocol, probs)
        key = (model, protocol)
        rows = np.asarray(indices, dtype=np.int64).reshape(-1)
        if array.ndim != 2 or array.shape != (rows.size, entry["num_classes"]):
            raise ValueError(f"probs must have shape ({rows.size}, {entry['num_classes']}), got "
                             f"{array.shape}")
        if rows.size == 0:
            return
        if rows.min() < 0 or rows.max() >= entry["num_rows"]:
            raise ValueError(f"rows {rows.min()}..{rows.max()} exceed the {entry['num_rows']} "
                             "images of the run")
        _check_probabilities(array, model, protocol, int(rows[0]))
        first = int(rows[0])
        if np.array_equal(rows, np.arange(first, first + rows.size)):
            self._maps[key][first:first + rows.size] = array
        else:
            self._maps[key][rows] = array
        self._dirty.add(key)

    def update_manifest(self, extra: Mapping[str, Any]) -> None:
        """Merge caller keys into the manifest now (e.g. the history of resumes).

        Raises:
            ValueError: a key the store owns.
        """
        self._require_open()
        clash = _STORE_KEYS & set(extra)
        if clash:
            raise ValueError(f"manifest keys {sorted(clash)} are written by the store only")
        _merge(self._manifest, extra)
        if self._primary:
            self._save_manifest()

    def use_chunks(self, size: int, count: int) -> None:
        """Record how the run is split into chunks (before any chunk is done), or check it.

        Raises:
            InceValError: chunks of another size are already done (a resumed run must keep its
                chunks, so that its rows come out identical).
        """
        self._require_open()
        stored = self._manifest.get(CHUNKS)
        if stored == {"size": size, "count": count}:
            return
        if stored is not None and self.done_chunks():
            raise InceValError(f"{self._run_dir} was run in chunks of {stored['size']} images; "
                               f"resume it with --chunk-size {stored['size']}")
        self._manifest[CHUNKS] = {"size": size, "count": count}
        if self._primary:
            self._save_manifest()

    def done_chunks(self) -> dict[int, dict[str, Any]]:
        """Chunk number -> marker of every chunk whose rows are all on disk (any process's)."""
        directory = self._run_dir / CHUNKS
        markers: dict[int, dict[str, Any]] = {}
        if not directory.is_dir():
            return markers
        for path in sorted(directory.glob("*.json")):
            try:
                record = json.loads(path.read_text())
            except (OSError, UnicodeDecodeError, ValueError):
                continue  # markers are renamed into place whole; anything else is redone
            if (isinstance(record, dict) and isinstance(record.get("chunk"), int)
                    and isinstance(record.get("start"), int)
                    and isinstance(record.get("stop"), int)
                    and isinstance(record.get("errors"), dict)
                    and path.name == _chunk_file_name(record["chunk"])):
                markers[record["chunk"]] = record
        return markers

    def complete_chunk(self, number: int, start: int, stop: int,
                       errors: Mapping[int, str] | None = None) -> None:
        """Record that every row of images ``start .. stop - 1`` is written.

        Rows of the images in ``errors`` (position -> reason) are set to NaN in every prediction
        file; all rows are flushed to disk; then the chunk's marker is written atomically, so a
        marker never claims rows that are not on disk and a chunk cut short is never done.

        Raises:
            ValueError: an error position outside the chunk.
            InceValError: the marker cannot be written.
        """
        self._require_open()
        errors = dict(errors or {})
        bad = sorted(errors)
        if bad and (bad[0] < start or bad[-1] >= stop):
            raise ValueError(f"error positions {bad[0]}..{bad[-1]} lie outside chunk {number} "
                             f"({start}..{stop - 1})")
        if bad:
            for key, mm in self._maps.items():
                mm[bad] = np.nan
                self._dirty.add(key)
        self._flush_rows()
        for mm in self._maps.values():
            _release_pages(mm)
        record = {"chunk": number, "start": start, "stop": stop,
                  "errors": {str(p): str(errors[p]) for p in bad}}
        directory = self._run_dir / CHUNKS
        try:
            directory.mkdir(exist_ok=True)
        except OSError as exc:
            raise InceValError(f"cannot create {directory}: {exc.strerror or exc}") from exc
        _write_atomic(directory / _chunk_file_name(number), _manifest_bytes(record))
        if self._primary and time.monotonic() - self._last_save >= self._flush_interval_s:
            self._save_progress()

    def seal(self) -> dict[int, str]:
        """Check that every chunk is done, record the unreadable images and mark every prediction
        file complete (the primary writer, after all processes finished their chunks).

        Unreadable images get their reason in images.csv (column ``error``) and in the manifest
        (``unreadable``); their rows hold NaN.

        Returns:
            Position -> reason of every unreadable image.

        Raises:
            ValueError: not the primary writer, or a run without chunks.
            InceValError: a chunk is not done (the message names it).
        """
        self._require_open()
        if not self._primary or CHUNKS not in self._manifest:
            raise ValueError("seal() needs the primary writer of a chunked run")
        markers = self.done_chunks()
        count = int(self._manifest[CHUNKS]["count"])
        missing = [n for n in range(count) if n not in markers]
        if missing:
            raise InceValError(f"{self._run_dir}: chunk {missing[0]} of {count} is not done "
                               f"({len(missing)} missing); compute them with "
                               f"{resume_command(self._manifest)}")
        self._record_chunk_progress(markers)
        for files in self._manifest["predictions"].values():
            for entry in files.values():
                entry["rows_written"] = entry["num_rows"]
                entry["complete"] = True
        self._save_progress()
        return dict(self._unreadable)

    def _record_chunk_progress(self, markers: Mapping[int, Mapping[str, Any]] | None = None,
                               *, rewrite_unreadable: bool = False) -> None:
        """rows_written from the done chunks (the done prefix), and the unreadable images
        (images.csv and the manifest rewritten when they changed, or always with
        ``rewrite_unreadable``)."""
        markers = markers if markers is not None else self.done_chunks()
        size = int(self._manifest[CHUNKS]["size"])
        count = int(self._manifest[CHUNKS]["count"])
        prefix = 0
        while prefix < count and prefix in markers:
            prefix += 1
        rows = min(prefix * size, self.num_images)
        for files in self._manifest["predictions"].values():
            for entry in files.values():
                if not entry["complete"]:
                    entry["rows_written"] = rows
        errors = {int(p): str(reason) for record in markers.values()
                  for p, reason in record["errors"].items()}
        if rewrite_unreadable or errors != self._unreadable or "unreadable" not in self._manifest:
            self._write_unreadable(errors)

    def _write_unreadable(self, errors: Mapping[int, str]) -> None:
        frame = self._images.copy()
        reasons = np.full(len(frame), "", dtype=object)
        for position, reason in errors.items():
            reasons[position] = reason
        frame[ERROR_COLUMN] = reasons
        _write_atomic(self._run_dir / IMAGES, _images_csv_bytes(frame))
        self._images = frame
        self._unreadable = dict(errors)
        self._manifest["unreadable"] = {
            "count": len(errors),
            "images": {str(p): errors[p] for p in sorted(errors)},
        }

    def finish(self, extra_manifest: Mapping[str, Any] | None = None) -> None:
        """Flush everything, merge ``extra_manifest`` (e.g. end time, throughput), set
        ``finished_at`` and release the directory.

        Incomplete prediction files stay marked incomplete.

        Raises:
            ValueError: ``extra_manifest`` sets a key the store owns.
        """
        self._require_open()
        if extra_manifest:
            clash = _STORE_KEYS & set(extra_manifest)
            if clash:
                raise ValueError(f"manifest keys {sorted(clash)} are written by the store only")
            _merge(self._manifest, extra_manifest)
        self._manifest["finished_at"] = _now()
        self._save_progress()
        self.close()

    def close(self) -> None:
        """Save progress and release the directory without marking the run finished."""
        if not self._open:
            return
        try:
            self._save_progress()
        finally:
            self._open = False
            self._maps.clear()
            if self._lock is not None:
                _release_lock(self._lock)
                self._lock = None

    def __enter__(self) -> "RunWriter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------------

    def _writable(self, model: str, protocol: str, probs: Any) -> tuple[dict[str, Any], np.ndarray]:
        """The manifest entry of an open, unfinished prediction file, and ``probs`` as numpy."""
        self._require_open()
        if (model, protocol) not in self._maps:
            raise ValueError(f"open_predictions({model!r}, {protocol!r}) was not called")
        entry = self._manifest["predictions"][model][protocol]
        if entry["complete"]:
            raise ValueError(f"predictions {model}/{protocol} are complete; nothing may change")
        if hasattr(probs, "detach"):  # torch: any device, any float type (bfloat16 included)
            return entry, probs.detach().float().cpu().numpy()
        return entry, np.asarray(probs)

    def _require_open(self) -> None:
        if not self._open:
            raise ValueError(f"the writer of {self._run_dir} is closed")

    def _save_progress(self) -> None:
        self._flush_rows()
        if not self._primary:
            return
        if CHUNKS in self._manifest:
            self._record_chunk_progress()
        self._save_manifest()

    def _flush_rows(self) -> None:
        for key in sorted(self._dirty):
            mm = self._maps.get(key)
            if mm is not None:
                try:
                    mm.flush()  # data first: the manifest must never claim unwritten rows
                except OSError as exc:
                    raise InceValError(f"cannot write {_prediction_path(self._run_dir, *key)}: "
                                       f"{exc.strerror or exc}") from exc
        self._dirty.clear()

    def _save_manifest(self) -> None:
        _write_atomic(self._run_dir / MANIFEST, _manifest_bytes(self._manifest))
        self._last_save = time.monotonic()


def _check_probabilities(array: np.ndarray, model: str, protocol: str, start: int) -> None:
    last = start + array.shape[0] - 1
    if not np.isfinite(array).all():
        raise InceValError(f"model {model} gave NaN or infinite probabilities for images "
                           f"{start}..{last} under protocol {protocol}; nothing was stored for "
                           "them; evaluate in float32 or check the weights")
    sums = array.sum(axis=1, dtype=np.float64)
    if array.size and (array.min() < 0 or np.abs(sums - 1).max() > _ROW_SUM_TOLERANCE):
        raise ValueError(f"{model}/{protocol} rows {start}..{last} are not probabilities (row "
                         f"sums {sums.min():.4g}..{sums.max():.4g}, min {array.min():.4g}); "
                         "store softmax outputs averaged over views")


def _allocate(path: Path, shape: tuple[int, int], dtype: np.dtype) -> np.memmap:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        mm = open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        if hasattr(os, "posix_fallocate"):
            # A sparse file would fail only when a page is flushed (SIGBUS on a full disk).
            with open(path, "r+b") as handle:
                os.posix_fallocate(handle.fileno(), 0, os.path.getsize(path))
    except OSError as exc:
        raise InceValError(f"cannot create {path}: {exc.strerror or exc}; free space or fix "
                           "permissions") from exc
    return mm


def _check_resumable(path: Path, stored: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    where = f"cannot resume {path}"
    if stored["data"].get("fingerprint") != new["data"].get("fingerprint"):
        raise InceValError(f"{where}: it was run on another image list (data.fingerprint "
                           "differs); use a new run directory")
    for name, protocol in new["protocols"].items():
        old = stored["protocols"].get(name)
        if old is not None and old.get("version") != protocol.get("version"):
            raise InceValError(f"{where}: protocol {name} was version {old.get('version')}, now "
                               f"{protocol.get('version')}; use a new run directory")
    for name, model in new["models"].items():
        old = stored["models"].get(name)
        if old is None:
            continue
        for key in ("weights", "weights_tag", "weights_file", "weights_sha256"):
            if old.get(key) != model.get(key):
                raise InceValError(f"{where}: model {name} was run with {key} {old.get(key)!r}, "
                                   f"now {model.get(key)!r}; use a new run directory")


def _prepare_empty_dir(path: Path, overwrite: bool) -> None:
    if path.exists() and not path.is_dir():
        raise InceValError(f"{path} exists and is not a directory; choose another run directory")
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            raise InceValError(f"run directory {path} is not empty; choose a new one or allow "
                               "overwriting the run in it (--overwrite)")
        if not (path / MANIFEST).is_file():
            raise InceValError(f"cannot overwrite {path}: it is not an inceval run; choose a new "
                               "directory")
        owned = {MANIFEST, IMAGES, PREDICTIONS, CHUNKS, LOCK, f".{MANIFEST}.tmp",
                 f".{IMAGES}.tmp"}
        others = sorted(p.name for p in path.iterdir() if p.name not in owned)
        if others:
            raise InceValError(f"cannot overwrite {path}: it also holds {others[0]!r}, which is "
                               "not part of an inceval run; choose a new directory")
        lock = _acquire_lock(path)  # never delete a run another process is writing
        try:
            for directory in (PREDICTIONS, CHUNKS):
                if (path / directory).exists():
                    shutil.rmtree(path / directory)
            for name in (MANIFEST, IMAGES):
                (path / name).unlink(missing_ok=True)
        except OSError as exc:
            raise InceValError(f"cannot clear {path}: {exc.strerror or exc}") from exc
        finally:
            _release_lock(lock)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InceValError(f"cannot create run directory {path}: {exc.strerror or exc}") from exc


def _acquire_lock(path: Path) -> Any:
    try:
        handle = open(path / LOCK, "a+b")
    except OSError as exc:
        raise InceValError(f"cannot write in {path}: {exc.strerror or exc}") from exc
    if fcntl is not None:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise InceValError(f"another inceval process is writing to {path}; wait for it or "
                               "choose another run directory") from None
    return handle


def _release_lock(handle: Any) -> None:
    if fcntl is not None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    handle.close()


# ----------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class EntryStatus:
    """State of one prediction file, as recorded in the manifest.

    Attributes:
        model: model (or ensemble) name.
        protocol: protocol name.
        protocol_version: version of the protocol the file was computed with.
        path: the .npy file.
        num_rows: images in the run.
        num_classes: columns.
        rows_written: rows 0..rows_written-1 hold predictions.
        complete: every row is written and the file is final.
    """

    model: str
    protocol: str
    protocol_version: int
    path: Path
    num_rows: int
    num_classes: int
    rows_written: int
    complete: bool


class RunReader:
    """Read access to a run directory (works while a writer is still running).

    Images that could not be read (images.csv ``error`` column, manifest ``unreadable``) have NaN
    rows in every prediction file; :meth:`score` and :meth:`results` leave them out and count them
    (:attr:`inceval.scoring.Score.unreadable`).

    Raises:
        InceValError: ``run_dir`` is not an inceval run, has another schema version, or its
            images.csv no longer matches the manifest.
    """

    def __init__(self, run_dir: str | os.PathLike[str], *, _records_may_lag: bool = False) -> None:
        self._run_dir = Path(run_dir)
        self._records_may_lag = _records_may_lag  # RunWriter.resume only: it rewrites them
        self._manifest = _load_manifest(self._run_dir)
        self._images: pd.DataFrame | None = None
        self._errors: pd.Series | None = None
        self._unreadable: np.ndarray | None = None

    @property
    def run_dir(self) -> Path:
        """The run directory."""
        return self._run_dir

    @property
    def manifest(self) -> dict[str, Any]:
        """The manifest as loaded (treat as read-only)."""
        return self._manifest

    @property
    def num_images(self) -> int:
        """Images in the run (rows of every prediction file)."""
        return int(self._manifest["num_images"])

    @property
    def fingerprint(self) -> str:
        """sha256 of the dataset's file list, as given by the dataset (``data.fingerprint``)."""
        return str(self._manifest["data"]["fingerprint"])

    def _read_images(self) -> tuple[pd.DataFrame, pd.Series]:
        """images.csv, checked, split into the image table and the ``error`` column (read once)."""
        if self._images is None or self._errors is None:
            frame = _load_images(self._run_dir, self._manifest,
                                 check_unreadable=not self._records_may_lag)
            if ERROR_COLUMN in frame.columns:
                self._errors = frame.pop(ERROR_COLUMN).astype(str)
            else:
                self._errors = pd.Series([""] * len(frame), index=frame.index, dtype=str)
            self._images = frame
        return self._images, self._errors

    @property
    def images(self) -> pd.DataFrame:
        """images.csv: index, path, label, blacklisted (bool), plus any extra columns; the
        ``error`` column is :attr:`errors`."""
        return self._read_images()[0]

    @property
    def errors(self) -> pd.Series:
        """(N,) str: why each image could not be read, "" for good ones (all "" in runs from
        before unreadable images were recorded: images.csv column ``error``)."""
        return self._read_images()[1].copy()

    @property
    def unreadable(self) -> np.ndarray:
        """(N,) bool: True for images that could not be read (NaN rows, never scored)."""
        if self._unreadable is None:
            self._unreadable = (self.errors != "").to_numpy(dtype=bool)
        return self._unreadable.copy()

    @property
    def num_unreadable(self) -> int:
        """How many images could not be read."""
        return int(self.unreadable.sum())

    @property
    def labels(self) -> np.ndarray:
        """(N,) int64 class indices."""
        return self.images["label"].to_numpy()

    @property
    def blacklisted(self) -> np.ndarray:
        """(N,) bool; True for images on the ILSVRC2014 blacklist (as given to the run)."""
        return self.images["blacklisted"].to_numpy()

    @property
    def dataset(self) -> str:
        """The evaluation set (``data.dataset``; runs from before it was recorded: imagenet)."""
        return str(self._manifest["data"].get("dataset") or "imagenet")

    @property
    def scored_classes(self) -> np.ndarray | None:
        """Sorted class indices predictions are restricted to before top-k (ImageNet-A/R), or None.

        Raises:
            InceValError: the manifest's list is not sorted distinct indices within the classes.
        """
        classes = self._manifest["data"].get("scored_classes")
        if classes is None:
            return None
        array = np.asarray(classes)
        if (array.ndim != 1 or array.size == 0 or array.dtype.kind not in "iu"
                or (np.diff(array) <= 0).any() or array[0] < 0):
            raise InceValError(f"{self._run_dir / MANIFEST}: data.scored_classes must be sorted, "
                               "distinct class indices; the run is damaged")
        return array.astype(np.int64)

    def entries(self) -> list[tuple[str, str]]:
        """(model, protocol) of every prediction file, in the order they were opened."""
        return [(m, p) for m, files in self._manifest["predictions"].items() for p in files]

    def views_per_image(self, protocol: str) -> int:
        """Views per image of a stored protocol (``num_views``, else its view labels; 0 unknown)."""
        record = self._manifest["protocols"].get(protocol, {})
        return int(record.get("num_views") or len(record.get("views") or []) or 0)

    def status(self, model: str, protocol: str) -> EntryStatus:
        """The recorded state of one prediction file.

        Raises:
            InceValError: the run has no such file (the message lists what it has).
        """
        entry = self._manifest["predictions"].get(model, {}).get(protocol)
        if entry is None:
            have = ", ".join(f"{m}/{p}" for m, p in self.entries()) or "none"
            raise InceValError(f"run {self._run_dir} has no predictions for model {model} under "
                               f"protocol {protocol} (it has: {have})")
        return EntryStatus(model, protocol, int(entry["protocol_version"]),
                           self._run_dir / entry["file"], int(entry["num_rows"]),
                           int(entry["num_classes"]), int(entry["rows_written"]),
                           bool(entry["complete"]))

    def probabilities(self, model: str, protocol: str, *,
                      allow_incomplete: bool = False) -> np.ndarray:
        """The stored (N, C) probabilities as a read-only memory map (dtype ``prob_dtype``).

        Args:
            model: model (or ensemble) name.
            protocol: protocol name.
            allow_incomplete: return the rows written so far of an unfinished file instead of
                refusing it.

        Raises:
            InceValError: no such file, an incomplete file (unless allowed), or a file whose shape
                or dtype disagrees with the manifest.
        """
        status = self.status(model, protocol)
        if not status.complete and not allow_incomplete:
            raise InceValError(f"{status.path} is incomplete ({status.rows_written} of "
                               f"{status.num_rows} rows written); finish it with "
                               f"{resume_command(self._manifest)}, or allow incomplete results")
        try:
            with open(status.path, "rb") as handle:
                magic = handle.read(6)
            if len(magic) == 6 and magic != b"\x93NUMPY":
                raise InceValError(f"{status.path} is not a .npy file; the run directory is "
                                   "damaged: restore it from a copy or rerun")
            mm = np.load(status.path, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            raise InceValError(f"{status.path} is missing; the run directory is damaged: restore "
                               "it from a copy or rerun") from None
        except (OSError, ValueError, EOFError) as exc:
            # numpy raises EOFError for an empty file and ValueError for a truncated one.
            raise InceValError(f"cannot read {status.path} ({exc or 'empty file'}); the run "
                               "directory is damaged: restore it from a copy or rerun") from None
        expected = (status.num_rows, status.num_classes)
        if mm.shape != expected or mm.dtype != np.dtype(self._manifest["prob_dtype"]):
            raise InceValError(f"{status.path} has shape {mm.shape} {mm.dtype} but the manifest "
                               f"says {expected} {self._manifest['prob_dtype']}; the run is "
                               "damaged")
        return mm if status.complete else mm[: status.rows_written]

    def iter_chunks(self, model: str, protocol: str, *, chunk_rows: int = _SCORE_CHUNK_ROWS,
                    allow_incomplete: bool = False) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (start_row, float32 block of rows) over a prediction file, ``chunk_rows`` at a
        time, so callers never hold the whole matrix.

        Rows of unreadable images (:attr:`unreadable`) are included and hold NaN; callers leave
        them out.

        Raises:
            InceValError: as :meth:`probabilities`, or a non-finite row of an image images.csv
                marks readable (a damaged run).
        """
        probs = self.probabilities(model, protocol, allow_incomplete=allow_incomplete)
        where = self.status(model, protocol).path
        unreadable = self.unreadable
        for start in range(0, probs.shape[0], chunk_rows):
            block = np.asarray(probs[start:start + chunk_rows], dtype=np.float32)
            check_rows_finite(block, start, unreadable, where)
            yield start, block

    def score(self, model: str, protocol: str, *, allow_incomplete: bool = False,
              unreadable: np.ndarray | None = None) -> tuple[Score, Score]:
        """Top-1/top-5 errors of one file on all images and on the non-blacklisted ones.

        Unreadable images are left out of both and counted in ``Score.unreadable``. With
        ``allow_incomplete``, only the rows written so far are scored (``complete`` False).
        The tie rule is :data:`inceval.engine.metrics.TIE_RULE`.

        Args:
            model: model (or ensemble) name.
            protocol: protocol name.
            allow_incomplete: score the rows written so far of an unfinished file.
            unreadable: (N,) bool, images to leave out as well as the run's own unreadable ones
                (e.g. those another run could not read, to score two runs on the same images).

        Raises:
            InceValError: as :meth:`iter_chunks`, or when no row is written yet or every
                written row is of an unreadable image.
        """
        status = self.status(model, protocol)
        left_out = self.unreadable
        if unreadable is not None:
            left_out |= np.asarray(unreadable, dtype=bool)
        chunks = self.iter_chunks(model, protocol, allow_incomplete=allow_incomplete)
        labels = self.labels
        classes = self.scored_classes
        if classes is not None:
            chunks, labels = restrict_to_classes(chunks, labels, classes, self._run_dir)
        tallies = tally_subsets(chunks, labels, self.blacklisted, left_out)
        rows = status.rows_written
        counts = unreadable_counts(left_out[:rows], self.blacklisted[:rows])
        if tallies["all"].images == 0:
            if rows:
                raise InceValError(f"{status.path}: all {rows} image(s) it covers are unreadable "
                                   f"({IMAGES}, column {ERROR_COLUMN}); nothing to score")
            raise InceValError(f"{status.path} has no rows written yet; nothing to score")
        return tuple(  # type: ignore[return-value]
            score_from_tally(status, subset, tallies[subset], counts[subset])
            for subset in SUBSETS
        )

    def results(self, *, allow_incomplete: bool = False) -> list[Score]:
        """:meth:`score` of every entry: two Scores (all, non-blacklisted) per (model, protocol).

        A subset with no images (e.g. every image blacklisted) is left out.
        """
        scores: list[Score] = []
        for model, protocol in self.entries():
            for item in self.score(model, protocol, allow_incomplete=allow_incomplete):
                if item.images:
                    scores.append(item)
        return scores


def _load_manifest(run_dir: Path) -> dict[str, Any]:
    path = run_dir / MANIFEST
    if not path.is_file():
        what = "does not exist" if not run_dir.exists() else "has no manifest.json"
        raise InceValError(f"{run_dir} {what}; give a run directory written by inceval")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InceValError(f"cannot read {path}: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InceValError(f"{path} is not an inceval run manifest (format is not {FORMAT!r})")
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        advice = ("upgrade inceval" if isinstance(version, int) and version > SCHEMA_VERSION
                  else "rerun it with this version")
        raise InceValError(f"{path} has store schema version {version}; this inceval reads "
                           f"version {SCHEMA_VERSION} only; {advice}")
    check_manifest(manifest, path)
    return manifest


def _load_images(run_dir: Path, manifest: Mapping[str, Any], *,
                 check_unreadable: bool = True) -> pd.DataFrame:
    path = run_dir / IMAGES
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InceValError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if hashlib.sha256(_identity_bytes(data, path)).hexdigest() != manifest["images_sha256"]:
        raise InceValError(f"{path} was changed after the run (sha256 differs from the "
                           "manifest); restore it or rerun")
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype={"path": str, ERROR_COLUMN: str},
                            keep_default_na=False)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InceValError(f"{path} is not a readable CSV ({exc}); the run directory is damaged: "
                           "restore it from a copy or rerun") from None
    _check_images(frame, path, int(manifest["num_images"]))
    if check_unreadable:
        _check_unreadable(frame, path, manifest)
    frame["blacklisted"] = frame["blacklisted"].astype(bool)
    return frame


def _identity_bytes(data: bytes, path: Path) -> bytes:
    """images.csv's bytes without a last ``error`` column, rendered as the writer renders them
    (what :func:`images_identity_sha256` hashes); the bytes as they are without one.

    Removing the column from the CSV records (Python's csv rules, which pandas writes with) keeps
    every other cell exactly as written, whatever its type.
    """
    header = data.split(b"\n", 1)[0]
    if not header.endswith(b"," + ERROR_COLUMN.encode()):
        return data
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    try:
        for record in csv.reader(io.StringIO(data.decode("utf-8"), newline="")):
            writer.writerow(record[:-1])
    except (csv.Error, UnicodeDecodeError) as exc:
        raise InceValError(f"{path} is not a readable CSV ({exc}); the run directory is damaged: "
                           "restore it from a copy or rerun") from None
    return out.getvalue().encode()


def _check_images(frame: pd.DataFrame, path: Path, num_images: int) -> None:
    """images.csv against the manifest: columns, one row per image in order, integer labels."""
    def damaged(what: str) -> InceValError:
        return InceValError(f"{path}: {what}; the run directory is damaged: restore it from a "
                            "copy or rerun")

    missing = [c for c in IMAGE_COLUMNS if c not in frame.columns]
    if missing:
        raise damaged(f"column '{missing[0]}' is missing")
    if len(frame) != num_images:
        raise damaged(f"{len(frame)} rows but the manifest says {num_images} images")
    for column in ("index", "label", "blacklisted"):
        if not pd.api.types.is_integer_dtype(frame[column]):
            raise damaged(f"column '{column}' holds values that are not integers")
    if not np.array_equal(frame["index"].to_numpy(), np.arange(num_images)):
        raise damaged("column 'index' is not 0, 1, 2, ... in order")
    if (frame["label"] < 0).any():
        raise damaged("column 'label' holds a negative class index")
    if not frame["blacklisted"].isin([0, 1]).all():
        raise damaged("column 'blacklisted' holds values other than 0 and 1")
    if ERROR_COLUMN in frame.columns and frame.columns[-1] != ERROR_COLUMN:
        raise damaged(f"column '{ERROR_COLUMN}' is not the last column")


def _check_unreadable(frame: pd.DataFrame, path: Path, manifest: Mapping[str, Any]) -> None:
    """images.csv's ``error`` column against the manifest's ``unreadable`` record: the same
    images with the same reasons (no column and no record: every image was read)."""
    def damaged(what: str) -> InceValError:
        if CHUNKS in manifest and not manifest.get("finished_at"):
            # Both records are derived from the chunk markers and written one after the other:
            # an interrupted run can stop between the two writes.
            return InceValError(f"{path}: {what}; the run stopped while recording them: continue "
                                f"it with {resume_command(manifest)}, which rewrites both from "
                                "its chunk markers")
        return InceValError(f"{path}: {what}; the run directory is damaged: restore it from a "
                            "copy or rerun")

    record = manifest.get("unreadable") or {}
    listed = {int(key): reason for key, reason in (record.get("images") or {}).items()}
    if ERROR_COLUMN not in frame.columns:
        if listed:
            raise damaged(f"it has no column '{ERROR_COLUMN}' but {MANIFEST} lists "
                          f"{len(listed)} unreadable image(s) (key 'unreadable')")
        return
    errors = frame[ERROR_COLUMN].astype(str).to_numpy()
    marked = {int(i): str(errors[i]) for i in np.flatnonzero(errors != "")}
    only_csv = sorted(set(marked) - set(listed))
    only_manifest = sorted(set(listed) - set(marked))
    if only_csv:
        raise damaged(f"column '{ERROR_COLUMN}' marks image {only_csv[0]} unreadable but "
                      f"{MANIFEST} does not list it (key 'unreadable.images'); "
                      f"{len(only_csv)} such image(s)")
    if only_manifest:
        raise damaged(f"{MANIFEST} lists image {only_manifest[0]} as unreadable (key "
                      f"'unreadable.images') but column '{ERROR_COLUMN}' does not mark it; "
                      f"{len(only_manifest)} such image(s)")
    differ = next((i for i in sorted(marked) if marked[i] != listed[i]), None)
    if differ is not None:
        raise damaged(f"column '{ERROR_COLUMN}' of image {differ} differs from {MANIFEST} key "
                      f"'unreadable.images.{differ}'")


def images_difference(a: RunReader, b: RunReader) -> str | None:
    """How two runs' images differ (fingerprint, count, labels, blacklist); None if alike.

    Which images could be read is not compared here: see :func:`scored_difference`.
    """
    if a.fingerprint != b.fingerprint:
        return "image lists differ (data.fingerprint)"
    if a.num_images != b.num_images:
        return f"image counts differ ({a.num_images} vs {b.num_images})"
    if not np.array_equal(a.labels, b.labels):
        return "labels differ"
    if not np.array_equal(a.blacklisted, b.blacklisted):
        return "blacklists differ"
    return None


def scored_difference(a: RunReader, b: RunReader) -> str | None:
    """How the images two runs of the same images could score differ (other images unreadable
    in each); None if they scored the same ones. Call when :func:`images_difference` is None."""
    only_a = a.unreadable & ~b.unreadable
    only_b = b.unreadable & ~a.unreadable
    if not (only_a.any() or only_b.any()):
        return None
    parts = [f"{int(mask.sum())} image(s) unreadable only in {run.run_dir}"
             f" (first: index {int(np.flatnonzero(mask)[0])})"
             for mask, run in ((only_a, a), (only_b, b)) if mask.any()]
    return "scored images differ: " + ", ".join(parts)


def unreadable_in_any(runs: Sequence[RunReader]) -> np.ndarray:
    """(N,) bool: images unreadable in at least one of ``runs`` (runs of the same images)."""
    mask = np.zeros(runs[0].num_images, dtype=bool)
    for run in runs:
        mask |= run.unreadable
    return mask


def require_same_images(runs: Sequence[RunReader], *,
                        allow_different_scored: bool = False) -> None:
    """Refuse runs that were not made on the same images with the same labels and blacklist,
    or (unless allowed) that could not read the same images.

    Raises:
        InceValError: naming the first run and the first one that differs, and how.
    """
    for other in runs[1:]:
        how = images_difference(runs[0], other)
        if how:
            raise InceValError(f"runs {runs[0].run_dir} and {other.run_dir} cannot be combined: "
                               f"{how}")
    if allow_different_scored:
        return
    for other in runs[1:]:
        how = scored_difference(runs[0], other)
        if how:
            raise InceValError(f"runs {runs[0].run_dir} and {other.run_dir} cannot be combined: "
                               f"{how}; pass --allow-different-images to use only the images "
                               "every run could read")


__all__ = [
    "ERROR_COLUMN", "EntryStatus", "FORMAT", "PROB_DTYPES", "RunReader", "RunWriter",
    "SCHEMA_VERSION", "Score", "SUBSETS", "TIE_RULE", "check_name", "images_difference",
    "images_identity_sha256", "require_same_images", "scored_difference", "unreadable_in_any",
]
