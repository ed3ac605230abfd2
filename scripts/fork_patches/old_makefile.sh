# Makefiles from before BVLC's OPENCV_VERSION/USE_OPENCV switches: Makefile.config's python libraries
# must win, and OpenCV >= 3 keeps imread in opencv_imgcodecs.
sed -i 's/^PYTHON_LIBRARIES := boost_python python2.7/PYTHON_LIBRARIES ?= boost_python python2.7/' Makefile
sed -i -E 's/^(\s+opencv_core opencv_highgui opencv_imgproc)\s*$/\1 opencv_imgcodecs/' Makefile
grep -q 'opencv_imgcodecs' Makefile
