# rbgirshick/caffe-fast-rcnn (faster-rcnn branch, 2015): build fixes, and SmoothL1Loss / ROIPooling
# backward, which the fork implements only in CUDA, run from the fork's CUDA code on the CPU.
set -euo pipefail
. "$PATCH_DIR/old_makefile.sh"
. "$PATCH_DIR/old_sources.sh"
. "$PATCH_DIR/py3.sh"
python3 "$PATCH_DIR/cuda_to_cpu.py" src/caffe/layers/roi_pooling_layer.cu src/caffe/layers/smooth_L1_loss_layer.cu
