"""Named benches: fixed workloads whose results can be compared over time.

``ci``: the throughput gate of ``.ci/run``. Inception-v3 at a reduced input size (107 pixels, a
tenth of the 299-pixel MACs) with random weights, the bundled photographs, the CPU, 1 and 12
crops, the model alone and end to end. It takes well under a minute on a 2-core CPU, so CI can
run it after the tests. One torch thread: with two, a busy neighbour on a 2-core machine stalls
every parallel op at its barrier, which slows a network of many small ops far more than the
reference workload, and normalising stops working (measured: see docs/bench.md). Its baseline
is ``results/bench/ci_baseline.json``, made by :mod:`inceval.bench.gate`::

    python -m inceval.bench.gate --runs 3 --out results/bench/ci_baseline.json
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from inceval.bench.stages import END_TO_END, MODEL
from inceval.sample import SAMPLE_ROOT

BUNDLED_IMAGES = SAMPLE_ROOT / "images"


@dataclass(frozen=True)
class Preset:
    """Option values of ``inceval bench`` under one name.

    Attributes:
        name: the ``--preset`` value.
        options: option name (as the CLI's parameter names) -> value; options given on the
            command line win over these.
        description: one line for ``--help`` and the result file.
    """

    name: str
    description: str
    options: dict[str, Any] = field(default_factory=dict)


PRESETS = {
    "ci": Preset(
        name="ci",
        description="CI throughput gate: v3 at 107 px, bundled photos, CPU with one torch "
                    "thread, crops 1 and 12, model and end to end",
        options={
            "models": "v3",
            "crops": "1,12",
            "input_size": 107,
            "data": BUNDLED_IMAGES,
            "device": "cpu",
            "dtype": "float32",
            "backend": "auto",
            "batch_size": 8,
            "workers": 2,
            "threads": 1,
            "images": 16,
            "min_seconds": 1.5,
            "stages": f"{MODEL},{END_TO_END}",
            "gemm_seconds": 0.3,
            "reference_seconds": 0.5,
        },
    ),
}
