from __future__ import annotations

import logging
from typing import final

from recaffe.data.readers import ImageListReader, list_order, read_image_list
from recaffe.layer import Blobs
from recaffe.layers.data.base import BasePrefetchingDataLayer
from recaffe.registry import LAYERS

log = logging.getLogger(__name__)


@LAYERS.register("ImageData")
@final
class ImageDataLayer(BasePrefetchingDataLayer):
    """Images named in a list file, read like OpenCV reads them, transformed, with their labels.

    Each line of ``source`` is ``<path> <int label>``, split at the last space (paths may contain
    spaces); images are read from ``root_folder + path`` as BGR (or gray), resized bilinearly to
    ``new_height × new_width`` when both are set, and transformed by the DataTransformer. Each
    batch takes its shape from its first image. The list wraps around; with ``shuffle`` it is
    shuffled at setup and again at every wrap (``caffe::shuffle`` on the layer's own engine).
    Backward: none. Decoding notes (Pillow vs OpenCV): see ``recaffe.data.image``.
    Params (image_data_param): source, batch_size=1, root_folder="", shuffle=false,
        new_height=0, new_width=0 (both or neither), is_color=true, rand_skip=0 (start at
        ``rand() % rand_skip``). transform_param: see DataTransformer.
    Random draws at setup (main stream): InitRand word (discarded), shuffle-engine seed word (if
        shuffle), skip word (if rand_skip), InitRand word (used), prefetch-thread word.
    Bottoms: none.
    Tops: data (batch_size, C, H, W); label (batch_size,).
    In place: not applicable.
    """

    exact_num_top_blobs = 2

    def data_layer_setup(self, top: Blobs) -> ImageListReader:
        p = self.param.image_data_param
        if not ((p.new_height == 0 and p.new_width == 0) or (p.new_height > 0 and p.new_width > 0)):
            raise self.error(f"image_data_param.new_height and new_width must be set together, got "
                             f"{p.new_height} and {p.new_width}")
        batch_size = self.positive_batch_size(p.batch_size, "image_data_param")
        lines = read_image_list(p.source)
        order, shuffle_rng, start = list_order(
            len(lines), p.shuffle, p.rand_skip,
            lambda start: self.error(f"not enough images to skip {start} (rand_skip {p.rand_skip}, "
                                     f"{len(lines)} images)"))
        log.info("A total of %d images.", len(lines))
        reader = ImageListReader(lines, order, p, self.transformer, shuffle_rng, start)
        top[0].reshape((batch_size, *reader.item_shape()))
        top[1].reshape((batch_size,))
        return reader
