"""Math shared by several layers: N-D im2col/convolution and Caffe's pooling windows."""
