"""Labels from the ILSVRC2012 devkit: validation ground truth (devkit IDs) and meta.mat.

The devkit numbers classes by ILSVRC2012_ID (1..1000), which is NOT the standard order: an ID is
mapped to its WNID through meta.mat, then to the WNID's position in the sorted WNID list.
The devkit may be the extracted ``ILSVRC2012_devkit_t12`` folder or the ``.tar.gz`` itself, read
without extracting.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inceval.data.wnids import NUM_CLASSES, class_order, is_wnid
from inceval.errors import InceValError

GROUND_TRUTH = "data/ILSVRC2012_validation_ground_truth.txt"
META = "data/meta.mat"
DEVKIT_PREFIX = "ILSVRC2012_devkit_t12"
_TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar")


@dataclass(frozen=True)
class DevkitLabels:
    """The devkit's validation labels in standard class indices.

    Attributes:
        labels: class index of image number i at position i - 1.
        class_wnids: the 1000 WNIDs in standard (sorted) order.
        source: the devkit folder or archive, as given.
    """

    labels: tuple[int, ...]
    class_wnids: tuple[str, ...]
    source: Path


def find_devkits(root: Path) -> list[Path]:
    """Devkit folders or archives named ``ILSVRC2012_devkit_t12*`` inside or beside ``root``."""
    found: list[Path] = []
    for place in (root, root.parent):
        for candidate in sorted(place.glob(DEVKIT_PREFIX + "*")):
            archive = candidate.is_file() and candidate.name.endswith(_TAR_SUFFIXES)
            if candidate.is_dir() or archive:
                found.append(candidate)
    return found


def read_devkit(devkit: str | Path, name: str | None = None) -> DevkitLabels:
    """Read the validation ground truth and class mapping of a devkit folder or archive.

    Args:
        devkit: the ``ILSVRC2012_devkit_t12`` folder (holding ``data/``) or its ``.tar.gz``.
        name: how error messages name the devkit; ``--devkit <path>`` by default.

    Returns:
        Standard class indices for images 1..N, N being the ground truth's line count.

    Raises:
        InceValError: for a missing or unreadable devkit, a bad ground-truth line, an ID outside
            1..1000, or a meta.mat that does not define the 1000 classes; or when scipy is missing.
    """
    devkit = Path(devkit).expanduser()
    name = name or f"--devkit {devkit}"
    if not devkit.exists():
        raise InceValError(f"{name} does not exist; pass the {DEVKIT_PREFIX} folder or its .tar.gz")
    if devkit.is_dir():
        gt_bytes, meta_bytes = _read_from_folder(devkit, name)
    else:
        gt_bytes, meta_bytes = _read_from_tar(devkit, name)
    id_to_wnid = _read_meta(meta_bytes, name)
    wnids = class_order(id_to_wnid.values(), f"{name} {META}",
                        "use an unmodified ILSVRC2012 devkit")
    index_of = {wnid: i for i, wnid in enumerate(wnids)}
    ids = _read_ground_truth(gt_bytes, name)
    return DevkitLabels(tuple(index_of[id_to_wnid[i]] for i in ids), wnids, devkit)


def _read_from_folder(devkit: Path, name: str) -> tuple[bytes, bytes]:
    # Accept the devkit folder itself, or its data/ folder.
    base = devkit if (devkit / Path(GROUND_TRUTH).name).is_file() else devkit / "data"
    out = []
    for member in (GROUND_TRUTH, META):
        path = base / Path(member).name
        if not path.is_file():
            raise InceValError(f"{name} has no {member}; pass the {DEVKIT_PREFIX} "
                               "folder that holds data/ (or its .tar.gz)")
        out.append(path.read_bytes())
    return out[0], out[1]


def _read_from_tar(devkit: Path, name: str) -> tuple[bytes, bytes]:
    try:
        with tarfile.open(devkit, _tar_mode(devkit)) as tar:
            members = {m.name.lstrip("./"): m for m in tar.getmembers() if m.isfile()}
            out = []
            for wanted in (GROUND_TRUTH, META):
                hits = [m for path, m in members.items()
                        if path == wanted or path.endswith("/" + wanted)]
                if len(hits) != 1:
                    problem = "no" if not hits else f"{len(hits)} copies of"
                    raise InceValError(f"{name} holds {problem} {wanted}; pass "
                                       f"{DEVKIT_PREFIX}.tar.gz or the extracted folder")
                handle = tar.extractfile(hits[0])
                assert handle is not None  # a regular file member always has contents
                out.append(handle.read())
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InceValError(f"{name} is not a readable tar archive ({_first_line(exc)}); pass "
                           f"{DEVKIT_PREFIX}.tar.gz or the extracted folder") from None
    return out[0], out[1]


def _load_mat(data: bytes, name: str) -> dict:
    try:
        import scipy.io
    except ImportError:
        raise InceValError(f"reading {META} of {name} needs scipy: pip install "
                           "'inceval[devkit]' (or use --labels with a list file)") from None
    try:
        return scipy.io.loadmat(io.BytesIO(data), squeeze_me=True)
    except Exception as exc:  # scipy raises several unrelated types for a corrupt file
        raise InceValError(f"{name} {META} cannot be read ({type(exc).__name__}: "
                           f"{_first_line(exc)}); use an unmodified ILSVRC2012 devkit") from None


def _read_meta(data: bytes, name: str) -> dict[int, str]:
    """ILSVRC2012_ID -> WNID for the 1000 leaf classes (IDs 1..1000) of meta.mat's synsets."""
    where = f"{name} {META}"
    synsets = _load_mat(data, name).get("synsets")
    names = getattr(getattr(synsets, "dtype", None), "names", None) or ()
    if not {"ILSVRC2012_ID", "WNID", "num_children"} <= set(names):
        raise InceValError(f"{where} has no synsets struct with ILSVRC2012_ID, WNID and "
                           "num_children; use an unmodified ILSVRC2012 devkit")
    synsets = np.atleast_1d(synsets)
    id_to_wnid: dict[int, str] = {}
    for ilsvrc_id, wnid, children in zip(synsets["ILSVRC2012_ID"], synsets["WNID"],
                                         synsets["num_children"], strict=True):
        ilsvrc_id, wnid = int(np.asarray(ilsvrc_id).item()), str(np.asarray(wnid).item())
        if not 1 <= ilsvrc_id <= NUM_CLASSES:
            continue  # IDs above 1000 are the inner nodes of the hierarchy
        if int(np.asarray(children).item()) != 0:
            raise InceValError(f"{where}: ILSVRC2012_ID {ilsvrc_id} ({wnid}) is not a leaf class; "
                               "use an unmodified ILSVRC2012 devkit")
        if not is_wnid(wnid):
            raise InceValError(f"{where}: ILSVRC2012_ID {ilsvrc_id} has WNID {wnid!r}, not a WNID; "
                               "use an unmodified ILSVRC2012 devkit")
        if ilsvrc_id in id_to_wnid:
            raise InceValError(f"{where}: ILSVRC2012_ID {ilsvrc_id} appears twice; use an "
                               "unmodified ILSVRC2012 devkit")
        id_to_wnid[ilsvrc_id] = wnid
    if len(set(id_to_wnid.values())) != len(id_to_wnid):
        raise InceValError(f"{where}: two class IDs share a WNID; use an unmodified ILSVRC2012 "
                           "devkit")
    return id_to_wnid


def _read_ground_truth(data: bytes, name: str) -> list[int]:
    where = f"{name} {GROUND_TRUTH}"
    try:
        lines = data.decode("ascii").splitlines()
    except UnicodeDecodeError:
        raise InceValError(f"{where} is not a text file of class IDs; use an unmodified "
                           "ILSVRC2012 devkit") from None
    ids: list[int] = []
    for line_number, line in enumerate(lines, start=1):
        token = line.strip()
        if not token.isdigit():
            raise InceValError(f"{where} line {line_number} is {token[:40]!r}, not a class ID; "
                               "line N must hold the ILSVRC2012_ID of image N")
        value = int(token)
        if not 1 <= value <= NUM_CLASSES:
            raise InceValError(f"{where} line {line_number} has class ID {value}, outside "
                               f"1..{NUM_CLASSES}; use an unmodified ILSVRC2012 devkit")
        ids.append(value)
    if not ids:
        raise InceValError(f"{where} is empty; use an unmodified ILSVRC2012 devkit")
    return ids


def _tar_mode(path: Path) -> str:
    # An explicit mode gives a precise error ("not a gzip file") for a damaged archive.
    name = path.name.lower()
    if name.endswith((".tar.gz", ".tgz")):
        return "r:gz"
    return "r:" if name.endswith(".tar") else "r:*"


def _first_line(exc: BaseException) -> str:
    # Some tarfile and scipy errors span several lines; messages must stay on one.
    lines = str(exc).strip().splitlines()
    return lines[0].rstrip(":") if lines else type(exc).__name__
