"""The five networks: sizes, grids, checkpoint layouts, residual scaling, pooling conventions.

References are independent of the code under test: parameter counts from the paper notes and
torchvision/timm, key names and shapes from tests/fixtures/notes/timm_state_dict_keys.txt (dumped
from timm), grid sizes from the paper's figures. Each model runs at most one 299x299 forward pass in this
file (the module-scoped ``pass_299`` fixture); the other passes use inputs of 75x75 or smaller.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from inceval.models.inception_resnet_v1 import InceptionResNetV1
from inceval.models.inception_resnet_v2 import InceptionResNetV2, InceptionResNetV2Paper
from inceval.models.inception_v3 import InceptionV3
from inceval.models.inception_v4 import InceptionV4
from inceval.models.layers import ConvBnAct, ResidualInceptionBlock, StagedNet

NOTES = Path(__file__).resolve().parents[1] / "fixtures" / "notes"  # copies: see SOURCES.md there
MIN_INPUT = 75  # every family: 74 leaves no pixel after the last stride-2 reduction


@dataclass(frozen=True)
class Expected:
    """What a network must look like at 1000 classes and a 299x299 input."""

    build: Callable[..., StagedNet]
    params: int
    stage_channels: tuple[int, int, int]  # at the end of the 35x35, 17x17, 8x8 grids
    num_features: int
    last_stage_modules: tuple[str, str, str]  # submodules whose outputs end each grid
    avg_pools: int  # 3x3 stride-1 average pools inside blocks
    pools_count_pad: bool
    timm_section: str | None = None


EXPECTED = {
    "v3": Expected(
        build=InceptionV3,
        params=23_834_568,
        stage_channels=(288, 768, 2048),
        num_features=2048,
        last_stage_modules=("Mixed_5d", "Mixed_6e", "Mixed_7c"),
        avg_pools=9,  # Mixed_5b-5d, 6b-6e, 7b-7c
        pools_count_pad=True,
        timm_section="inception_v3",
    ),
    "v4": Expected(
        build=InceptionV4,
        params=42_679_816,
        stage_channels=(384, 1024, 1536),
        num_features=1536,
        last_stage_modules=("features.9", "features.17", "features.21"),
        avg_pools=14,  # 4 A, 7 B, 3 C blocks
        pools_count_pad=False,
        timm_section="inception_v4",
    ),
    "irv2": Expected(
        build=InceptionResNetV2,
        params=55_843_464,
        stage_channels=(320, 1088, 2080),
        num_features=1536,
        last_stage_modules=("repeat", "repeat_1", "block8"),
        avg_pools=1,  # mixed_5b
        pools_count_pad=False,
        timm_section="inception_resnet_v2",
    ),
    "irv1": Expected(
        build=InceptionResNetV1,
        params=22_756_328,
        stage_channels=(256, 896, 1792),
        num_features=1792,
        last_stage_modules=("blocks_a", "blocks_b", "blocks_c"),
        avg_pools=0,
        pools_count_pad=False,
    ),
    "irv2-paper": Expected(
        build=InceptionResNetV2Paper,
        params=32_433_928,
        stage_channels=(384, 1152, 2144),
        num_features=2144,
        last_stage_modules=("blocks_a", "blocks_b", "blocks_c"),
        avg_pools=0,
        pools_count_pad=False,
    ),
}
NAMES = list(EXPECTED)
TIMM_NAMES = [name for name in NAMES if EXPECTED[name].timm_section]
AUX_SECTION = "inception_v3 aux_logits=True"
GRIDS = ("35x35", "17x17", "8x8")
BUFFER_SUFFIXES = (".running_mean", ".running_var", ".num_batches_tracked")


def _parse_key_file(path: Path) -> dict[str, list[tuple[str, tuple[int, ...]]]]:
    """Sections of the key dump: title (without the "(N keys)" note) -> [(key, shape)] in order."""
    sections: dict[str, list[tuple[str, tuple[int, ...]]]] = {}
    current: list[tuple[str, tuple[int, ...]]] | None = None
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            title = re.sub(r"\s*\(.*$", "", line[3:]).replace(" extra keys", "").strip()
            current = sections.setdefault(title, [])
        elif line.strip() and not line.startswith("#") and current is not None:
            key, shape = line.split("\t")
            current.append((key, tuple(int(d) for d in re.findall(r"\d+", shape))))
    return sections


def _layout(model: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(key, tuple(tensor.shape)) for key, tensor in model.state_dict().items()]


def _param_count(layout: list[tuple[str, tuple[int, ...]]]) -> int:
    params = [shape for key, shape in layout if not key.endswith(BUFFER_SUFFIXES)]
    return sum(torch.Size(shape).numel() for shape in params)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: these small passes lose more to thread hand-offs than they gain."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def timm_keys() -> dict[str, list[tuple[str, tuple[int, ...]]]]:
    sections = _parse_key_file(NOTES / "timm_state_dict_keys.txt")
    assert {EXPECTED[name].timm_section for name in TIMM_NAMES} | {AUX_SECTION} <= set(sections)
    return sections


@pytest.fixture(scope="module")
def models() -> Callable[[str], StagedNet]:
    """Builds each network once (seed 0, eval mode) and caches it for the module."""
    cache: dict[str, StagedNet] = {}

    def get(name: str) -> StagedNet:
        if name not in cache:
            torch.manual_seed(0)
            cache[name] = EXPECTED[name].build().eval()
        return cache[name]

    return get


@pytest.fixture(scope="module")
def pass_299(models: Callable[[str], StagedNet]) -> Callable[[str], dict]:
    """The single 299x299 pass per model: stage outputs, features, logits, and what hooks on the
    modules that end each grid saw during that same pass."""
    cache: dict[str, dict] = {}

    def get(name: str) -> dict:
        if name not in cache:
            model = models(name)
            hooked: dict[str, torch.Tensor] = {}
            handles = [
                model.get_submodule(path).register_forward_hook(
                    lambda _m, _i, out, grid=grid: hooked.__setitem__(grid, out.clone())
                )
                for grid, path in zip(GRIDS, EXPECTED[name].last_stage_modules)
            ]
            torch.manual_seed(1)
            with torch.no_grad():
                features, stages = model.forward_stages(torch.randn(1, 3, 299, 299))
                logits = model.forward_head(features)
            for handle in handles:
                handle.remove()
            cache[name] = dict(stages=stages, features=features, logits=logits, hooked=hooked)
        return cache[name]

    return get


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count(name: str, models: Callable[[str], StagedNet]) -> None:
    assert sum(p.numel() for p in models(name).parameters()) == EXPECTED[name].params


@pytest.mark.parametrize("name", TIMM_NAMES)
def test_state_dict_matches_timm_layout(name: str, models, timm_keys) -> None:
    reference = timm_keys[EXPECTED[name].timm_section]
    ours = _layout(models(name))
    assert dict(ours) == dict(reference)  # names and shapes; a diff here names the culprit key
    assert [key for key, _ in ours] == [key for key, _ in reference]  # and the order
    # The dump itself agrees with the published parameter count.
    assert _param_count(reference) == EXPECTED[name].params


def test_v3_aux_head_adds_exactly_the_aux_tensors(timm_keys) -> None:
    torch.manual_seed(0)
    model = InceptionV3(aux_logits=True)
    aux = timm_keys[AUX_SECTION]
    base = timm_keys["inception_v3"]
    ours = _layout(model)
    assert dict(ours) == dict(base) | dict(aux)
    assert [key for key, _ in ours if not key.startswith("AuxLogits.")] == [key for key, _ in base]
    params = sum(p.numel() for p in model.parameters())
    assert params == EXPECTED["v3"].params + _param_count(aux)
    assert params == 27_161_264  # torchvision's Inception_V3_Weights num_params (with aux head)
    # The aux head is never part of evaluation.
    calls: list[int] = []
    model.AuxLogits.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        logits = model.eval()(torch.randn(1, 3, MIN_INPUT, MIN_INPUT))
    assert tuple(logits.shape) == (1, 1000) and not calls


@pytest.mark.parametrize("name", NAMES)
def test_grids_and_logits_at_299(name: str, models, pass_299) -> None:
    model, out, expected = models(name), pass_299(name), EXPECTED[name]
    assert list(out["stages"]) == list(GRIDS)
    for grid, size, channels in zip(GRIDS, (35, 17, 8), expected.stage_channels):
        assert tuple(out["stages"][grid].shape) == (1, channels, size, size), grid
    assert model.num_features == expected.num_features
    assert tuple(out["features"].shape) == (1, expected.num_features, 8, 8)
    assert tuple(out["logits"].shape) == (1, 1000)
    classifier = getattr(model, model.classifier_name)
    assert isinstance(classifier, nn.Linear) and classifier.in_features == expected.num_features
    assert out["logits"].std() > 0  # random weights must still give distinct scores


@pytest.mark.parametrize("name", NAMES)
def test_stage_outputs_are_what_the_forward_pass_computes(name: str, models, pass_299) -> None:
    out = pass_299(name)
    for grid in GRIDS:
        torch.testing.assert_close(out["stages"][grid], out["hooked"][grid], rtol=0, atol=0)
    model = models(name)
    last_grid = out["stages"]["8x8"]
    if name == "irv2":  # the released net adds a 1x1 conv to 1536 channels after its last grid
        with torch.no_grad():
            last_grid = model.conv2d_7b(last_grid)
    torch.testing.assert_close(out["features"], last_grid, rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_minimum_input_size(name: str, models) -> None:
    model = models(name)
    torch.manual_seed(2)
    x = torch.randn(1, 3, MIN_INPUT, MIN_INPUT)
    with torch.no_grad():
        logits = model(x)
        features, stages = model.forward_stages(x)
        assert tuple(logits.shape) == (1, 1000)
        assert [tuple(stages[g].shape[2:]) for g in GRIDS] == [(7, 7), (3, 3), (1, 1)]
        torch.testing.assert_close(model.forward_head(features), logits, rtol=0, atol=0)
        with pytest.raises(RuntimeError):
            model(torch.randn(1, 3, MIN_INPUT - 1, MIN_INPUT - 1))


@pytest.mark.parametrize("name", NAMES)
def test_average_pool_padding_convention(name: str, models) -> None:
    pools = [m for m in models(name).modules() if isinstance(m, nn.AvgPool2d)]
    assert len(pools) == EXPECTED[name].avg_pools
    assert all(p.kernel_size == 3 and p.stride == 1 and p.padding == 1 for p in pools)
    assert all(p.count_include_pad is EXPECTED[name].pools_count_pad for p in pools)


@pytest.mark.parametrize("name", NAMES)
def test_every_batchnorm_sits_in_a_conv_bn_act(name: str, models) -> None:
    """BatchNorm folding walks ConvBnAct modules, so no BN or bias-free conv may live elsewhere."""
    model = models(name)
    paired = set()
    for module in model.modules():
        if isinstance(module, ConvBnAct):
            assert module.conv.bias is None and module.bn.eps == 1e-3
            assert module.conv.out_channels == module.bn.num_features
            paired |= {id(module.conv), id(module.bn)}
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            assert id(module) in paired
        if isinstance(module, nn.Conv2d) and id(module) not in paired:
            assert module.bias is not None and module.kernel_size == (1, 1)  # residual expansion


def _residual_blocks(model: StagedNet, group: str) -> list[ResidualInceptionBlock]:
    blocks = list(model.get_submodule(group))
    assert blocks and all(isinstance(b, ResidualInceptionBlock) for b in blocks)
    return blocks


@pytest.mark.parametrize(
    ("name", "groups", "counts"),
    [
        ("irv2", ("repeat", "repeat_1", "repeat_2"), (10, 20, 9)),
        ("irv1", ("blocks_a", "blocks_b", "blocks_c"), (5, 10, 5)),
        ("irv2-paper", ("blocks_a", "blocks_b", "blocks_c"), (5, 10, 5)),
    ],
)
def test_default_residual_scales(name: str, groups, counts, models) -> None:
    model = models(name)
    for group, count, scale in zip(groups, counts, (0.17, 0.10, 0.20)):
        blocks = _residual_blocks(model, group)
        assert len(blocks) == count
        assert all(b.scale == scale and isinstance(b.act, nn.ReLU) for b in blocks)
    if name == "irv2":
        assert model.block8.scale == 1.0 and isinstance(model.block8.act, nn.Identity)


def _run_capturing_expansion(
    block: ResidualInceptionBlock, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Block output and the output of its 1x1 expansion conv seen during the same call."""
    seen: list[torch.Tensor] = []
    handle = block.conv2d.register_forward_hook(lambda _m, _i, out: seen.append(out.clone()))
    with torch.no_grad():
        out = block(x.clone())
    handle.remove()
    assert len(seen) == 1
    return out, seen[0]


def test_residual_scale_zero_reduces_blocks_to_relu_of_input() -> None:
    torch.manual_seed(0)
    model = InceptionResNetV2(residual_scales=(0.0, 0.0, 0.0)).eval()
    torch.manual_seed(3)
    for group, channels in (("repeat", 320), ("repeat_1", 1088), ("repeat_2", 2080)):
        for block in _residual_blocks(model, group):
            assert block.scale == 0.0
        x = torch.randn(1, channels, 5, 5)
        out, branch = _run_capturing_expansion(model.get_submodule(group)[0], x)
        assert branch.abs().max() > 0.1  # the branch is live; only the scale silences it
        torch.testing.assert_close(out, torch.relu(x), rtol=0, atol=0)
    # The released final block is not governed by residual_scales.
    assert model.block8.scale == 1.0 and isinstance(model.block8.act, nn.Identity)


@pytest.mark.parametrize("name", ["irv2", "irv1", "irv2-paper"])
def test_nonzero_scale_adds_exactly_scale_times_branch(name: str, models) -> None:
    model = models(name)
    torch.manual_seed(4)
    for group, scale in zip(("35x35", "17x17", "8x8"), (0.17, 0.10, 0.20)):
        block = next(
            m for m in model.modules() if isinstance(m, ResidualInceptionBlock) and m.scale == scale
        )
        channels = block.conv2d.out_channels
        x = torch.randn(1, channels, 5, 5)
        out, branch = _run_capturing_expansion(block, x)
        assert branch.shape == x.shape
        expected = torch.relu(x + scale * branch)
        torch.testing.assert_close(out, expected, rtol=0, atol=1e-6, msg=group)
    if name == "irv2":
        x = torch.randn(1, 2080, 5, 5)
        out, branch = _run_capturing_expansion(model.block8, x)
        torch.testing.assert_close(out, x + branch, rtol=0, atol=1e-6)
        assert (out < 0).any()  # no ReLU after the final block


def test_random_init_is_deterministic_given_the_seed(models) -> None:
    torch.manual_seed(0)
    again = InceptionResNetV1()
    reference = models("irv1").state_dict()
    assert all(torch.equal(tensor, reference[key]) for key, tensor in again.state_dict().items())
    conv = again.stem.conv_4a.conv  # He normal: std sqrt(2 / fan_in)
    fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
    assert abs(conv.weight.std().item() / (2 / fan_in) ** 0.5 - 1) < 0.05


# Channel order of each concatenation in the released layouts (torchvision / timm forward code,
# = the TF-slim graphs): the outputs of these children, concatenated in this order, must be the
# block's output (or, for residual blocks, the input of the ``conv2d`` expansion). The weights of
# the following layer are only right for this order, and the key names cannot reveal it.
CONCAT_ORDER = [
    ("v3", "Mixed_5b", 192, ["branch1x1", "branch5x5_2", "branch3x3dbl_3", "branch_pool"]),
    ("v3", "Mixed_6a", 288, ["branch3x3", "branch3x3dbl_3", "maxpool"]),
    ("v3", "Mixed_6b", 768, ["branch1x1", "branch7x7_3", "branch7x7dbl_5", "branch_pool"]),
    ("v3", "Mixed_7a", 768, ["branch3x3_2", "branch7x7x3_4", "maxpool"]),
    (
        "v3",
        "Mixed_7b",
        1280,
        ["branch1x1", "branch3x3_2a", "branch3x3_2b", "branch3x3dbl_3a", "branch3x3dbl_3b",
         "branch_pool"],
    ),
    ("v4", "features.3", 64, ["maxpool", "conv"]),
    ("v4", "features.4", 160, ["branch0", "branch1"]),
    ("v4", "features.5", 192, ["conv", "maxpool"]),
    ("v4", "features.6", 384, ["branch0", "branch1", "branch2", "branch3"]),
    ("v4", "features.10", 384, ["branch0", "branch1", "branch2"]),
    ("v4", "features.11", 1024, ["branch0", "branch1", "branch2", "branch3"]),
    ("v4", "features.18", 1024, ["branch0", "branch1", "branch2"]),
    (
        "v4",
        "features.19",
        1536,
        ["branch0", "branch1_1a", "branch1_1b", "branch2_3a", "branch2_3b", "branch3"],
    ),
    ("irv2", "mixed_5b", 192, ["branch0", "branch1", "branch2", "branch3"]),
    ("irv2", "mixed_6a", 320, ["branch0", "branch1", "branch2"]),
    ("irv2", "mixed_7a", 1088, ["branch0", "branch1", "branch2", "branch3"]),
    ("irv2", "repeat.0", 320, ["branch0", "branch1", "branch2"]),
    ("irv2", "repeat_1.0", 1088, ["branch0", "branch1"]),
    ("irv2", "repeat_2.0", 2080, ["branch0", "branch1"]),
]


@pytest.mark.parametrize(("name", "path", "channels", "order"), CONCAT_ORDER)
def test_branch_concatenation_order(name: str, path: str, channels: int, order, models) -> None:
    block = models(name).get_submodule(path)
    seen: dict[str, torch.Tensor] = {}
    handles = [
        block.get_submodule(child).register_forward_hook(
            lambda _m, _i, out, child=child: seen.__setitem__(child, out.clone())
        )
        for child in order
    ]
    if isinstance(block, ResidualInceptionBlock):
        handles.append(
            block.conv2d.register_forward_pre_hook(lambda _m, args: seen.__setitem__("mixed", args[0]))
        )
    torch.manual_seed(5)
    with torch.no_grad():
        out = block(torch.randn(1, channels, 9, 9))
    for handle in handles:
        handle.remove()
    concatenated = seen["mixed"] if isinstance(block, ResidualInceptionBlock) else out
    torch.testing.assert_close(concatenated, torch.cat([seen[c] for c in order], 1), rtol=0, atol=0)
