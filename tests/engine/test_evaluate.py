"""End-to-end runs of the engine on a generated dataset whose every outcome is known in advance.

The colour stand-in (tests/engine/colour_standin.py) predicts each image's label at a designed rank,
so the top-1/top-5 errors of a correct run are fixed numbers, on all images and without the
blacklisted ones, whatever the crop protocol and whichever view loader renders the pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from inceval.data.datasets import load_val_dataset
from inceval.data.protocols import get_protocol
from inceval.engine import evaluate as evaluate_module
from inceval.engine.evaluate import evaluate, open_run
from inceval.engine.plan import plan_groups
from inceval.engine.progress import Progress
from inceval.errors import InceValError
from inceval.eval_config import EvalConfig
from inceval.models import get_eval_config
from inceval.store import RunReader
from tests.engine.colour_standin import ColourCodeNet, class_orders, write_colour_dataset
from tests.photos import write_photo_set

NUM_IMAGES = 40


@pytest.fixture(scope="module")
def orders() -> np.ndarray:
    return class_orders(seed=0)


@pytest.fixture(scope="module")
def colour_data(tmp_path_factory: pytest.TempPathFactory, orders: np.ndarray):
    return write_colour_dataset(tmp_path_factory.mktemp("colour"), orders, NUM_IMAGES)


def _load(data, **kwargs):
    return load_val_dataset(data.root, layout="list", labels_file=data.labels_file,
                            blacklist=data.blacklist_file, **kwargs)


def _run(run_dir: Path, models, protocols, dataset, **options):
    writer = open_run(run_dir, models, protocols, dataset, settings={"test": True})
    with writer:
        stats = evaluate(models, protocols, dataset, writer, device="cpu", workers=0, **options)
        writer.finish(stats.manifest_update())
    return stats, RunReader(run_dir)


def _check_expected(reader: RunReader, data, model: str, protocols: list[str]) -> None:
    """Every stored score equals the designed one exactly, and every image's top class too."""
    for protocol in protocols:
        full, clean = reader.score(model, protocol)
        for score, blacklist_free in ((full, False), (clean, True)):
            errors = data.expected_errors(blacklist_free=blacklist_free)
            counts = data.expected_counts(blacklist_free=blacklist_free)
            assert score.images == counts["images"]
            assert score.top1_wrong == counts["top1_wrong"]
            assert score.top5_wrong == counts["top5_wrong"]
            assert score.top1_error == errors[1]
            assert score.top5_error == errors[5]
        probs = np.asarray(reader.probabilities(model, protocol), dtype=np.float32)
        np.testing.assert_array_equal(probs.argmax(axis=1), data.top1_predictions)


def test_designed_dataset_has_all_three_outcomes(colour_data) -> None:
    # Guards the fixture itself: hits, top-5-only hits and misses on both subsets, and a
    # blacklist that changes the numbers (so a run that ignores it cannot pass).
    ranks, black = colour_data.ranks, colour_data.blacklisted
    for subset in (np.ones_like(black), ~black):
        r = ranks[subset]
        assert (r == 0).any() and ((r >= 1) & (r < 5)).any() and (r >= 5).any()
    assert colour_data.expected_errors(blacklist_free=False) != \
        colour_data.expected_errors(blacklist_free=True)
    assert colour_data.expected_errors(blacklist_free=False) == {1: 50.0, 5: 22.5}


@pytest.mark.parametrize("backend", ["torch", pytest.param("dali", marks=pytest.mark.dali)])
def test_reported_errors_equal_designed_values(tmp_path: Path, colour_data, orders,
                                               backend: str) -> None:
    dataset = _load(colour_data)
    assert len(dataset) == NUM_IMAGES and int(dataset.blacklisted.sum()) == 10
    model = ColourCodeNet(orders, input_size=32)
    stats, reader = _run(tmp_path / "run", [model], ["1", "12"], dataset, backend=backend,
                         batch_size=6, chunk_size=16)
    assert stats.images == NUM_IMAGES
    _check_expected(reader, colour_data, "colour", ["1", "12"])
    assert list(reader.images["path"]) == list(colour_data.names)
    np.testing.assert_array_equal(reader.labels, colour_data.labels)
    np.testing.assert_array_equal(reader.blacklisted, colour_data.blacklisted)
    assert reader.manifest["finished_at"] is not None


def test_union_of_protocols_is_computed_once_per_view(tmp_path: Path, colour_data, orders) -> None:
    dataset = _load(colour_data, limit=6)
    model = ColourCodeNet(orders, input_size=32)
    stats, reader = _run(tmp_path / "run", [model], ["1", "12", "144"], dataset,
                         backend="torch", batch_size=4, max_views_per_forward=50)
    entry = reader.manifest["models"]["colour"]
    # "12" is a subset of "144"; "1" (shorter side floor(32/0.875) = 36) is not among the 144
    # (shorter sides 37, 41, 46, 50), so the union has 145 views, not 1 + 12 + 144 = 157.
    assert entry["views_per_image"] == 145
    assert entry["views_per_image_by_protocol"] == {"1": 1, "12": 12, "144": 144}
    assert model.views_seen == 6 * 145
    assert model.calls == int(np.ceil(4 * 145 / 50)) + int(np.ceil(2 * 145 / 50))
    assert stats.views_per_image == {"colour": 145}
    assert len(reader.manifest["view_groups"][0]["views"]) == 145
    assert len(reader.manifest["protocols"]["144"]["views"]) == 144
    for protocol in ("1", "12", "144"):
        full, _ = reader.score("colour", protocol)
        assert full.images == 6


def test_union_at_299_pixels_has_145_views(orders) -> None:
    # The same count at the paper's input size, for a model with v4's evaluation settings.
    model = ColourCodeNet(orders, input_size=299)
    (group,) = plan_groups([model], [get_protocol(p) for p in ("1", "12", "144")])
    (member,) = group.members
    assert group.rendered_views_per_image == member.views_per_image == 145
    assert [len(i) for i in member.protocol_views] == [1, 12, 144]
    assert member.selection is None  # the only model computes the rendered views as they are


def test_v4_and_irv2_settings_render_146_views_at_299_pixels(orders) -> None:
    # Inception-v4 (crop_pct 0.875), Inception-ResNet-v2 (0.8975) and Inception-v3 with Gluon
    # weights (ImageNet mean/std) share one rendering: only the 1-crop views differ (shorter side
    # 341 vs 333); mean/std are applied by each model to the same uint8 pixels.
    models = []
    for name, tag in (("v4", None), ("irv2", None), ("v3", "gluon_in1k")):
        model = ColourCodeNet(orders, input_size=299, name=name)
        model.eval_config = get_eval_config(name, tag)
        models.append(model)
    assert len({m.eval_config for m in models}) == 3
    protocols = [get_protocol(p) for p in ("1", "12", "144")]
    (group,) = plan_groups(models, protocols)
    v4, irv2, v3 = group.members
    assert group.input_size == 299 and group.positions == (0, 1, 2)
    assert group.rendered_views_per_image == 146
    assert [m.views_per_image for m in group.members] == [145, 145, 145]
    assert [m.eval_config for m in group.members] == [m.eval_config for m in models]
    assert group.views[int(v4.protocol_views[0][0])].label == "s341 image centre"
    assert group.views[int(irv2.protocol_views[0][0])].label == "s333 image centre"
    for member, model in zip(group.members, models):
        for protocol, indices, computed in zip(protocols, member.protocol_views,
                                               member.computed_protocol_views):
            # Every protocol index points at exactly the view the model alone would use, and so
            # does the index into what the model computes.
            assert tuple(group.views[i] for i in indices) == protocol.resolve(model.eval_config)
            np.testing.assert_array_equal(member.selection[computed], indices)
        assert len(set(member.views.tolist())) == 145
    # Each model computes its own views in the order it would render them alone: v4 and v3 leave
    # out IRv2's 1-crop view, IRv2 computes its own first.
    np.testing.assert_array_equal(v4.selection, np.arange(145))
    np.testing.assert_array_equal(irv2.selection, [145, *range(1, 145)])
    np.testing.assert_array_equal(v3.selection, np.arange(145))


def test_models_of_one_input_size_share_rendered_views(tmp_path: Path, colour_data,
                                                       orders) -> None:
    dataset = _load(colour_data, limit=12)
    a = ColourCodeNet(orders, input_size=32, name="a")
    b = ColourCodeNet(orders, input_size=32, name="b")
    c = ColourCodeNet(orders, input_size=40, name="c")
    stats, reader = _run(tmp_path / "run", [a, c, b], ["1", "12"], dataset, backend="torch",
                         batch_size=5)
    groups = reader.manifest["view_groups"]
    assert [g["models"] for g in groups] == [["a", "b"], ["c"]]
    assert [g["input_size"] for g in groups] == [32, 40]
    assert [len(g["views"]) for g in groups] == [13, 13]
    assert stats.rendered_views == 12 * (13 + 13)
    assert stats.model_views == 12 * 13 * 3
    assert a.views_seen == b.views_seen == c.views_seen == 12 * 13
    expected = np.asarray(colour_data.top1_predictions[:12])
    for name in ("a", "b", "c"):
        for protocol in ("1", "12"):
            probs = np.asarray(reader.probabilities(name, protocol), dtype=np.float32)
            np.testing.assert_array_equal(probs.argmax(axis=1), expected)


def _counting_loader(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the views the loader really renders (images x views of every batch)."""
    rendered: list[int] = []
    make = evaluate_module._segment_source

    def loader(*args, **kwargs):
        source = make(*args, **kwargs)

        def counted(group, segments, known_bad):
            for batch in source(group, segments, known_bad):
                if batch.views is not None:
                    rendered.append(int(batch.views.shape[0] * batch.views.shape[1]))
                yield batch

        return counted

    monkeypatch.setattr(evaluate_module, "_segment_source", loader)
    return rendered


CROPS = ["1", "12", "144"]


def test_crop_pct_alone_does_not_split_a_view_group(tmp_path: Path, colour_data, orders,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # As Inception-v4 and Inception-ResNet-v2: the same input size, 1-crop views at shorter sides
    # floor(32 / 0.875) = 36 and floor(32 / 0.8975) = 35, the 144 (and 12) views identical.
    images = 6
    dataset = _load(colour_data, limit=images)
    rendered = _counting_loader(monkeypatch)
    v4 = ColourCodeNet(orders, input_size=32, name="v4like")
    irv2 = ColourCodeNet(orders, input_size=32, name="irv2like", crop_pct=0.8975)
    stats, reader = _run(tmp_path / "shared", [v4, irv2], CROPS, dataset, backend="torch",
                         batch_size=4, max_views_per_forward=50)

    assert sum(rendered) == stats.rendered_views == images * 146
    assert stats.model_views == images * 2 * 145
    assert stats.views_per_image == {"v4like": 145, "irv2like": 145}
    assert v4.views_seen == irv2.views_seen == images * 145
    # Each model's 145 views in forward calls of at most 50: batches of 4 and 2 images.
    assert v4.calls == irv2.calls == int(np.ceil(4 * 145 / 50)) + int(np.ceil(2 * 145 / 50))

    manifest = reader.manifest
    (group,) = manifest["view_groups"]
    assert group["models"] == ["v4like", "irv2like"] and group["input_size"] == 32
    assert len(group["views"]) == len(set(group["views"])) == 146
    for name, crop_pct, side in (("v4like", 0.875, 36), ("irv2like", 0.8975, 35)):
        entry = manifest["models"][name]
        assert entry["view_group"] == 0
        assert entry["views_per_image"] == 145
        assert entry["views_per_image_by_protocol"] == {"1": 1, "12": 12, "144": 144}
        assert entry["eval_config"]["crop_pct"] == crop_pct
        assert entry["eval_config"]["resize_size"] == side
        (one,) = group["protocol_views"][name]["1"]
        assert group["views"][one] == f"s{side} image centre"
    ours, theirs = group["protocol_views"]["v4like"], group["protocol_views"]["irv2like"]
    assert ours["12"] == theirs["12"] and ours["144"] == theirs["144"]
    assert set(ours["12"]) < set(ours["144"])
    assert manifest["protocols"]["1"]["views"] == ["s36 image centre"]

    # Each model alone stores the same rows, bit for bit.
    for name, crop_pct in (("v4like", 0.875), ("irv2like", 0.8975)):
        alone = ColourCodeNet(orders, input_size=32, name=name, crop_pct=crop_pct)
        rendered.clear()
        alone_stats, alone_reader = _run(tmp_path / name, [alone], CROPS, dataset,
                                         backend="torch", batch_size=4, max_views_per_forward=50)
        assert sum(rendered) == alone_stats.rendered_views == images * 145
        for protocol in CROPS:
            np.testing.assert_array_equal(np.asarray(reader.probabilities(name, protocol)),
                                          np.asarray(alone_reader.probabilities(name, protocol)))
        probs = np.asarray(reader.probabilities(name, "144"), dtype=np.float32)
        np.testing.assert_array_equal(probs.argmax(axis=1), colour_data.top1_predictions[:images])


class _PixelNet(torch.nn.Module):
    """A classifier whose every view gives other probabilities (the colour stand-in cannot tell
    views of a flat image apart), with the same weights whatever its evaluation settings."""

    def __init__(self, name: str, crop_pct: float) -> None:
        super().__init__()
        self.eval_config = EvalConfig(input_size=32, crop_pct=crop_pct, interpolation="bicubic")
        self.model_name = name
        self.weights_info = {"source": "stand-in", "tag": None, "path": None, "sha256": None}
        generator = torch.Generator().manual_seed(0)
        self.weight = torch.nn.Parameter(torch.randn(1000, 3 * 4 * 4, generator=generator))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)
        return 3.0 * features @ self.weight.T


@pytest.mark.parametrize("backend", ["torch", pytest.param("dali", marks=pytest.mark.dali)])
def test_shared_rendering_feeds_each_model_its_own_views(tmp_path: Path, backend: str) -> None:
    photos = write_photo_set(tmp_path / "photos")
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"{p.name} {i}\n" for i, p in enumerate(photos)))
    dataset = load_val_dataset(tmp_path / "photos", layout="list", labels_file=labels)
    crops = ["1", "12", "144"]

    def run(name: str, models: list[torch.nn.Module]) -> RunReader:
        _, reader = _run(tmp_path / name, models, crops, dataset, backend=backend,
                         batch_size=3, max_views_per_forward=64)
        return reader

    shared = run("shared", [_PixelNet("v4like", 0.875), _PixelNet("irv2like", 0.8975)])
    assert len(shared.manifest["view_groups"]) == 1
    for name, crop_pct in (("v4like", 0.875), ("irv2like", 0.8975)):
        alone = run(name, [_PixelNet(name, crop_pct)])
        for protocol in crops:
            np.testing.assert_array_equal(np.asarray(shared.probabilities(name, protocol)),
                                          np.asarray(alone.probabilities(name, protocol)))
    # Equal weights: equal rows where the views are equal, other rows where they differ, so a
    # model fed the other's 1-crop view (or any wrong view) fails the comparison above.
    for protocol in ("12", "144"):
        np.testing.assert_array_equal(np.asarray(shared.probabilities("v4like", protocol)),
                                      np.asarray(shared.probabilities("irv2like", protocol)))
    one = [np.asarray(shared.probabilities(name, "1"), dtype=np.float32)
           for name in ("v4like", "irv2like")]
    assert (np.abs(one[0] - one[1]).max(axis=1) > 1e-3).all()
    twelve = np.asarray(shared.probabilities("v4like", "12"), dtype=np.float32)
    assert (np.abs(twelve - np.asarray(shared.probabilities("v4like", "144"))).max(axis=1)
            > 1e-3).all()


def test_progress_reports_reach_the_totals(tmp_path: Path, colour_data, orders) -> None:
    dataset = _load(colour_data, limit=10)
    reports: list[Progress] = []
    _run(tmp_path / "run", [ColourCodeNet(orders)], ["12"], dataset, backend="torch",
         batch_size=3, chunk_size=4, max_views_per_forward=20, progress=reports.append)
    # Chunks of 4 images in batches of 3 (3+1, 3+1, 2) with 12 views each, forward calls of at
    # most 20 views: a report after every call (views) and at every batch end (images).
    assert [(r.images_done, r.views_done) for r in reports] == [
        (0, 20), (0, 36), (3, 36), (3, 48), (4, 48), (4, 68), (4, 84), (7, 84), (7, 96),
        (8, 96), (8, 116), (8, 120), (10, 120), (10, 120)]
    assert reports[-1].finished and not any(r.finished for r in reports[:-1])
    assert reports[-1].images_done == reports[-1].images_total == 10
    assert reports[-1].views_done == reports[-1].views_total == 10 * 12
    assert sorted({r.chunk for r in reports}) == [0, 1, 2] and reports[-1].chunks == 3


def test_strict_run_stops_at_an_undecodable_image_and_keeps_finished_chunks(
        tmp_path: Path, colour_data, orders) -> None:
    dataset = _load(colour_data, limit=10)
    bad = dataset.root / dataset.records[7].path
    original = bad.read_bytes()
    try:
        bad.write_bytes(b"not a jpeg")
        model = ColourCodeNet(orders)
        writer = open_run(tmp_path / "run", [model], ["1"], dataset)
        with pytest.raises(InceValError, match=dataset.records[7].path.rsplit("/", 1)[-1]):
            with writer:
                evaluate([model], ["1"], dataset, writer, backend="torch", device="cpu",
                         workers=0, batch_size=2, chunk_size=4, strict=True)
    finally:
        bad.write_bytes(original)
    reader = RunReader(tmp_path / "run")
    status = reader.status("colour", "1")
    assert status.rows_written == 4 and not status.complete  # chunk 0-3 done, 4-7 cut short
    assert sorted(p.name for p in (tmp_path / "run" / "chunks").iterdir()) == ["000000.json"]
    probs = np.asarray(reader.probabilities("colour", "1", allow_incomplete=True), np.float32)
    np.testing.assert_array_equal(probs.argmax(axis=1), colour_data.top1_predictions[:4])


def test_duplicate_model_names_are_refused(tmp_path: Path, colour_data, orders) -> None:
    dataset = _load(colour_data, limit=2)
    models = [ColourCodeNet(orders), ColourCodeNet(orders)]
    with pytest.raises(InceValError, match="model colour is listed twice"):
        open_run(tmp_path / "run", models, ["1"], dataset)


def test_a_model_without_eval_config_is_refused(tmp_path: Path, colour_data) -> None:
    dataset = _load(colour_data, limit=2)
    model = torch.nn.Linear(3, 3)
    model.model_name = "bare"
    with pytest.raises(InceValError, match="model bare has no eval_config"):
        open_run(tmp_path / "run", [model], ["1"], dataset)


def test_a_protocol_named_twice_is_refused(orders) -> None:
    with pytest.raises(InceValError, match="names protocol 12 twice"):
        plan_groups([ColourCodeNet(orders)], [get_protocol("12"), get_protocol("12")])


@pytest.mark.dali
def test_one_dali_pipeline_per_view_group_for_the_whole_run(tmp_path: Path, colour_data, orders,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    # 9 images in chunks of 3 (3 chunks), two input sizes (2 view groups): 2 pipelines, not 6.
    from inceval.data import pipeline

    builds: list[int] = []
    build = pipeline._build_graph

    def counted(layout, **kwargs):
        builds.append(kwargs["batch_size"])
        return build(layout, **kwargs)

    monkeypatch.setattr(pipeline, "_build_graph", counted)
    dataset = _load(colour_data, limit=9)
    small = ColourCodeNet(orders, input_size=32, name="small")
    large = ColourCodeNet(orders, input_size=40, name="large")
    stats, reader = _run(tmp_path / "run", [small, large], ["1", "12"], dataset, backend="dali",
                         batch_size=2, chunk_size=3)
    assert len(builds) == 2 and stats.pipeline_builds == 2
    assert stats.chunks_total == 3 and stats.chunks_computed == 3
    assert sorted(p.name for p in (reader.run_dir / "chunks").iterdir()) == [
        "000000.json", "000001.json", "000002.json"]
    for model in ("small", "large"):
        for protocol in ("1", "12"):
            probs = np.asarray(reader.probabilities(model, protocol), dtype=np.float32)
            np.testing.assert_array_equal(probs.argmax(axis=1), colour_data.top1_predictions[:9])
