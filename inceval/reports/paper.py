"""The paper's Tables 1-4 and the public checkpoints' published accuracies, as data.

The numbers live in ``paper_values.json`` beside this module (errors in percent, as printed;
checkpoint figures are accuracies). This module loads them and maps stored models onto the paper's
rows:

* single models by architecture: ``v3`` -> Inception-v3, ``v4`` -> Inception-v4, ``irv1`` ->
  Inception-ResNet-v1, ``irv2`` and ``irv2-paper`` -> Inception-ResNet-v2 (the manifest's ``arch``
  is used when present, else the model name; timm's names are accepted too);
* ensembles by the architectures of their (flattened) members, and only when all members weigh
  the same, as in the paper: 4 x Inception-v3 -> the Inception-v3 ensemble row, 1 x Inception-v4 +
  3 x Inception-ResNet-v2 -> the Inception-v4(+Residual) row.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Mapping

# Model names and timm/registry architecture names -> the paper's network names.
NETWORK_OF_MODEL: dict[str, str] = {
    "v3": "Inception-v3",
    "inception_v3": "Inception-v3",
    "v4": "Inception-v4",
    "inception_v4": "Inception-v4",
    "irv1": "Inception-ResNet-v1",
    "inception_resnet_v1": "Inception-ResNet-v1",
    "irv2": "Inception-ResNet-v2",
    "inception_resnet_v2": "Inception-ResNet-v2",
    "irv2-paper": "Inception-ResNet-v2",
    "inception_resnet_v2_paper": "Inception-ResNet-v2",
}
# Paper rows inceval can evaluate; the others (BN-Inception, ResNet) are reference rows only.
EVALUABLE_NETWORKS = frozenset(NETWORK_OF_MODEL.values())


@dataclass(frozen=True)
class PaperRow:
    """One row of a paper table (errors in percent; None where the paper prints N/A)."""

    network: str
    crops: int | str
    top1: float | None
    top5: float | None
    models: int | None = None
    composition: tuple[tuple[str, int], ...] | None = None
    footnote: str | None = None

    @property
    def evaluable(self) -> bool:
        """Whether inceval has a model for this row (ensembles: for every member)."""
        if self.composition is not None:
            return all(net in EVALUABLE_NETWORKS for net, _ in self.composition)
        return self.models is None and self.network in EVALUABLE_NETWORKS


@dataclass(frozen=True)
class PaperTable:
    """One of the paper's Tables 1-4."""

    key: str
    title: str
    subset: str
    images: int
    rows: tuple[PaperRow, ...]


@dataclass(frozen=True)
class Checkpoint:
    """Published single-crop accuracy of public weights (percent, all 50,000 images)."""

    weights: str
    top1_acc: float
    top5_acc: float

    @property
    def top1_error(self) -> float:
        """100 - top-1 accuracy."""
        return 100.0 - self.top1_acc

    @property
    def top5_error(self) -> float:
        """100 - top-5 accuracy."""
        return 100.0 - self.top5_acc


@dataclass(frozen=True)
class PaperValues:
    """Everything in paper_values.json."""

    source: str
    tables: dict[str, PaperTable]
    footnotes: dict[str, str]
    checkpoints: dict[str, Checkpoint]
    checkpoints_source: str
    raw: dict[str, Any]


@lru_cache(maxsize=1)
def load_paper() -> PaperValues:
    """Load paper_values.json (once)."""
    raw = json.loads(resources.files(__package__).joinpath("paper_values.json").read_text())
    tables = {}
    for key, table in raw["tables"].items():
        rows = tuple(
            PaperRow(
                network=row["network"], crops=row["crops"], top1=row["top1"], top5=row["top5"],
                models=row.get("models"),
                composition=(tuple(row["composition"].items())
                             if row.get("composition") else None),
                footnote=row.get("footnote"),
            )
            for row in table["rows"]
        )
        tables[key] = PaperTable(key, table["title"], table["subset"], table["images"], rows)
    checkpoints = {
        row["weights"]: Checkpoint(row["weights"], row["top1_acc"], row["top5_acc"])
        for row in raw["checkpoints"]["rows"]
    }
    return PaperValues(raw["source"], tables, raw["footnotes"], checkpoints,
                       raw["checkpoints"]["source"], raw)


def network_of(model: str, info: Mapping[str, Any] | None = None) -> str | None:
    """The paper's network name for a stored model, or None (unknown or an ensemble)."""
    arch = (info or {}).get("arch")
    if arch in NETWORK_OF_MODEL:
        return NETWORK_OF_MODEL[arch]
    return NETWORK_OF_MODEL.get(model)


def is_ensemble(info: Mapping[str, Any]) -> bool:
    """Whether a manifest model record describes an ensemble."""
    return info.get("kind") == "ensemble" or "members" in info


def leaf_members(info: Mapping[str, Any], scale: float = 1.0) -> list[tuple[str, float]]:
    """Flatten an ensemble record into (network or "?<model>", effective weight) per leaf model."""
    leaves: list[tuple[str, float]] = []
    for member in info.get("members", []):
        weight = scale * float(member.get("weight", 1.0))
        if "members" in member:
            leaves.extend(leaf_members(member, weight))
        else:
            net = network_of(member.get("model", ""), member)
            leaves.append((net or f"?{member.get('model')}", weight))
    return leaves


def composition(info: Mapping[str, Any]) -> tuple[tuple[str, int], ...]:
    """(network, count) pairs of an ensemble's leaf members, in the paper's network order."""
    order = load_paper().raw["networks"]
    counts = Counter(net for net, _ in leaf_members(info))
    return tuple(sorted(counts.items(),
                        key=lambda item: (order.index(item[0]) if item[0] in order
                                          else len(order), item[0])))


def describe_composition(info: Mapping[str, Any]) -> str:
    """"1 x Inception-v4 + 3 x Inception-ResNet-v2" (unknown models as ?name)."""
    return " + ".join(f"{count} x {net}" for net, count in composition(info))


def equal_weights(info: Mapping[str, Any]) -> bool:
    """Whether every leaf member of an ensemble has the same effective weight."""
    weights = [w for _, w in leaf_members(info)]
    return bool(weights) and all(math.isclose(w, weights[0], rel_tol=1e-9) for w in weights)


def paper_row(table: str, network: str | None, crops: int | str) -> PaperRow | None:
    """The paper's single-model row of ``table`` for ``network`` with the same crop count."""
    if network is None:
        return None
    for row in load_paper().tables[table].rows:
        if row.composition is None and row.models is None and row.network == network \
                and row.crops == crops:
            return row
    return None


def ensemble_paper_row(info: Mapping[str, Any], crops: int | str) -> PaperRow | None:
    """The Table 4 row matching an ensemble's composition, if its members weigh the same."""
    if not equal_weights(info):
        return None
    mine = composition(info)
    for row in load_paper().tables["4"].rows:
        if row.composition and dict(row.composition) == dict(mine) and row.crops == crops:
            return row
    return None


def checkpoint(weights: str | None) -> Checkpoint | None:
    """Published accuracy of a weights tag (``arch.tag``), if the notes list it."""
    return load_paper().checkpoints.get(weights) if weights else None
