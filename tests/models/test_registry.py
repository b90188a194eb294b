"""The zoo as data: names, aliases, weights tags, evaluation settings, published figures, complexity.

Expected values are read from tests/fixtures/notes (copies of paper.md and architectures.md), not
from the registry.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from inceval.errors import InceValError
from inceval.eval_config import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    IMAGENET_INCEPTION_MEAN,
)
from inceval.models import create_model, get_eval_config, list_models, registry
from inceval.models.complexity import count_macs, count_parameters, model_complexity
from inceval.models.factory import build_uninitialised

ALL = ["v3", "v4", "irv2", "irv2-paper", "irv1"]
NOTES = Path(__file__).resolve().parents[1] / "fixtures" / "notes"  # copies: see SOURCES.md there


def _paper_accuracies(notes: Path) -> dict[str, tuple[float, float]]:
    """The 'What public checkpoints reach today' table of paper.md: tag -> (top-1, top-5)."""
    text = (notes / "paper.md").read_text()
    section = text.split("## What public checkpoints reach today", 1)[1]
    rows = re.findall(r"^\| (inception\S+) \| ([\d.]+) \| ([\d.]+) \|", section, re.M)
    return {tag: (float(top1), float(top5)) for tag, top1, top5 in rows}


def _notes_eval_settings(notes: Path) -> dict[str, tuple[int, int, bool]]:
    """The weights table of architectures.md: tag -> (input, resize, uses ImageNet mean/std)."""
    text = (notes / "architectures.md").read_text()
    section = text.split("## Public weights and their evaluation settings", 1)[1]
    settings = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or not cells[0].startswith("inception"):
            continue
        names, size, resize, _, mean = cells
        # resize reads "floor(299/0.875) = 341, centre crop 299" or just "341"
        resize_px = int(re.match(r"\d+", resize.split("= ")[-1]).group())
        first, *others = [n.strip() for n in names.split("/")]
        arch = first.split(".")[0]
        for name in [first] + [f"{arch}.{o}" for o in others]:
            settings[name] = (int(size), resize_px, mean.startswith("ImageNet"))
    return settings


def test_names_in_registry_order() -> None:
    assert list_models() == ALL


@pytest.mark.parametrize(
    ("typed", "canonical"),
    [
        ("v3", "v3"),
        ("inception_v3", "v3"),
        ("Inception-V4", "v4"),
        ("inception_resnet_v2", "irv2"),
        ("irv2_paper", "irv2-paper"),
        ("inception_resnet_v1", "irv1"),
    ],
)
def test_aliases_resolve(typed: str, canonical: str) -> None:
    spec, tag = registry.resolve_model(typed)
    assert (spec.name, tag) == (canonical, None)


def test_weights_name_selects_model_and_weights() -> None:
    spec, tag = registry.resolve_model("inception_v3.gluon_in1k")
    assert (spec.name, tag) == ("v3", "inception_v3.gluon_in1k")
    assert get_eval_config("inception_v3.gluon_in1k").mean == IMAGENET_DEFAULT_MEAN


def test_unknown_name_suggests_close_matches_and_lists_all() -> None:
    with pytest.raises(InceValError) as info:
        get_eval_config("inceptoin_v3")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("unknown model 'inceptoin_v3'; did you mean inception_v3")
    assert (
        "available: v3 (inception_v3), v4 (inception_v4), irv2 (inception_resnet_v2), irv2-paper, irv1"
        in message
    )


def test_unknown_name_without_close_match_still_lists_all() -> None:
    with pytest.raises(InceValError, match=r"^unknown model 'zzzz'; available: v3 \(inception_v3\)"):
        create_model("zzzz")


def test_every_weights_tag_belongs_to_a_model_and_back() -> None:
    listed = {name for spec in registry.MODELS.values() for name in registry.weights_names(spec)}
    assert listed == set(registry.WEIGHTS)
    archs = {spec.arch for spec in registry.MODELS.values()}
    assert {w.arch for w in registry.WEIGHTS.values()} <= archs


def test_index_refuses_a_duplicate() -> None:
    spec = registry.MODELS["v3"]
    with pytest.raises(ValueError, match="duplicate registry entry 'v3'"):
        registry._index([spec, registry.MODELS["v4"], spec], "name")


def test_published_accuracies_match_paper_notes() -> None:
    published = _paper_accuracies(NOTES)
    assert set(published) == set(registry.WEIGHTS)
    for name, weights in registry.WEIGHTS.items():
        assert (weights.top1, weights.top5) == published[name], name
        assert "paper.md" in weights.accuracy_source


def test_eval_settings_match_architecture_notes() -> None:
    settings = _notes_eval_settings(NOTES)
    assert set(settings) == set(registry.WEIGHTS)
    for name, (size, resize, imagenet_stats) in settings.items():
        cfg = get_eval_config(name)
        assert (cfg.input_size, cfg.resize_size, cfg.interpolation) == (size, resize, "bicubic"), name
        expected_mean = IMAGENET_DEFAULT_MEAN if imagenet_stats else IMAGENET_INCEPTION_MEAN
        assert cfg.mean == expected_mean, name


def test_defaults_and_tag_spellings() -> None:
    assert get_eval_config("v3") == registry.WEIGHTS["inception_v3.tf_in1k"].eval_config
    assert get_eval_config("irv2").crop_pct == 0.8975
    assert get_eval_config("v3", "gluon_in1k") == get_eval_config("v3", "inception_v3.gluon_in1k")
    assert get_eval_config("v3", "gluon_in1k").std == IMAGENET_DEFAULT_STD
    for name in ("irv1", "irv2-paper"):
        cfg = get_eval_config(name)
        assert (cfg.input_size, cfg.crop_pct, cfg.resize_size, cfg.mean) == (
            299,
            0.875,
            341,
            IMAGENET_INCEPTION_MEAN,
        )


def test_wrong_tag_lists_the_models_tags() -> None:
    with pytest.raises(InceValError) as info:
        get_eval_config("v3", "tf_in1k_typo")
    assert str(info.value) == (
        "unknown weights tag 'tf_in1k_typo' for v3; available: inception_v3.tf_in1k, "
        "inception_v3.tv_in1k, inception_v3.tf_adv_in1k, inception_v3.gluon_in1k"
    )
    with pytest.raises(InceValError, match="unknown weights tag 'inception_v4.tf_in1k' for v3"):
        get_eval_config("v3", "inception_v4.tf_in1k")


def test_tag_for_a_model_without_weights() -> None:
    with pytest.raises(InceValError, match="weights tag 'tf_in1k' given, but irv1 has no public weights"):
        get_eval_config("irv1", "tf_in1k")


def test_name_and_tag_must_agree() -> None:
    with pytest.raises(
        InceValError, match="selects weights inception_v3.gluon_in1k but weights_tag is 'tv_in1k'"
    ):
        get_eval_config("inception_v3.gluon_in1k", "tv_in1k")
    assert get_eval_config("inception_v3.gluon_in1k", "gluon_in1k").mean == IMAGENET_DEFAULT_MEAN


def test_get_eval_config_builds_no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: registry.ModelSpec) -> type:
        raise AssertionError(f"get_eval_config built {self.name}")

    monkeypatch.setattr(registry.ModelSpec, "load_class", refuse)
    for name in ALL:
        assert get_eval_config(name).input_size == 299


@pytest.mark.parametrize("name", ["irv1", "irv2-paper"])
def test_pretrained_without_public_weights_is_refused(name: str) -> None:
    with pytest.raises(InceValError) as info:
        create_model(name, "pretrained")
    assert "has no public pretrained weights" in str(info.value)
    assert "--weights PATH" in str(info.value)


# Parameters and MACs at 299, exact. Parameters: architectures.md (and timm's models). MACs:
# torch.utils.flop_counter.FlopCounterMode on a 299 forward (conv + linear FLOPs / 2), a counter
# independent of ``count_macs``'s hooks. For v3, v4 and irv2 timm 1.0.31's own networks give the
# same three numbers under FlopCounterMode; ``test_pinned_macs_are_torchs_flop_count`` re-derives
# all five. The last column is architectures.md's published GMACs, which they must round to.
EXACT_COMPLEXITY = {
    "v3": (23_834_568, 5_713_216_096, 5.71),
    "v4": (42_679_816, 12_253_974_624, 12.25),
    "irv2": (55_843_464, 13_155_794_016, 13.16),
    "irv2-paper": (32_433_928, 9_257_953_632, 9.26),
    "irv1": (22_756_328, 6_206_361_696, 6.21),
}


def _torch_flops(model: nn.Module, x: torch.Tensor) -> int:
    """FLOPs torch's own counter sees in one forward pass (convolutions and matmuls only)."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    counted = {str(op) for op in counter.get_flop_counts()["Global"]}
    assert counted == {"aten.convolution", "aten.addmm"}, counted
    return counter.get_total_flops()


@pytest.mark.parametrize("name", ALL)
def test_complexity_matches_architecture_notes(name: str) -> None:
    params, macs, published_gmacs = EXACT_COMPLEXITY[name]
    cost = model_complexity(name)
    assert (cost.params, cost.macs, cost.input_size) == (params, macs, 299)
    assert round(macs / 1e9, 2) == published_gmacs


@pytest.mark.parametrize("name", ALL)
def test_pinned_macs_are_torchs_flop_count(name: str) -> None:
    # Shapes only: the network runs on the meta device, so a 299 pass costs no arithmetic.
    model = build_uninitialised(registry.resolve_model(name)[0].load_class()).eval()
    flops = _torch_flops(model, torch.empty(1, 3, 299, 299, device="meta"))
    assert flops == 2 * EXACT_COMPLEXITY[name][1]


def test_count_macs_by_hand_on_a_small_net() -> None:
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2),  # 3x17x17 -> 8x8x8
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=4),  # 8x8x8, 2 input channels per group
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 5),
    )
    net.train()
    expected = 8 * 8 * 8 * 3 * 3 * 3 + 8 * 8 * 8 * 2 * 3 * 3 + 5 * 8
    assert count_macs(net, 17) == expected
    # The count leaves the module as it found it: no hooks, same mode.
    assert net.training
    assert all(not m._forward_hooks for m in net.modules())
    assert (
        count_parameters(net) == sum(p.numel() for p in net.parameters()) == (8 * 27 + 8) + (8 * 18 + 8) + 45
    )


def test_count_macs_of_a_built_model_agrees_with_torchs_flop_counter() -> None:
    model = create_model("irv1")
    x = torch.randn(1, 3, 75, 75, generator=torch.Generator().manual_seed(0))
    assert 2 * count_macs(model, 75) == _torch_flops(model, x)
    assert count_parameters(model) == EXACT_COMPLEXITY["irv1"][0]


def test_complexity_at_another_size_scales() -> None:
    small = model_complexity("v3", 139)
    assert small.input_size == 139
    assert small.macs < model_complexity("v3").macs / 4


def test_model_options_reach_the_constructor() -> None:
    model = create_model("irv2", residual_scales=(0.3, 0.2, 0.1))
    assert (model.repeat[0].scale, model.repeat_1[19].scale, model.repeat_2[8].scale) == (0.3, 0.2, 0.1)
    assert model.block8.scale == 1.0
    assert create_model("v3", aux_logits=True).AuxLogits is not None


def test_unknown_or_invalid_model_option() -> None:
    with pytest.raises(
        InceValError, match=r"^v4 does not take option\(s\) aux_logits; its options: drop_rate$"
    ):
        create_model("v4", aux_logits=True)
    with pytest.raises(InceValError, match=r"^invalid option for irv2: "):
        create_model("irv2", residual_scales=(0.1,))
