"""Caffe's GradientChecker: layer backward against central differences, in float64.

The objective is ``½ Σ top²`` over the checked tops (Caffe's whole-blob mode), so the analytic
gradient comes from one backward with ``top.diff = top.data``. Each element ``x`` of a checked
blob is perturbed by ``± stepsize``; the layer passes when
``|analytic − numeric| ≤ threshold · max(|analytic|, |numeric|, 1)``, skipping inputs within
``kink ± kink_range`` (non-differentiable points). The random stream is reseeded before every
forward, as Caffe's checker does, so stochastic layers (Dropout) draw the same mask each time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recaffe import rng
from recaffe.blob import Blob
from recaffe.layer import Layer

SEED = 1701


@dataclass
class GradientChecker:
    stepsize: float = 1e-3
    threshold: float = 1e-3
    kink: float = 0.0
    kink_range: float = -1.0
    max_checks_per_blob: int = 400

    def check(
        self,
        layer: Layer,
        bottom: Sequence[Blob],
        top: Sequence[Blob],
        check_bottoms: Sequence[int],
        check_tops: Sequence[int] | None = None,
        check_params: bool = True,
    ) -> None:
        """Raise AssertionError naming the first element whose gradients disagree."""
        tops = list(range(len(top))) if check_tops is None else list(check_tops)
        targets: list[tuple[str, Blob]] = []
        if check_params:
            for i, blob in enumerate(layer.blobs):
                if i < len(layer.param_propagate_down) and layer.param_propagate_down[i]:
                    blob.diff.zero_()
                    targets.append((f"param {i}", blob))
        targets += [(f"bottom {i}", bottom[i]) for i in check_bottoms]
        propagate_down = [i in check_bottoms for i in range(len(bottom))]

        self._objective(layer, bottom, top, tops, set_diff=True)
        layer.run_backward(top, propagate_down, bottom)
        analytic = [blob.diff.clone() for _, blob in targets]
        for (what, blob), computed in zip(targets, analytic):
            flat, grads = blob.data.view(-1), computed.view(-1)
            for j in self._indices(blob.count()):
                x = float(flat[j])
                if self.kink - self.kink_range <= abs(x) <= self.kink + self.kink_range:
                    continue
                flat[j] = x + self.stepsize
                plus = self._objective(layer, bottom, top, tops)
                flat[j] = x - self.stepsize
                minus = self._objective(layer, bottom, top, tops)
                flat[j] = x
                numeric = (plus - minus) / (2 * self.stepsize)
                a = float(grads[j])
                scale = max(abs(a), abs(numeric), 1.0)
                if abs(a - numeric) > self.threshold * scale:
                    raise AssertionError(
                        f"{layer.describe()}: gradient of {what} element {j} (value {x:.6g}): "
                        f"analytic {a:.8g} vs numeric {numeric:.8g} "
                        f"(threshold {self.threshold} x {scale:.3g})"
                    )

    def _indices(self, count: int) -> Sequence[int]:
        if count <= self.max_checks_per_blob:
            return range(count)
        picks = np.random.default_rng(count).choice(count, self.max_checks_per_blob, replace=False)
        return sorted(int(i) for i in picks)

    @staticmethod
    def _objective(
        layer: Layer, bottom: Sequence[Blob], top: Sequence[Blob], tops: Sequence[int],
        set_diff: bool = False,
    ) -> float:
        rng.set_random_seed(SEED)
        layer.run_forward(bottom, top)
        total = 0.0
        for i in tops:
            total += float((top[i].data.double() ** 2).sum()) / 2
            if set_diff:
                top[i].diff.copy_(top[i].data)
        if set_diff:  # tops outside the objective contribute no gradient
            for i in set(range(len(top))) - set(tops):
                top[i].diff.zero_()
        return total
