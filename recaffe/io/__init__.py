"""Reading and writing Caffe's files: prototxt, caffemodel, binaryproto, HDF5, solverstate.

* ``prototxt``: text and binary protobuf files; errors name the file (and line:column for
  text). ``read_net_param`` / ``read_net_weights`` / ``read_solver_param`` apply Caffe's
  upgrades on every read, as Caffe's ``Read*ParamsFrom*FileOrDie`` do.
* ``upgrade``: UpgradeNetAsNeeded (input fields -> Input layer, BatchNorm params) and the
  solver upgrades; ``legacy``: the V0 -> V1 -> current net format upgrades.
* ``blobproto``: BlobProto <-> Blob/numpy with Caffe's legacy 4-D shape rules (ShapeEquals).
* ``binaryproto``: ``.binaryproto`` mean images (``read_mean`` / ``write_mean``).
* ``weights``: HDF5 weights (``Net.save_hdf5`` / ``Net.load_hdf5``).
* ``snapshot``: solver states, binary and HDF5, with recaffe's exact-resume record.
* ``h5``: HDF5 files read defensively (declared sizes checked before reading).
* ``atomic``: every file written to a temporary name, fsync'd and renamed into place.

Errors are ``recaffe.errors`` classes naming the file (see docs/reliability.md).

Large caffemodels: values reach protobuf as Python floats a small slice at a time, ``Net.save``
streams one layer at a time, and loading copies each blob out of the parsed message with one
numpy conversion. See ``benchmarks/caffemodel_io.py``.
"""
