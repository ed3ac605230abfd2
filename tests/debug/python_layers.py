"""Python layers the debugging tests load by module name (``tests.debug.python_layers``)."""

from __future__ import annotations

import numpy as np

import caffe


class InjectNaN(caffe.Layer):
    """top = bottom, except on forward call number N (``param_str`` "forward:N" or "backward:N"),
    when one NaN goes into the top data (forward) or the bottom diff (backward)."""

    def setup(self, bottom, top):
        where, at = self.param_str.split(":")
        self.where, self.at, self.calls = where, int(at), 0

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data
        if self.where == "forward" and self.calls == self.at:
            top[0].data.flat[0] = np.nan
        self.calls += 1

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = top[0].diff
        if self.where == "backward" and self.calls - 1 == self.at:
            bottom[0].diff.flat[0] = np.nan


class UnseededNoise(caffe.Layer):
    """top = bottom + small noise from numpy's global, unseeded generator (a reproducibility bug)."""

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        noise = np.random.uniform(-1e-3, 1e-3, size=bottom[0].data.shape)
        top[0].data[...] = bottom[0].data + noise.astype(np.float32)

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = top[0].diff
