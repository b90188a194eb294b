"""Weights loading: public checkpoint layouts, adaptations, file errors, the hub cache, random init.

The public layouts are rebuilt from tests/fixtures/notes/timm_state_dict_keys.txt (names and
shapes of the timm checkpoints) filled with random tensors, so no download is needed.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from inceval.errors import InceValError
from inceval.eval_config import IMAGENET_DEFAULT_MEAN
from inceval.models import create_model
from inceval.models.checkpoint import load_state_dict_checked, read_state_dict

SIZE = 75  # the smallest input every network accepts
SNAPSHOT = "0123456789abcdef0123456789abcdef01234567"

Layout = list[tuple[str, tuple[int, ...]]]
NOTES = Path(__file__).resolve().parents[1] / "fixtures" / "notes"  # copies: see SOURCES.md there


def _parse_layouts(notes: Path) -> dict[str, Layout]:
    """Sections of timm_state_dict_keys.txt: 'inception_v3', 'inception_v4', ..., 'aux'."""
    layouts: dict[str, Layout] = {}
    current: Layout | None = None
    for line in (notes / "timm_state_dict_keys.txt").read_text().splitlines():
        if line.startswith("## "):
            title = line[3:]
            current = layouts.setdefault("aux" if "aux_logits" in title else title.split()[0], [])
        elif line.strip() and not line.startswith("#") and current is not None:
            name, shape = line.split("\t")
            current.append((name, tuple(int(d) for d in shape.strip("()").split(",") if d.strip())))
    return layouts


def _distinct_tensors(layout: Layout) -> dict[str, torch.Tensor]:
    """A tensor per name whose values identify the tensor and vary along every axis.

    Cheaper than random numbers at these sizes (up to 56M values) and just as able to show a
    tensor landing under the wrong name, a row dropped from the wrong end, or an axis swapped.
    """
    tensors = {}
    for index, (name, shape) in enumerate(layout):
        if name.endswith("num_batches_tracked"):
            tensors[name] = torch.tensor(1000 + index, dtype=torch.long)
        else:
            numel = torch.Size(shape).numel()
            values = torch.arange(numel, dtype=torch.float32).remainder_(997).add_(1000 * index)
            tensors[name] = values.reshape(shape)
    return tensors


@pytest.fixture(scope="module")
def layouts() -> dict[str, Layout]:
    parsed = _parse_layouts(NOTES)
    assert [len(parsed[k]) for k in ("inception_v3", "inception_v4", "inception_resnet_v2")] == [
        566,
        896,
        1306,
    ]
    return parsed


@pytest.fixture(scope="module")
def models() -> dict[str, torch.nn.Module]:
    return {
        "v3": create_model("v3"),
        "v3-aux": create_model("v3", aux_logits=True),
        "v4": create_model("v4"),
        "irv2": create_model("irv2"),
    }


def _assert_loaded(model: torch.nn.Module, expected: dict[str, torch.Tensor]) -> None:
    state = model.state_dict()
    assert set(state) == set(expected)
    for name, tensor in expected.items():
        assert torch.equal(state[name], tensor), name


# --- public layouts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "arch"), [("v3", "inception_v3"), ("v4", "inception_v4"), ("irv2", "inception_resnet_v2")]
)
def test_public_layout_loads_strictly(models: dict, layouts: dict, key: str, arch: str) -> None:
    tensors = _distinct_tensors(layouts[arch])
    notes, dropped = load_state_dict_checked(models[key], tensors, "timm.safetensors")
    assert (notes, dropped) == ([], False)
    _assert_loaded(models[key], tensors)


def test_v3_aux_tensors_dropped_when_aux_head_is_off(models: dict, layouts: dict) -> None:
    tensors = _distinct_tensors(layouts["inception_v3"] + layouts["aux"])
    notes, _ = load_state_dict_checked(models["v3"], tensors, "tv.safetensors")
    assert notes == [f"ignored {len(layouts['aux'])} AuxLogits.* tensors (the model has no aux head)"]
    _assert_loaded(models["v3"], {k: v for k, v in tensors.items() if not k.startswith("AuxLogits.")})


def test_v3_aux_tensors_loaded_when_aux_head_is_on(models: dict, layouts: dict) -> None:
    tensors = _distinct_tensors(layouts["inception_v3"] + layouts["aux"])
    notes, _ = load_state_dict_checked(models["v3-aux"], tensors, "tv.safetensors")
    assert notes == []
    _assert_loaded(models["v3-aux"], tensors)


def test_v3_aux_head_on_needs_aux_tensors(models: dict, layouts: dict) -> None:
    tensors = _distinct_tensors(layouts["inception_v3"])
    with pytest.raises(
        InceValError,
        match=r"does not fit v3: 14 missing, 0 unexpected, 0 mis-shaped tensors; missing: AuxLogits\.",
    ):
        load_state_dict_checked(models["v3-aux"], tensors, "tf.safetensors")


def test_module_prefix_is_stripped(models: dict, layouts: dict) -> None:
    tensors = _distinct_tensors(layouts["inception_v3"])
    notes, _ = load_state_dict_checked(models["v3"], {f"module.{k}": v for k, v in tensors.items()}, "dp.pth")
    assert notes == ["stripped the 'module.' prefix from 566 tensor names"]
    _assert_loaded(models["v3"], tensors)


def test_tf_1001_class_head_loses_background_row(models: dict, layouts: dict) -> None:
    tensors = _distinct_tensors(layouts["inception_v4"])
    tf = dict(tensors)
    tf["last_linear.weight"] = torch.cat([torch.full((1, 1536), 9.0), tensors["last_linear.weight"]])
    tf["last_linear.bias"] = torch.cat([torch.tensor([9.0]), tensors["last_linear.bias"]])
    notes, dropped = load_state_dict_checked(models["v4"], tf, "slim.pth")
    assert dropped
    assert notes == ["dropped background row 0 of a 1001-class head (last_linear)"]
    _assert_loaded(models["v4"], tensors)


def test_old_irv2_classifier_name_is_renamed(models: dict, layouts: dict) -> None:
    tensors = _distinct_tensors(layouts["inception_resnet_v2"])
    old = {k.replace("classif.", "last_linear."): v for k, v in tensors.items()}
    old["last_linear.weight"] = torch.cat([torch.zeros(1, 1536), old["last_linear.weight"]])
    old["last_linear.bias"] = torch.cat([torch.zeros(1), old["last_linear.bias"]])
    notes, dropped = load_state_dict_checked(models["irv2"], old, "old_port.pth")
    assert notes == [
        "renamed the classifier last_linear -> classif (older port)",
        "dropped background row 0 of a 1001-class head (classif)",
    ]
    assert dropped
    _assert_loaded(models["irv2"], tensors)


def test_missing_batchnorm_counters_are_filled(models: dict, layouts: dict) -> None:
    tensors = _distinct_tensors(layouts["inception_v4"])
    old = {k: v for k, v in tensors.items() if not k.endswith("num_batches_tracked")}
    notes, _ = load_state_dict_checked(models["v4"], old, "old.pth")
    counters = len(tensors) - len(old)
    assert counters == 149
    assert notes == [f"filled {counters} missing BatchNorm num_batches_tracked counters (unused in eval)"]
    _assert_loaded(models["v4"], {**old, **{k: torch.tensor(0) for k in tensors if k not in old}})


def test_half_precision_tensors_are_converted_and_noted(models: dict, layouts: dict) -> None:
    tensors = _distinct_tensors(layouts["inception_v3"])
    half = {k: v.div(1e4).half() if v.is_floating_point() else v for k, v in tensors.items()}
    notes, _ = load_state_dict_checked(models["v3"], half, "fp16.safetensors")
    floats = sum(1 for v in tensors.values() if v.is_floating_point())
    assert floats == 566 - 94
    assert notes == [f"converted {floats} tensors from torch.float16 to torch.float32"]
    _assert_loaded(models["v3"], {k: v.float() if v.is_floating_point() else v for k, v in half.items()})


def test_mismatch_is_one_line_with_counts_names_and_shapes_and_loads_nothing(
    models: dict, layouts: dict
) -> None:
    # Offset so that these values differ from any an earlier test loaded into the shared model.
    tensors = {
        k: v + 0.5 if v.is_floating_point() else v
        for k, v in _distinct_tensors(layouts["inception_v4"]).items()
    }
    del tensors["features.0.conv.weight"], tensors["features.0.bn.weight"]
    tensors["extra.weight"] = torch.zeros(3)
    tensors["last_linear.weight"] = torch.zeros(10, 1536)
    tensors["last_linear.bias"] = torch.zeros(10)
    kept = (
        "features.1.conv.weight",
        "features.21.branch2_3b.bn.running_var",
        "features.6.branch0.conv.weight",
    )
    before = {k: models["v4"].state_dict()[k].clone() for k in kept}
    with pytest.raises(InceValError) as info:
        load_state_dict_checked(models["v4"], tensors, "ckpt.pth")
    assert str(info.value) == (
        "checkpoint ckpt.pth does not fit v4: 2 missing, 1 unexpected, 2 mis-shaped tensors; "
        "missing: features.0.conv.weight, features.0.bn.weight; unexpected: extra.weight; "
        "mis-shaped: last_linear.weight (checkpoint (10, 1536) vs model (1000, 1536)), "
        "last_linear.bias (checkpoint (10,) vs model (1000,)); "
        "check the model name, num_classes and model options match the checkpoint"
    )
    after = models["v4"].state_dict()
    assert all(not torch.equal(tensors[k], before[k]) for k in kept)  # the file would change them
    assert all(torch.equal(before[k], after[k]) for k in kept)


def test_another_architecture_is_refused(models: dict, layouts: dict) -> None:
    tensors = _distinct_tensors(layouts["inception_resnet_v2"])
    with pytest.raises(InceValError) as info:
        load_state_dict_checked(models["v4"], tensors, "irv2.safetensors")
    message = str(info.value)
    assert message.startswith(
        "checkpoint irv2.safetensors does not fit v4: 896 missing, 1306 unexpected, 0 mis-shaped"
    )
    assert "(+893 more)" in message and "(+1303 more)" in message
    assert "\n" not in message


# --- reading files --------------------------------------------------------------------------------


def test_wrapped_state_dicts_are_unwrapped(tmp_path: Path) -> None:
    tensors = {"a.weight": torch.arange(3.0)}
    for key in ("state_dict", "model"):
        path = tmp_path / f"{key}.pth"
        torch.save({key: tensors, "epoch": 7}, path)
        assert read_state_dict(path).keys() == tensors.keys()
        assert torch.equal(read_state_dict(path)["a.weight"], tensors["a.weight"])


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InceValError, match=f"^checkpoint file not found: {tmp_path}/nope.pth$"):
        read_state_dict(tmp_path / "nope.pth")
    with pytest.raises(InceValError) as info:
        create_model("v3", tmp_path / "nope.pth")
    assert str(info.value) == (
        f"weights '{tmp_path}/nope.pth': no such checkpoint file; "
        "use 'random', 'pretrained' or the path of a .safetensors/.pth/.pt/.bin file"
    )


def test_directory_is_not_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(InceValError, match=f"^checkpoint path {tmp_path} is not a file"):
        read_state_dict(tmp_path)


def test_unsupported_extension(tmp_path: Path) -> None:
    path = tmp_path / "weights.ckpt"
    torch.save({"a": torch.zeros(1)}, path)
    with pytest.raises(InceValError) as info:
        read_state_dict(path)
    assert str(info.value) == (
        f"checkpoint {path}: unsupported file type '.ckpt'; use one of .safetensors, .pth, .pt, .bin"
    )


def test_truncated_safetensors(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_file({"a": torch.randn(64, 64)}, str(path))
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(InceValError) as info:
        read_state_dict(path)
    message = str(info.value)
    assert message.startswith(f"cannot read checkpoint {path}: not a valid safetensors file (")
    assert message.endswith("the file may be truncated, download or copy it again")
    assert "\n" not in message


@pytest.mark.parametrize("suffix", [".pth", ".pt", ".bin"])
def test_text_file_named_like_a_checkpoint(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"notes{suffix}"
    path.write_text("these are not weights\n")
    with pytest.raises(InceValError) as info:
        read_state_dict(path)
    message = str(info.value)
    assert message.startswith(f"cannot read checkpoint {path}: not a readable PyTorch file (")
    assert "\n" not in message


def test_pickled_module_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "whole_model.pt"
    torch.save(torch.nn.Linear(2, 2), path)
    with pytest.raises(InceValError) as info:
        read_state_dict(path)
    message = str(info.value)
    assert message.startswith(f"cannot read checkpoint {path}: it holds more than tensors (")
    assert message.endswith("save model.state_dict() instead of the model object")
    assert "\n" not in message


def test_content_that_is_not_a_state_dict(tmp_path: Path) -> None:
    mixed = tmp_path / "mixed.pth"
    torch.save({"epoch": 3, "lr": 0.1, "w": torch.zeros(1)}, mixed)
    with pytest.raises(InceValError) as info:
        read_state_dict(mixed)
    assert str(info.value) == (
        f"checkpoint {mixed} mixes non-tensor entries into its state dict (epoch, lr); expected only "
        "tensors, or tensors under one of the keys state_dict, model"
    )
    listed = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], listed)
    with pytest.raises(InceValError, match=r"holds no state dict \(list\); expected a mapping"):
        read_state_dict(listed)


# --- files through create_model -------------------------------------------------------------------


@pytest.fixture(scope="module")
def v3_source(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A seed-1 v3, its logits on a fixed batch, and its weights saved as safetensors."""
    model = create_model("v3", seed=1)
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(x)
    path = tmp_path_factory.mktemp("v3") / "v3.safetensors"
    save_file(model.state_dict(), str(path))
    return {"state": model.state_dict(), "x": x, "logits": logits, "safetensors": path}


def _logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


def test_default_random_model_differs_from_the_source(v3_source: dict) -> None:
    # Guards the round-trip tests below: loading must be what makes the logits equal.
    assert not torch.allclose(_logits(create_model("v3"), v3_source["x"]), v3_source["logits"])


def test_safetensors_round_trip_reproduces_logits(v3_source: dict) -> None:
    path = v3_source["safetensors"]
    model = create_model("v3", path)
    assert torch.equal(_logits(model, v3_source["x"]), v3_source["logits"])
    assert not model.training
    assert model.model_name == "v3"
    assert model.weights_info == {
        "source": "file",
        "tag": None,
        "path": str(path),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "seed": None,
        "notes": [
            "evaluation settings of the default weights inception_v3.tf_in1k; "
            "pass weights_tag if the file holds other weights"
        ],
        "dropped_background_row": False,
    }


def test_wrapped_prefixed_pth_round_trip_reproduces_logits(v3_source: dict, tmp_path: Path) -> None:
    path = tmp_path / "dp.pth"
    torch.save({"epoch": 90, "state_dict": {f"module.{k}": v for k, v in v3_source["state"].items()}}, path)
    model = create_model("v3", str(path), weights_tag="gluon_in1k")
    assert torch.equal(_logits(model, v3_source["x"]), v3_source["logits"])
    assert model.weights_info["notes"] == ["stripped the 'module.' prefix from 566 tensor names"]
    assert model.weights_info["tag"] == "inception_v3.gluon_in1k"
    assert model.eval_config.mean == IMAGENET_DEFAULT_MEAN


def test_1001_class_file_is_cut_and_reported(v3_source: dict, tmp_path: Path) -> None:
    state = dict(v3_source["state"])
    state["fc.weight"] = torch.cat([torch.ones(1, 2048), state["fc.weight"]])
    state["fc.bias"] = torch.cat([torch.full((1,), 50.0), state["fc.bias"]])
    path = tmp_path / "slim.bin"
    torch.save(state, path)
    model = create_model("v3", path)
    assert torch.equal(_logits(model, v3_source["x"]), v3_source["logits"])
    assert model.weights_info["dropped_background_row"] is True
    assert "dropped background row 0 of a 1001-class head (fc)" in model.weights_info["notes"]


def test_num_classes_mismatch_with_file(v3_source: dict) -> None:
    with pytest.raises(
        InceValError, match=r"mis-shaped: fc.weight \(checkpoint \(1000, 2048\) vs model \(10, 2048\)\)"
    ):
        create_model("v3", v3_source["safetensors"], num_classes=10)


# --- pretrained through the Hugging Face cache ----------------------------------------------------


def _build_hub_cache(cache: Path, repo: str, weights_file: Path) -> Path:
    """The layout huggingface_hub writes: blobs/<sha256>, snapshots/<commit>/<file> -> blob, refs/main."""
    root = cache / f"models--{repo.replace('/', '--')}"
    digest = hashlib.sha256(weights_file.read_bytes()).hexdigest()
    (root / "blobs").mkdir(parents=True)
    shutil.copyfile(weights_file, root / "blobs" / digest)
    (root / "snapshots" / SNAPSHOT).mkdir(parents=True)
    (root / "snapshots" / SNAPSHOT / "model.safetensors").symlink_to(f"../../blobs/{digest}")
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(SNAPSHOT)
    return root / "snapshots" / SNAPSHOT / "model.safetensors"


@pytest.fixture
def offline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def test_pretrained_loads_from_the_local_cache_offline(v3_source: dict, offline_cache: Path) -> None:
    cached = _build_hub_cache(offline_cache, "timm/inception_v3.tf_in1k", v3_source["safetensors"])
    model = create_model("inception_v3", "pretrained")
    assert torch.equal(_logits(model, v3_source["x"]), v3_source["logits"])
    info = model.weights_info
    assert (info["source"], info["tag"], info["seed"], info["notes"]) == (
        "pretrained",
        "inception_v3.tf_in1k",
        None,
        [],
    )
    assert Path(info["path"]) == cached
    assert info["sha256"] == hashlib.sha256(v3_source["safetensors"].read_bytes()).hexdigest()


def test_pretrained_honours_hf_hub_cache(
    v3_source: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "elsewhere"
    _build_hub_cache(cache, "timm/inception_v3.tv_in1k", v3_source["safetensors"])
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = create_model("v3", "pretrained", weights_tag="tv_in1k")
    assert model.weights_info["tag"] == "inception_v3.tv_in1k"
    assert str(cache) in model.weights_info["path"]


def test_pretrained_missing_offline_says_where_it_looked_and_what_to_do(offline_cache: Path) -> None:
    with pytest.raises(InceValError) as info:
        create_model("v3", "pretrained", weights_tag="tv_in1k")
    assert str(info.value) == (
        "pretrained weights inception_v3.tv_in1k are not available: "
        "timm/inception_v3.tv_in1k/model.safetensors is not in the Hugging Face cache "
        f"{offline_cache} and HF_HUB_OFFLINE is set; on a connected machine run "
        "`hf download timm/inception_v3.tv_in1k model.safetensors` and copy its cache to "
        f"{offline_cache} (or point HF_HOME/HF_HUB_CACHE at it), or pass the file with --weights PATH"
    )


def test_pretrained_download_failure_is_reported(
    offline_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub

    calls = []

    def unreachable(repo_id: str, filename: str, **kwargs: object) -> str:
        calls.append(kwargs.get("local_files_only", False))
        if kwargs.get("local_files_only"):
            raise huggingface_hub.errors.LocalEntryNotFoundError("not cached")
        raise OSError("[Errno -2] Name or service not known")

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", unreachable)
    with pytest.raises(InceValError) as info:
        create_model("v4", "pretrained")
    assert calls == [True, False]  # the cache first, then the network
    assert (
        f"is not in the Hugging Face cache {offline_cache} and download failed: [Errno -2] Name or service not known;"
        in str(info.value)
    )


def test_pretrained_downloads_when_not_cached(
    v3_source: dict, offline_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub

    def download(repo_id: str, filename: str, **kwargs: object) -> str:
        if kwargs.get("local_files_only"):
            raise huggingface_hub.errors.LocalEntryNotFoundError("not cached")
        assert (repo_id, filename, kwargs["cache_dir"]) == (
            "timm/inception_v3.tf_adv_in1k",
            "model.safetensors",
            offline_cache,
        )
        return str(v3_source["safetensors"])

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    model = create_model("v3", "pretrained", weights_tag="inception_v3.tf_adv_in1k")
    assert torch.equal(_logits(model, v3_source["x"]), v3_source["logits"])


def test_corrupt_cached_file_is_reported(offline_cache: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x00" * 100)
    cached = _build_hub_cache(offline_cache, "timm/inception_v4.tf_in1k", broken)
    with pytest.raises(InceValError, match=f"^cannot read checkpoint {cached}: not a valid safetensors file"):
        create_model("v4", "pretrained")


# --- random initialisation ------------------------------------------------------------------------


def test_random_is_deterministic_per_seed_and_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    first = create_model("v3", seed=5)
    after_build = torch.rand(4)
    torch.manual_seed(123)
    assert torch.equal(after_build, torch.rand(4))

    torch.manual_seed(999)  # a different global state must not change the weights
    second = create_model("v3", seed=5)
    third = create_model("v3", seed=6)
    a, b, c = first.state_dict(), second.state_dict(), third.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["Conv2d_1a_3x3.conv.weight"], c["Conv2d_1a_3x3.conv.weight"])
    assert not torch.equal(a["fc.weight"], c["fc.weight"])
    assert first.weights_info == {
        "source": "random",
        "tag": None,
        "path": None,
        "sha256": None,
        "seed": 5,
        "notes": [],
        "dropped_background_row": False,
    }


def test_random_with_a_tag_uses_its_eval_settings() -> None:
    model = create_model("v3", weights_tag="gluon_in1k")
    assert model.eval_config.mean == IMAGENET_DEFAULT_MEAN
    assert model.weights_info["tag"] == "inception_v3.gluon_in1k"
    assert not model.training


def test_bad_weights_argument_and_num_classes() -> None:
    with pytest.raises(InceValError, match=r"^weights must be 'random', 'pretrained' or a file path, got 3$"):
        create_model("v3", 3)
    with pytest.raises(InceValError, match=r"^num_classes must be a positive integer, got 0$"):
        create_model("v3", num_classes=0)
