from __future__ import annotations

import logging
from typing import final

from recaffe import rng
from recaffe.data.windows import WindowSampler, read_window_file
from recaffe.layer import Blobs
from recaffe.layers.data.base import BasePrefetchingDataLayer
from recaffe.registry import LAYERS

log = logging.getLogger(__name__)


@LAYERS.register("WindowData")
@final
class WindowDataLayer(BasePrefetchingDataLayer):
    """R-CNN training windows: boxes cut from images, warped to crop_size, with their classes.

    Reads the window file (format and sampling: ``recaffe.data.windows``), then each batch holds
    ``batch_size - int(batch_size * fg_fraction)`` background windows (label 0) followed by
    foreground ones, drawn uniformly with the layer's own engine, optionally grown by
    ``context_pad`` (and squared), warped bilinearly (OpenCV-like, see ``recaffe.data.image``),
    mirrored at random, mean-subtracted and scaled. Backward: none.
    Params (window_data_param): source, batch_size, root_folder="", scale=1 (this one, not
        transform_param.scale), fg_threshold=0.5, bg_threshold=0.5, fg_fraction=0.25, context_pad=0,
        crop_mode="warp" or "square", cache_images=false (keep the files' bytes in memory).
        transform_param: crop_size (required), mirror, mean_file or mean_value.
    Random draws at setup (main stream): InitRand word (discarded), the sampling engine's seed
        word, InitRand word, prefetch-thread word.
    Bottoms: none.
    Tops: data (batch_size, C, crop_size, crop_size), C from the window file; label (batch_size,).
    In place: not applicable.
    """

    exact_num_top_blobs = 2

    def data_layer_setup(self, top: Blobs) -> WindowSampler:
        p, t = self.param.window_data_param, self.param.transform_param
        if t.crop_size <= 0:
            raise self.error(f"WindowData needs transform_param.crop_size > 0, got {t.crop_size}")
        engine = rng.CaffeRNG(rng.get_rng().rand())  # Caffe seeds it when mirror or crop_size is set
        batch_size = self.positive_batch_size(p.batch_size, "window_data_param")
        if 2 * p.context_pad >= t.crop_size:
            raise self.error(f"context_pad {p.context_pad} leaves nothing of crop_size {t.crop_size}")
        if p.crop_mode not in ("warp", "square"):
            raise self.error(f"crop_mode must be 'warp' or 'square', got {p.crop_mode!r}")
        windows = read_window_file(p.source, p)
        if not windows.foreground or not windows.background:
            raise self.error(f"the window file {p.source!r} needs foreground and background windows, got "
                             f"{len(windows.foreground)} and {len(windows.background)}")
        log.info("%d images, %d foreground and %d background windows", len(windows.images),
                 len(windows.foreground), len(windows.background))
        channels = windows.images[-1][1][0]
        self.transformer.check_mean_values(channels)  # a DataError, raised as this layer's error
        top[0].reshape((batch_size, channels, t.crop_size, t.crop_size))
        top[1].reshape((batch_size,))
        return WindowSampler(windows, p, self.transformer, channels, engine)
