"""Caffe's dataset tools as Python functions (also the ``recaffe``/``caffe`` CLI subcommands).

* ``convert_imageset``: images named in a list file -> a database of Datums.
* ``compute_image_mean``: a database -> its mean image (``.binaryproto``).
* ``extract_features``: a trained net's blobs -> databases of float Datums.
* ``convert_mnist`` / ``convert_cifar10``: the datasets' binary files -> databases.
* ``convert_digits``: scikit-learn's bundled handwritten digits -> MNIST-like databases (no
  download needed; the offline demo in ``examples/digits``).
"""
