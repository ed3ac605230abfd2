"""Element-wise (neuron) layers."""

from recaffe.layers.neuron import relu  # noqa: F401
