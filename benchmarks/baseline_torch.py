"""The timm ``validate.py``-style evaluation loop, the baseline for inceval's throughput.

What timm's validation script does on a CPU, written here without timm or torchvision:

* a ``torch.utils.data.Dataset`` that opens each file with PIL and converts it to RGB;
* the eval transform of the weights: shorter side resized to ``floor(input / crop_pct)`` with the
  weights' interpolation (PIL, antialiased), centre crop of the input size (torchvision's
  rounding), to a float tensor in [0, 1], normalised with the weights' mean and std;
* a ``DataLoader`` with worker processes doing all of that, batches of float32 tensors;
* the model as built (BatchNorm not folded), in NCHW (timm's default) or channels_last (timm's
  ``--channels-last``, model and inputs), under ``torch.inference_mode``, then softmax.

Multi-crop protocols (12, 144 ...) are not in timm; here each image's views come from inceval's
own protocol geometry (:func:`inceval.data.views.plan_views`: which resizes, which boxes, which
mirrors), cut out with PIL in the same worker processes, and the softmax is averaged over the
views of each image, as inceval does. So the baseline computes exactly inceval's views, the
classic way.

    python benchmarks/baseline_torch.py --crops 12 --images 32 --channels-last

The comparison with inceval on the same images is benchmarks/compare.py.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from inceval.data.protocols import get_protocol  # noqa: E402
from inceval.data.views import ViewSpec, plan_views  # noqa: E402
from inceval.eval_config import EvalConfig  # noqa: E402

_PIL_FILTERS = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


def to_normalised_tensor(image: Image.Image, config: EvalConfig) -> torch.Tensor:
    """HWC uint8 RGB -> CHW float32 in [0, 1], then (x - mean) / std (ToTensor + Normalize)."""
    x = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).float()
    x = x.div_(255.0)
    mean = torch.tensor(config.mean).view(3, 1, 1)
    std = torch.tensor(config.std).view(3, 1, 1)
    return x.sub_(mean).div_(std)


def single_crop(image: Image.Image, config: EvalConfig) -> Image.Image:
    """timm's eval transform: shorter side to floor(input / crop_pct), centre crop of the input."""
    side = config.resize_size
    width, height = image.size
    if width <= height:
        size = (side, int(side * height / width))
    else:
        size = (int(side * width / height), side)
    image = image.resize(size, _PIL_FILTERS[config.interpolation])
    crop = config.input_size
    left = int(round((size[0] - crop) / 2.0))
    top = int(round((size[1] - crop) / 2.0))
    return image.crop((left, top, left + crop, top + crop))


def protocol_views(image: Image.Image, views: Sequence[ViewSpec]) -> list[Image.Image]:
    """inceval's view geometry, cut out with PIL: resize per stage, box, resize, mirror."""
    plan = plan_views(image.size[0], image.size[1], views)
    stages = []
    for stage in plan.stages:
        source = image
        if stage.roi is not None:
            y0, x0, y1, x1 = stage.roi
            source = image.crop((int(x0), int(y0), int(x1), int(y1)))
        stages.append(source.resize((stage.out_w, stage.out_h),
                                    _PIL_FILTERS[stage.interpolation.replace("tf1-", "")]))
    out = []
    for box in plan.views:
        stage = stages[box.stage]
        view = stage.crop((box.x, box.y, box.x + box.w, box.y + box.h))
        if (box.out_h, box.out_w) != (box.h, box.w):
            interpolation = plan.stages[box.stage].interpolation.replace("tf1-", "")
            view = view.resize((box.out_w, box.out_h), _PIL_FILTERS[interpolation])
        if box.mirror:
            view = view.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        out.append(view)
    return out


class ViewsDataset(torch.utils.data.Dataset):
    """Each item: all views of one image as float32 (N, 3, H, W), normalised.

    Args:
        paths: image files.
        protocol: ``"1"`` for timm's own transform, any other protocol name for its views.
        config: the weights' evaluation settings.
    """

    def __init__(self, paths: Sequence[Path], protocol: str, config: EvalConfig) -> None:
        self.paths = list(paths)
        self.protocol = protocol
        self.config = config
        self.views = None if protocol == "1" else get_protocol(protocol).resolve(config)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        with Image.open(self.paths[index]) as opened:
            image = opened.convert("RGB")
        if self.views is None:
            crops = [single_crop(image, self.config)]
        else:
            crops = protocol_views(image, self.views)
        return torch.stack([to_normalised_tensor(crop, self.config) for crop in crops])


def _forward(model: torch.nn.Module, batch: torch.Tensor, channels_last: bool) -> torch.Tensor:
    b, n = batch.shape[:2]
    x = batch.reshape(b * n, *batch.shape[2:])
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    probs = torch.softmax(model(x), dim=-1)
    return probs.view(b, n, -1).mean(dim=1)


def run_baseline(model: torch.nn.Module, paths: Sequence[Path], protocol: str,
                 config: EvalConfig, *, channels_last: bool, batch_size: int,
                 workers: int) -> dict[str, float]:
    """Time one epoch of the loop over ``paths`` (DataLoader start-up included).

    One batch runs first, untimed, through a separate loader, so that first-call costs of the
    model (kernel selection, allocation) stay out of the timing as they do for inceval's
    measurements.

    Returns:
        images, views, seconds, images_per_s, views_per_s.
    """
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.eval()
    dataset = ViewsDataset(paths, protocol, config)
    with torch.inference_mode():
        warm = torch.stack([dataset[i] for i in range(min(batch_size, len(dataset)))])
        _forward(model, warm, channels_last)
        start = time.perf_counter()
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False,
                                             num_workers=workers)
        images = views = 0
        for batch in loader:
            _forward(model, batch, channels_last)
            images += int(batch.shape[0])
            views += int(batch.shape[0] * batch.shape[1])
        seconds = time.perf_counter() - start
    return {"images": images, "views": views, "seconds": seconds,
            "images_per_s": images / seconds, "views_per_s": views / seconds}


def main(argv: list[str] | None = None) -> None:
    from inceval.bench.synthetic import write_synthetic_jpegs
    from inceval.models import create_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="v3")
    parser.add_argument("--crops", default="1", help="one protocol: 1, 12, 144 ...")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--input-size", type=int, default=None, help="reduced size (smoke tests)")
    args = parser.parse_args(argv)

    model = create_model(args.model, "random")
    config = model.eval_config
    if args.input_size:
        config = config.with_input_size(args.input_size)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_synthetic_jpegs(tmp, min(args.images, 64))
        paths = [paths[i % len(paths)] for i in range(args.images)]
        result = run_baseline(model, paths, args.crops, config, channels_last=args.channels_last,
                              batch_size=args.batch_size, workers=args.workers)
    result["channels_last"] = args.channels_last
    result["protocol"] = args.crops
    print(json.dumps({k: (round(v, 3) if isinstance(v, float) and math.isfinite(v) else v)
                      for k, v in result.items()}))


if __name__ == "__main__":
    main()
