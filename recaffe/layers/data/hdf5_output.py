from __future__ import annotations

from collections.abc import Sequence
from typing import final

import h5py
import numpy as np

from recaffe import errors
from recaffe.blob import Blob
from recaffe.io import atomic
from recaffe.layer import Blobs, Layer
from recaffe.registry import LAYERS


@LAYERS.register("HDF5Output")
@final
class HDF5OutputLayer(Layer):
    """Writes its two bottoms to an HDF5 file as datasets "data" and "label".

    The file is created (truncated) at setup. Each forward stores bottom 0 and bottom 1, as 4-D
    (num, channels, height, width) arrays of the net's dtype, replacing what the previous forward
    wrote (Caffe would fail on its second forward, as the datasets already exist). Each version of
    the file is written whole and renamed into place (``recaffe.io.atomic``), so it can be read at
    any time and a killed run never leaves half of one. Backward: none.
    Params (hdf5_output_param): file_name.
    Bottoms: data (N, ...) and label (N, ...), each of at most 4 axes, with the same N.
    Tops: none.
    In place: not applicable.
    """

    exact_num_bottom_blobs = 2
    exact_num_top_blobs = 0

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        self.file_name = self.param.hdf5_output_param.file_name
        self._write({})

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        pass

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        data, label = (self._legacy_array(b, name) for b, name in zip(bottom, ("data", "label")))
        if data.shape[0] != label.shape[0]:
            raise self.error(f"data blob and label blob must have the same batch size, got "
                             f"{data.shape[0]} and {label.shape[0]}")
        self._write({"data": data, "label": label})

    def _write(self, datasets: dict[str, np.ndarray]) -> None:
        def write(path: str) -> None:
            with h5py.File(path, "w") as f:
                for name, values in datasets.items():
                    f.create_dataset(name, data=values)

        try:
            atomic.write_with(self.file_name, "HDF5 output file", write)
        except errors.FileWriteError as e:
            raise self.error(str(e)) from e

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        pass

    def _legacy_array(self, blob: Blob, name: str) -> np.ndarray:
        if blob.num_axes > 4:
            raise self.error(f"the {name} bottom must have at most 4 axes, got shape {blob.shape}")
        shape = tuple(blob.legacy_shape(i) for i in range(4))
        return blob.data.detach().cpu().numpy().reshape(shape)
