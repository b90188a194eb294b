"""Our v3, v4 and released IRv2 against an independent implementation: timm's, number for number.

The fixtures in tests/fixtures/reference_logits/ hold the float32 logits that timm 1.0.31's
``inception_v3``, ``inception_v4`` and ``inception_resnet_v2`` computed with the seeded weights of
``seeded_weights.py`` (see the README there). Our networks load the identical tensors under the
identical names, so any change to what a network computes (an activation, a padding, a pooling
convention, a residual scale, a concat order, BatchNorm's eps) moves the logits far outside float32
rounding. The weights are random but healthy (BatchNorm statistics non-trivial; activations measured
between 0.75 and 20 in std through every layer), and the logits' spread across classes is checked
below, so that agreement cannot come from near-constant outputs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from inceval.models import create_model
from inceval.models.inference import prepare_for_inference
from tests.models.seeded_weights import load_seeded, uint8_to_input

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "reference_logits"
TIMM_NAMES = {"v3": "inception_v3", "v4": "inception_v4", "irv2": "inception_resnet_v2"}

# Tolerances, as a fraction of the logits' spread (their std across the 1000 classes, per image).
# The plain model runs the same float32 operations as timm in the same order, and measured
# bit-identical (0.0) under torch 2.13 on CPU; 1e-5 leaves room for another BLAS or convolution
# algorithm while staying orders of magnitude below the effect of any architectural change
# (measured: BatchNorm eps 1e-5 instead of 1e-3 moves v3's logits by 5e-2 of the spread, a
# residual scale 0.12 instead of 0.10 moves IRv2's by 0.36, a v3 pool that excludes padding by
# 1.8; a missing ReLU, a swapped padding or concat order fail as clearly). Folding BatchNorm into
# the conv reorders the arithmetic: measured up to 4.3e-6 of the spread (3.4e-5 absolute), hence
# 2e-5 for that form.
PLAIN_RTOL = 1e-5
FOLDED_RTOL = 2e-5
FOLDED_SIZE = 107
MIN_SPREAD = 1.0  # logits std across classes (absolute); measured 1.27 .. 13.0


def _fixture(name: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / f"{TIMM_NAMES[name]}.npz") as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def inputs() -> dict[int, torch.Tensor]:
    """The fixture images as network inputs, keyed by size."""
    with np.load(FIXTURES / "inputs.npz") as data:
        return {int(key[1:]): torch.from_numpy(uint8_to_input(data[key])) for key in data.files}


@pytest.fixture(scope="module")
def two_threads() -> Iterator[None]:
    """Pin the thread count so the measured timings do not depend on the host's core count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(min(2, threads))
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=list(TIMM_NAMES))
def case(request: pytest.FixtureRequest, two_threads: None) -> tuple[str, nn.Module, dict]:
    """(name, our model with the seeded weights loaded strictly, timm's fixture)."""
    name = request.param
    reference = _fixture(name)
    model = load_seeded(create_model(name), int(reference["seed"]))
    return name, model.eval(), reference


def _relative_error(ours: np.ndarray, reference: np.ndarray) -> float:
    """Largest |ours - reference| over all logits, in units of each image's logit spread."""
    spread = reference.std(axis=1, keepdims=True)
    return float((np.abs(ours - reference) / spread).max())


def test_fixture_logits_have_a_real_spread(case: tuple[str, nn.Module, dict]) -> None:
    # Healthy weights: logits that vary across classes and between images, far beyond the
    # tolerance, so agreement cannot come from near-constant outputs.
    name, _, reference = case
    assert {int(s) for s in reference["sizes"]} == {107, 139}
    assert "'timm': '1.0.31'" in str(reference["versions"])
    for size in reference["sizes"]:
        logits = reference[f"logits{size}"]
        assert logits.shape == (2, 1000) and logits.dtype == np.float32
        assert np.isfinite(logits).all()
        assert logits.std(axis=1).min() > MIN_SPREAD, (name, size)
        # The noise image and the photo differ: the logits are not a shared bias pattern.
        assert np.abs(logits[0] - logits[1]).max() > MIN_SPREAD


def test_plain_model_matches_timm(
    case: tuple[str, nn.Module, dict], inputs: dict[int, torch.Tensor]
) -> None:
    name, model, reference = case
    for size in reference["sizes"]:
        with torch.no_grad():
            ours = model(inputs[int(size)]).numpy()
        error = _relative_error(ours, reference[f"logits{size}"])
        assert error < PLAIN_RTOL, f"{name} at {size}px: max error {error:.3g} of the logit spread"


def test_inference_form_matches_timm(
    case: tuple[str, nn.Module, dict], inputs: dict[int, torch.Tensor]
) -> None:
    # One image at one size suffices: folding changes no geometry, and the plain test covers the
    # rest. The photo, at 107 px: the folded pass (deep copy, fold, forward) is the costly one.
    name, model, reference = case
    prepared = prepare_for_inference(model)
    x = inputs[FOLDED_SIZE][1:].contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        ours = prepared(x).numpy()
    error = _relative_error(ours, reference[f"logits{FOLDED_SIZE}"][1:])
    assert error < FOLDED_RTOL, f"folded {name}: max error {error:.3g} of the logit spread"
