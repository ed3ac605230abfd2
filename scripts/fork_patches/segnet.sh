# alexgkendall/caffe-segnet (segnet-cleaned): build fixes for a 2015 Caffe.
set -euo pipefail
. "$PATCH_DIR/old_makefile.sh"
. "$PATCH_DIR/old_sources.sh"
. "$PATCH_DIR/py3.sh"
# OpenCV's C name CV_INTER_NN (the standard patch makes it cv::INTER_NN) is cv::INTER_NEAREST.
sed -i 's/cv::INTER_NN\b/cv::INTER_NEAREST/' src/caffe/util/io.cpp
