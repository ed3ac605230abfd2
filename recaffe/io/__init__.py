"""Reading and writing Caffe's files: prototxt, caffemodel, binaryproto, HDF5, solverstate."""
