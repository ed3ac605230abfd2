# pycaffe of 2015/2016 forks: Python 2 dict iterators (net.forward() calls kwargs.iteritems()).
sed -i -e 's/\.iteritems()/.items()/g' -e 's/\.itervalues()/.values()/g' -e 's/\.iterkeys()/.keys()/g' \
  -e 's/\bxrange(/range(/g' python/caffe/*.py
