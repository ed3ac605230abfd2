"""Reading and writing Caffe's data: databases, Datums, images, the DataTransformer, readers.

Layers in ``recaffe.layers.data`` and the dataset tools in ``recaffe.tools`` build on these
modules. Every problem with the data itself (a missing database, a corrupt record, an image
that cannot be read) raises ``DataError``; layers re-raise it with their own name.
"""

from recaffe.errors import RecaffeError


class DataError(RecaffeError, ValueError):
    """The data a layer or tool reads is missing or malformed; the message names the file or key."""
