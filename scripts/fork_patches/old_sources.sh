# 2015 Caffe sources that gcc 12 rejects: std::max(float, double) in ContrastiveLoss.
sed -i 's/std::max(margin - sqrt(dist_sq_.cpu_data()\[i\]), 0.0)/std::max(margin - sqrt(dist_sq_.cpu_data()[i]), Dtype(0.0))/' \
  src/caffe/layers/contrastive_loss_layer.cpp
