"""Dataset converters: MNIST and CIFAR-10 binaries (Caffe's examples), and the offline digits demo.

Every record is a raw Datum (uint8 CHW) with its label; records are committed every 1000.
"""

from __future__ import annotations

import logging
import os
import shutil

import numpy as np

from recaffe.data import DataError, db
from recaffe.data.datum import array_to_datum
from recaffe.data.image import resize_linear
from recaffe.rng import CaffeRNG
from recaffe.tools.progress import track

log = logging.getLogger(__name__)

CIFAR_RECORD = 1 + 3 * 32 * 32


def write_arrays(db_path: str, images: np.ndarray, labels: np.ndarray, backend: str = "lmdb",
                 key_digits: int = 8, desc: str = "convert") -> int:
    """Write (N, C, H, W) uint8 ``images`` with ``labels`` as Datums keyed ``%0<key_digits>d``."""
    with db.Writer(db_path, backend) as writer:
        for i in track(range(len(images)), len(images), desc):
            writer.put(f"{i:0{key_digits}d}", array_to_datum(images[i], int(labels[i])).SerializeToString())
        count = writer.count
    log.info("Processed %d files.", count)
    return count


def convert_mnist(image_file: str, label_file: str, db_path: str, backend: str = "lmdb") -> int:
    """MNIST idx files -> a database (examples/mnist/convert_mnist_data.cpp); returns the count."""
    images = _read_idx(image_file, 2051, "image")
    labels = _read_idx(label_file, 2049, "label")
    if len(images) != len(labels):
        raise DataError(
            f"{image_file!r} has {len(images)} images but {label_file!r} has {len(labels)} labels")
    log.info("A total of %d items. Rows: %d Cols: %d", len(images), *images.shape[1:])
    return write_arrays(db_path, images[:, None], labels.view(np.int8), backend, 8, "convert_mnist")


def _read_idx(path: str, magic: int, what: str) -> np.ndarray:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataError(f"unable to open the {what} file {path!r}: {e.strerror}") from e
    dims = 3 if magic == 2051 else 1
    header = np.frombuffer(raw[: 4 * (1 + dims)], dtype=">u4")
    if len(header) < 1 + dims or header[0] != magic:
        raise DataError(f"incorrect {what} file magic in {path!r} (expected {magic})")
    shape = tuple(int(d) for d in header[1:])
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 * (1 + dims))
    if body.size < int(np.prod(shape)):
        raise DataError(f"{path!r} is truncated: {body.size} bytes for {shape} items")
    return body[: int(np.prod(shape))].reshape(shape)


def convert_cifar10(input_folder: str, output_folder: str, db_type: str = "lmdb") -> tuple[int, int]:
    """CIFAR-10 binary batches -> ``cifar10_{train,test}_<db_type>`` (convert_cifar_data.cpp).

    Train: ``data_batch_1..5.bin`` in order; test: ``test_batch.bin``; keys ``%05d``. Each file may
    hold any whole number of 3073-byte records (Caffe assumes 10000).
    """
    splits = (("train", [f"data_batch_{i}.bin" for i in range(1, 6)]), ("test", ["test_batch.bin"]))
    inputs = [np.concatenate([_read_cifar(os.path.join(input_folder, name)) for name in files])
              for _, files in splits]  # every file is read before anything is written
    counts = []
    for (split, _), records in zip(splits, inputs):
        log.info("Writing %s data", "Training" if split == "train" else "Testing")
        counts.append(write_arrays(os.path.join(output_folder, f"cifar10_{split}_{db_type}"),
                                   records[:, 1:].reshape(-1, 3, 32, 32), records[:, 0].view(np.int8),
                                   db_type, 5, f"convert_cifar10 {split}"))
    return counts[0], counts[1]


def _read_cifar(path: str) -> np.ndarray:
    try:
        with open(path, "rb") as f:
            raw = np.frombuffer(f.read(), dtype=np.uint8)
    except OSError as e:
        raise DataError(f"unable to open the CIFAR-10 file {path!r}: {e.strerror}") from e
    if raw.size % CIFAR_RECORD:
        raise DataError(f"{path!r} is not a whole number of {CIFAR_RECORD}-byte CIFAR-10 records")
    return raw.reshape(-1, CIFAR_RECORD)


def convert_digits(out_dir: str, backend: str = "lmdb", train_size: int = 1500) -> tuple[int, int]:
    """scikit-learn's bundled 8x8 digits -> ``digits_{train,test}_<backend>`` in ``out_dir``.

    Each 8x8 image (values 0..16) is scaled to 0..255, resized bilinearly to 20x20 and centred in a
    28x28 frame, like MNIST, so MNIST's LeNet applies unchanged. The 1797 images are put in a fixed
    pseudo-random order (``CaffeRNG(1701).shuffle``) and split into ``train_size`` training and the
    rest test images, so every run gives the same databases, and databases already there are
    replaced (as Caffe's create_mnist.sh removes its own first: ``make demo`` can run again).
    Needs scikit-learn (``pip install recaffe[demo]``); nothing is downloaded.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise DataError("convert_digits needs scikit-learn: pip install recaffe[demo]") from e
    digits = load_digits()
    small = np.rint(digits.images * (255 / 16)).astype(np.uint8)
    frames = np.zeros((len(small), 1, 28, 28), dtype=np.uint8)
    for i, img in enumerate(small):
        frames[i, 0, 4:24, 4:24] = resize_linear(img[:, :, None], 20, 20)[:, :, 0]
    order = list(range(len(frames)))
    CaffeRNG(1701).shuffle(order)
    os.makedirs(out_dir, exist_ok=True)
    counts = []
    for split, index in (("train", order[:train_size]), ("test", order[train_size:])):
        path = os.path.join(out_dir, f"digits_{split}_{backend}")
        if os.path.isdir(path):
            log.info("Replacing %s", path)
            shutil.rmtree(path)
        counts.append(
            write_arrays(path, frames[index], digits.target[index], backend, 8, f"convert_digits {split}"))
    return counts[0], counts[1]
