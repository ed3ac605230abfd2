# hszhao/PSPNet (DeepLab-v2 based Caffe): no MATLAB .mat I/O (MatRead/MatWrite need libmatio), py3 pycaffe.
set -euo pipefail
sed -i 's/^USE_MATIO ?= 1/USE_MATIO ?= 0/' Makefile
rm -f src/caffe/layers/mat_read_layer.cpp src/caffe/layers/mat_write_layer.cpp src/caffe/util/matio_io.cpp
. "$PATCH_DIR/py3.sh"
