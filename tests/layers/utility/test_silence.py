from __future__ import annotations

import torch

from recaffe.testing.layer_case import LayerCase


class TestSilence(LayerCase):
    layer_type = "Silence"
    bottom_shapes = [(2, 3), (4, 1, 2)]
    num_tops = 0

    def reference(self, bottoms, blobs, param):
        return ()


def test_backward_zeroes_only_the_diffs_asked_for() -> None:
    case = TestSilence()
    layer, bottom, top = case.build("", torch.float32)
    case.forward(layer, bottom, top)
    for blob in bottom:
        blob.diff.fill_(7.0)
    layer.run_backward(top, [False, True], bottom)
    assert bool((bottom[0].diff == 7.0).all())
    assert bool((bottom[1].diff == 0.0).all())
