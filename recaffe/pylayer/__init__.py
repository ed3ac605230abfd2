"""What Python code sees of recaffe through pycaffe's API, and the host side of Python layers.

``blobs``: ``Blob``/``BlobVec``, numpy views of recaffe blobs (with host mirrors of device
blobs, written back by ``sync()``). ``base``: ``Layer``, the base class a Python layer derives
from (pycaffe's ``caffe.Layer``) and the view ``net.layers`` gives of built-in layers. The
``Python`` layer type (``recaffe.layers.utility.python``) runs user layers through them, and the
``caffe`` package re-exports them as pycaffe's API: recaffe never imports ``caffe``.
"""
