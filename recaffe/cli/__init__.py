"""The ``recaffe`` / ``caffe`` command line: one module per subcommand group."""
