"""One model applied to rendered views: normalise, forward in slices, softmax, average per protocol.

Averaging follows GoogLeNet (Szegedy et al. 2015a), which the paper cites for its protocols: the
softmax *probabilities* of a protocol's views are averaged, never the logits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from inceval.eval_config import EvalConfig
from inceval.models import autocast_context


class ModelRunner:
    """Scores the views of a batch of images with one model.

    Args:
        model: an eval-mode classifier; it is moved to ``device`` in place.
        eval_config: the model's preprocessing (mean/std of pixels scaled to [0, 1]).
        device: where the model runs.
        precision: ``"float32"``, ``"bfloat16"`` or ``"float16"`` (autocast for the forward).
        max_views_per_forward: the most views (images x views) in one forward call; bounds the
            activation memory of large multi-crop batches.
    """

    def __init__(self, model: nn.Module, eval_config: EvalConfig, device: torch.device,
                 precision: str, max_views_per_forward: int) -> None:
        if max_views_per_forward < 1:
            raise ValueError(f"max_views_per_forward must be positive, got {max_views_per_forward}")
        self.model = model.to(device).eval()
        self.device = device
        self.precision = precision
        self.max_views_per_forward = max_views_per_forward
        self._mean = torch.tensor(eval_config.mean, device=device).view(1, 3, 1, 1)
        self._std = torch.tensor(eval_config.std, device=device).view(1, 3, 1, 1)
        form = getattr(model, "inference_form", None) or {}
        self._channels_last = bool(form.get("channels_last", False))

    def probabilities(self, views: torch.Tensor,
                      on_views: Callable[[int], None] | None = None) -> torch.Tensor:
        """Softmax of every view.

        Args:
            views: uint8 of shape (B, N, 3, H, W), on any device.
            on_views: called with the number of views after each forward call.

        Returns:
            float32 of shape (B, N, classes) on the model's device.
        """
        if views.dtype != torch.uint8 or views.ndim != 5:
            raise ValueError(f"views must be uint8 (B, N, 3, H, W), got {views.dtype} "
                             f"{tuple(views.shape)}")
        b, n = views.shape[:2]
        flat = views.reshape(b * n, *views.shape[2:])
        out = []
        with torch.inference_mode(), autocast_context(self.device, self.precision):
            for start in range(0, flat.shape[0], self.max_views_per_forward):
                x = flat[start:start + self.max_views_per_forward].to(self.device)
                x = (x.to(torch.float32) / 255.0 - self._mean) / self._std
                if self._channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                out.append(torch.softmax(self.model(x).float(), dim=-1))
                if on_views is not None:
                    on_views(int(x.shape[0]))
        probs = torch.cat(out)
        return probs.view(b, n, probs.shape[-1])

    def protocol_probabilities(self, views: torch.Tensor, protocol_views: Sequence[np.ndarray],
                               on_views: Callable[[int], None] | None = None,
                               selection: np.ndarray | None = None) -> list[torch.Tensor]:
        """Per protocol, the mean softmax over its views.

        Args:
            views: uint8 (B, N, 3, H, W): the rendered views (of several models, maybe).
            protocol_views: per protocol, indices of its views along dimension 1 of the views the
                model computes: ``views``, or ``views[:, selection]`` when ``selection`` is given.
            on_views: called with the number of views after each forward call.
            selection: indices along dimension 1 of ``views`` of the views this model computes,
                each once; None to compute every rendered view.

        Returns:
            Per protocol, float32 (B, classes) on the CPU.
        """
        if selection is not None:
            index = torch.as_tensor(selection, dtype=torch.long, device=views.device)
            views = views.index_select(1, index)
        probs = self.probabilities(views, on_views)
        result = []
        for indices in protocol_views:
            index = torch.as_tensor(indices, dtype=torch.long, device=probs.device)
            result.append(probs.index_select(1, index).mean(dim=1).cpu())
        return result
