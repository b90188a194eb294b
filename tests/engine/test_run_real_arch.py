"""A real architecture through the whole engine: stored probabilities equal a direct recomputation.

Inception-v3 with seeded random weights runs at a reduced input size (107 pixels) through the
engine in its inference form (BatchNorm folded, channels_last), exactly as ``inceval run`` builds
it. The reference recomputes every protocol's probabilities with the untouched model, image by
image, from the reference renderer's views: softmax per view, then the mean over the protocol's
views. A random network is nearly uniform, which would hide how views are averaged, so the
classifier is scaled up until averaging probabilities and averaging logits disagree clearly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from inceval.data.datasets import load_val_dataset
from inceval.data.protocols import get_protocol
from inceval.data.reference import decode_rgb, normalize, render_views
from inceval.data.views import plan_views
from inceval.engine.evaluate import evaluate, open_run
from inceval.models import create_model, prepare_for_inference
from inceval.store import RunReader
from tests.photos import write_photo_set

INPUT_SIZE = 107
PROTOCOLS = ("1", "12")
# float16 storage keeps about 3 significant digits.
RTOL, ATOL = 2e-3, 1e-6


@pytest.fixture(scope="module")
def confident_v3() -> torch.nn.Module:
    model = create_model("v3", "random", seed=0)
    model.eval_config = model.eval_config.with_input_size(INPUT_SIZE)
    with torch.no_grad():
        model.fc.weight.mul_(300.0)
    return model


def _reference(model: torch.nn.Module, path: Path, protocol: str) -> tuple[np.ndarray, np.ndarray]:
    """(mean of softmax, softmax of mean logits) over the protocol's views of one image."""
    image = decode_rgb(path)
    views = get_protocol(protocol).resolve(model.eval_config)
    pixels = render_views(image, plan_views(image.shape[1], image.shape[0], views))
    with torch.no_grad():
        logits = model(normalize(pixels, model.eval_config)).double()
    return logits.softmax(-1).mean(0).numpy(), logits.mean(0).softmax(-1).numpy()


def test_stored_probabilities_equal_direct_recomputation(tmp_path: Path, confident_v3) -> None:
    photos = write_photo_set(tmp_path / "photos")
    data = tmp_path / "data"
    data.mkdir()
    shapes = ("landscape", "portrait", "odd_401")
    chosen = sorted(p.name for p in photos if p.name.startswith(shapes))
    for name in chosen:
        (tmp_path / "photos" / name).rename(data / name)
    (tmp_path / "labels.txt").write_text("".join(f"{name} {i}\n" for i, name in enumerate(chosen)))
    dataset = load_val_dataset(data, layout="list", labels_file=tmp_path / "labels.txt")
    assert [Path(p).name for p in dataset.paths()] == chosen

    engine_model = prepare_for_inference(confident_v3)
    writer = open_run(tmp_path / "run", [engine_model], PROTOCOLS, dataset)
    with writer:
        stats = evaluate([engine_model], PROTOCOLS, dataset, writer, backend="torch",
                         device="cpu", workers=0, batch_size=2, max_views_per_forward=10)
        writer.finish(stats.manifest_update())
    reader = RunReader(tmp_path / "run")
    assert reader.manifest["models"]["v3"]["views_per_image"] == 13
    assert reader.manifest["models"]["v3"]["eval_config"]["input_size"] == INPUT_SIZE

    for protocol in PROTOCOLS:
        stored = np.asarray(reader.probabilities("v3", protocol), dtype=np.float64)
        for row, path in enumerate(dataset.paths()):
            mean_probs, probs_of_mean_logits = _reference(confident_v3, path, protocol)
            np.testing.assert_allclose(stored[row], mean_probs, rtol=RTOL, atol=ATOL)
            if protocol == "12":
                # The comparison can tell the averaging rules apart.
                assert np.abs(probs_of_mean_logits - mean_probs).max() > 100 * ATOL
