from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch

from recaffe import forks
from recaffe.layer import Blobs, Layer
from recaffe.layers.vision.shapes import require_4d
from recaffe.proto import caffe_pb2
from recaffe.registry import LAYERS


@LAYERS.register("Normalize", dialect="ssd")
@final
class NormalizeLayer(Layer):
    """SSD's Normalize: L2-normalizes each sample (or each spatial position) and scales it.

    Forward: y = s · x / ‖x‖, with ‖x‖ = sqrt(Σ x² + eps) over C×H×W of a sample
        (across_spatial) or over C at each position, and s the learned scale (one value, or one
        per channel).
    Backward: dx = s · (dy − x (x·dy) / ‖x‖²) / ‖x‖ ;  ds += Σ (y/s) · dy (per channel or all).
        With one scale per channel, dx is the fork's formula (s_c applied after the normalization's
        gradient of the raw dy), not the exact gradient of y; recaffe keeps the fork's.
    Params (norm_param): across_spatial=true, channel_shared=true, eps=1e-10,
        scale_filler (constant 1).
    Bottoms: x (N×C×H×W). Tops: y, shaped like x.
    In place: no.
    """

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1
    supports_in_place = False

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        p = forks.get_dialect("ssd").fork_param(self.param).norm_param
        require_4d(self, bottom[0])
        self.across_spatial, self.channel_shared, self.eps = p.across_spatial, p.channel_shared, p.eps
        if not self.blobs:
            filler = caffe_pb2.FillerParameter(type="constant", value=1.0)
            if p.HasField("scale_filler"):
                filler.ParseFromString(p.scale_filler.SerializeToString())
            # one shared scale is a 0-axis blob, as the fork makes it (and writes it to its caffemodels)
            self.blobs = [self.new_blob([] if self.channel_shared else [bottom[0].shape[1]], filler)]
        want = 1 if self.channel_shared else bottom[0].shape[1]
        if self.blobs[0].count() != want:
            raise self.error(f"scale blob has {self.blobs[0].count()} values, expected {want}")
        self.param_propagate_down = [True]
        self.norm: torch.Tensor | None = None

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        require_4d(self, bottom[0])
        top[0].reshape_like(bottom[0])

    def _scale(self) -> torch.Tensor:
        return self.blobs[0].data.view(1, -1, 1, 1)  # one value, or one per channel

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        x = bottom[0].data
        dims = (1, 2, 3) if self.across_spatial else (1,)
        self.norm = torch.sqrt(x.square().sum(dim=dims, keepdim=True) + self.eps)
        torch.mul(x / self.norm, self._scale(), out=top[0].data)

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        x, dy, y = bottom[0].data, top[0].diff, top[0].data
        norm = self.from_forward(self.norm, "the norms")
        if self.param_propagate_down[0]:
            prod = y * dy
            total = prod.sum() if self.channel_shared else prod.sum(dim=(0, 2, 3))
            self.blobs[0].diff.view(-1).add_(total.view(-1) / self.blobs[0].data.view(-1))
        if propagate_down[0]:
            dims = (1, 2, 3) if self.across_spatial else (1,)
            dot = (x * dy).sum(dim=dims, keepdim=True)
            dx = (dy - x * dot / norm.square()) / norm
            torch.mul(dx, self._scale(), out=bottom[0].diff)
