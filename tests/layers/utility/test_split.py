from __future__ import annotations

from recaffe.testing.layer_case import LayerCase


class TestSplit(LayerCase):
    layer_type = "Split"
    bottom_shapes = [(2, 3, 4)]
    num_tops = 3

    def reference(self, bottoms, blobs, param):
        (x,) = bottoms
        return (x * 1, x * 1, x * 1)


def test_tops_share_the_bottom_data() -> None:
    case = TestSplit()
    layer, bottom, top = case.build("", __import__("torch").float32)
    bottom[0].data.fill_(3.0)
    assert all(float(t.data.min()) == 3.0 for t in top)
