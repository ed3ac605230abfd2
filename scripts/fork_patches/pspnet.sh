# hszhao/PSPNet (DeepLab-v2 based Caffe): no MATLAB .mat I/O (MatRead/MatWrite need libmatio), py3 pycaffe.
set -euo pipefail
sed -i 's/^USE_MATIO ?= 1/USE_MATIO ?= 0/' Makefile
rm -f src/caffe/layers/mat_read_layer.cpp src/caffe/layers/mat_write_layer.cpp src/caffe/util/matio_io.cpp
. "$PATCH_DIR/py3.sh"
# DeepLab's interp.hpp includes cuBLAS unconditionally; a CPU-only build has no CUDA headers.
sed -i 's|^#include <cublas_v2.h>|#ifndef CPU_ONLY\n#include <cublas_v2.h>\n#endif|' include/caffe/util/interp.hpp
# ... and defines caffe_gpu_mosaic (calling the CUDA-only caffe_gpu_interp2) in the CPU file.
python3 - <<'PYEOF'
import re
path = "src/caffe/util/interp.cpp"
text = open(path).read()
start = text.index("template <typename Dtype, bool packed>\nvoid caffe_gpu_mosaic(")
end = text.index("\n}\n", start) + 3
text = text[:start] + "#ifndef CPU_ONLY\n" + text[start:end] + "#endif\n" + text[end:]
text = re.sub(r"((?:template void caffe_gpu_mosaic<[^\n]*\n)+)", r"#ifndef CPU_ONLY\n\1#endif\n", text)
open(path, "w").write(text)
PYEOF
