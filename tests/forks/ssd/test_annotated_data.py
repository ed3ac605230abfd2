"""SSD's AnnotatedData layer, its augmentation (data_transformer.cpp, sampler.cpp, im_transforms.cpp)
and create_annoset, on the generated shapes dataset (bright shapes on a dark background)."""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np
import pytest
import torch

from recaffe import forks, rng
from recaffe.blob import Blob
from recaffe.data import DataError, crand, db
from recaffe.forks.ssd import augment
from recaffe.forks.ssd.annoset import create_annoset
from recaffe.forks.ssd.annotated_data import parse_annotated
from recaffe.forks.ssd.shapes import make_shapes, make_shapes_lmdb
from recaffe.io import prototxt
from recaffe.layer import LayerError
from recaffe.registry import LAYERS

SSD = forks.get_dialect("ssd")


@pytest.fixture(scope="module")
def shapes_lmdb(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_shapes_lmdb(str(tmp_path_factory.mktemp("shapes")), count=12, seed=3)


def data_layer(
    source: str, transform: str = "", extra: str = "", batch: int = 4, seed: int = 5
) -> tuple[Any, list[Blob]]:
    text = (
        f'name: "data" type: "AnnotatedData" top: "data" top: "label" transform_param {{ {transform} }} '
        f'data_param {{ source: "{source}" batch_size: {batch} backend: LMDB }} {extra}'
    )
    param = SSD.lower_layer(prototxt.parse_text(text, SSD.layer_parameter()))
    param.phase = 0
    rng.set_random_seed(seed)
    layer = LAYERS.get("AnnotatedData", "ssd")(param)
    top = [Blob(), Blob()]
    layer.setup([], top)
    return layer, top


def stored(source: str) -> list[Any]:
    database = db.open_db(source, "lmdb", "read")
    cursor, out = database.cursor(), []
    while cursor.valid:
        out.append(parse_annotated(cursor.value(), "record"))
        cursor.next()
    database.close()
    return out


def test_plain_batches_give_the_stored_boxes_and_pixels(shapes_lmdb: str) -> None:
    layer, top = data_layer(shapes_lmdb)
    layer.run_forward([], top)
    records = stored(shapes_lmdb)[:4]
    want = [
        [i, g.group_label, a.instance_id, a.bbox.xmin, a.bbox.ymin, a.bbox.xmax, a.bbox.ymax, 0]
        for i, r in enumerate(records)
        for g in r.annotation_group
        for a in g.annotation
    ]
    assert top[1].shape == (1, 1, len(want), 8)
    np.testing.assert_allclose(top[1].data.view(-1, 8).numpy(), np.array(want, dtype=np.float32))
    assert top[0].shape == (4, 3, 48, 48)
    assert float(top[0].data.max()) >= 120  # the shapes' colours, unscaled


def test_records_without_boxes_give_one_row_of_minus_one(tmp_path: pathlib.Path) -> None:
    make_shapes(str(tmp_path), count=2, seed=0)
    for f in (tmp_path / "labels").iterdir():
        f.unlink()
    create_annoset(f"{tmp_path}/", str(tmp_path / "list.txt"), str(tmp_path / "db"))
    layer, top = data_layer(str(tmp_path / "db"), batch=2)
    layer.run_forward([], top)
    assert top[1].data.view(-1).tolist() == [-1.0] * 8


AUGMENT = """mirror: true
  resize_param { resize_mode: WARP height: 40 width: 40 }
  emit_constraint { emit_type: CENTER }
  expand_param { prob: 0.7 max_expand_ratio: 2.5 }"""
SAMPLERS = """annotated_data_param {
  batch_sampler { max_sample: 1 max_trials: 1 }
  batch_sampler { sampler { min_scale: 0.3 max_scale: 1 min_aspect_ratio: 0.5 max_aspect_ratio: 2 }
                  sample_constraint { min_jaccard_overlap: 0.3 } max_sample: 1 max_trials: 50 }
  batch_sampler { sampler { min_scale: 0.3 max_scale: 1 min_aspect_ratio: 0.5 max_aspect_ratio: 2 }
                  sample_constraint { min_object_coverage: 0.9 } max_sample: 1 max_trials: 50 } }"""


def test_boxes_follow_the_pixels_through_expansion_sampling_mirror_and_resize(shapes_lmdb: str) -> None:
    layer, top = data_layer(shapes_lmdb, AUGMENT, SAMPLERS, batch=6)
    boxes_seen = 0
    for _ in range(4):
        layer.run_forward([], top)
        data, rows = top[0].data.numpy(), top[1].data.view(-1, 8).numpy()
        assert data.shape == (6, 3, 40, 40)
        for item, label, _, x0, y0, x1, y1, _ in rows:
            if item < 0:
                continue
            boxes_seen += 1
            cx, cy = (x0 + x1) / 2 * 40, (y0 + y1) / 2 * 40
            centre = data[int(item), :, int(cy), int(cx)]
            assert centre.max() >= 100, (label, x0, y0, x1, y1, centre)  # a shape, not the dark background
            assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
    assert boxes_seen > 20


def test_the_same_seed_gives_the_same_batches(shapes_lmdb: str) -> None:
    batches = []
    for _ in range(2):
        crand.PROCESS_RAND.rand()  # the process-wide rand() is not the layer's: no effect
        layer, top = data_layer(
            shapes_lmdb,
            AUGMENT + " distort_param { brightness_prob: 0.5 brightness_delta: 20 "
            "saturation_prob: 0.5 saturation_lower: 0.5 saturation_upper: 1.5 hue_prob: 0.5 "
            "hue_delta: 18 random_order_prob: 0.5 }",
            SAMPLERS,
            seed=11,
        )
        layer.run_forward([], top)
        layer.run_forward([], top)
        batches.append((top[0].data.clone(), top[1].data.clone()))
    assert torch.equal(batches[0][0], batches[1][0]) and torch.equal(batches[0][1], batches[1][1])
    layer, top = data_layer(shapes_lmdb, AUGMENT, SAMPLERS, seed=12)
    layer.run_forward([], top)
    layer.run_forward([], top)
    assert not torch.equal(top[1].data, batches[0][1]) or not torch.equal(top[0].data, batches[0][0])


def test_resume_point_restarts_the_same_batches(shapes_lmdb: str) -> None:
    from recaffe.proto import caffe_pb2

    shuffle = AUGMENT + " distort_param { random_order_prob: 0.5 }"
    layer, top = data_layer(shapes_lmdb, shuffle, SAMPLERS)
    layer.run_forward([], top)
    state = caffe_pb2.RecaffeDataState()
    layer.save_resume_state(state)
    layer.run_forward([], top)
    want = (top[0].data.clone(), top[1].data.clone())
    other, top2 = data_layer(shapes_lmdb, shuffle, SAMPLERS, seed=99)
    other.load_resume_state(state)
    other.run_forward([], top2)
    assert torch.equal(top2[0].data, want[0]) and torch.equal(top2[1].data, want[1])


def test_fit_large_size_and_pad_keeps_boxes_on_their_shapes(shapes_lmdb: str) -> None:
    layer, top = data_layer(
        shapes_lmdb,
        "resize_param { resize_mode: FIT_LARGE_SIZE_AND_PAD height: 30 width: 60 "
        "pad_value: 0 interp_mode: NEAREST }",
    )
    layer.run_forward([], top)
    data, rows = top[0].data.numpy(), top[1].data.view(-1, 8).numpy()
    assert data.shape == (4, 3, 30, 60)
    assert data[:, :, :, :15].max() == 0 and data[:, :, :, 45:].max() == 0  # the padding
    for item, _, _, x0, y0, x1, y1, _ in rows:
        assert data[int(item), :, int((y0 + y1) / 2 * 30), int((x0 + x1) / 2 * 60)].max() >= 120
        assert x0 >= 0.25 - 1e-6 and x1 <= 0.75 + 1e-6


def test_layer_errors_name_the_field(shapes_lmdb: str) -> None:
    with pytest.raises(LayerError, match="max_expand_ratio"):
        data_layer(shapes_lmdb, "expand_param { max_expand_ratio: 1 }")
    with pytest.raises(LayerError, match="crop_h"):
        data_layer(shapes_lmdb, "crop_h: 10")
    with pytest.raises(LayerError, match="resize_param"):
        data_layer(shapes_lmdb, "resize_param { height: 0 width: 20 }")


# ------------------------------------------------------------------------- the pieces
def test_emit_constraint_center_drops_boxes_whose_centre_is_cut_off() -> None:
    groups = [augment.Group(1, [augment.Box(0, 0.0, 0.0, 0.4, 0.4), augment.Box(1, 0.5, 0.5, 0.9, 0.9)])]
    emit = SSD.pb2.EmitConstraint()
    kept = augment.transform_groups(groups, (0.3, 0.3, 1.0, 1.0), False, emit)
    assert [b.instance_id for b in kept[0].boxes] == [1]
    moved = kept[0].boxes[0]
    assert (moved.xmin, moved.ymin) == pytest.approx((0.2 / 0.7, 0.2 / 0.7))
    kept = augment.transform_groups(groups, (0.3, 0.3, 1.0, 1.0), False, None)
    assert [b.instance_id for b in kept[0].boxes] == [0, 1]
    assert kept[0].boxes[0].xmax == pytest.approx(0.1 / 0.7)
    mirrored = augment.transform_groups(groups, (0.0, 0.0, 1.0, 1.0), True, None)
    assert (mirrored[0].boxes[0].xmin, mirrored[0].boxes[0].xmax) == pytest.approx((0.6, 1.0))


def test_samples_meet_their_constraints() -> None:
    objects = [augment.Group(1, [augment.Box(0, 0.2, 0.2, 0.5, 0.6)])]
    sampler = SSD.pb2.BatchSampler(max_trials=200)
    sampler.sampler.min_scale, sampler.sampler.max_aspect_ratio = 0.3, 2
    sampler.sample_constraint.min_jaccard_overlap = 0.5
    samples = augment.generate_samples(objects, [sampler], rng.CaffeRNG(4))
    assert samples
    assert all(augment.jaccard(s, (0.2, 0.2, 0.5, 0.6)) >= 0.5 for s in samples)
    assert all(0 <= s[0] < s[2] <= 1 + 1e-6 and 0 <= s[1] < s[3] <= 1 + 1e-6 for s in samples)
    sampler.max_sample = 2
    assert len(augment.generate_samples(objects, [sampler], rng.CaffeRNG(4))) == 2


def test_expansion_places_the_image_and_maps_the_boxes() -> None:
    img = np.full((10, 20, 3), 200, dtype=np.uint8)
    canvas, where = augment.expand_image(
        img, np.float32(2), np.array([1, 2, 3], dtype=np.uint8), rng.CaffeRNG(7)
    )
    assert canvas.shape == (20, 40, 3)
    w_off, h_off = round(-where[0] * 20), round(-where[1] * 10)
    assert (canvas[h_off : h_off + 10, w_off : w_off + 20] == 200).all()
    assert (canvas == 200).all(-1).sum() == 200 and (canvas[0, 0] == [1, 2, 3]).all() | (
        w_off == 0 and h_off == 0
    )
    groups = augment.transform_groups(
        [augment.Group(2, [augment.Box(0, 0.0, 0.0, 1.0, 1.0)])], where, False, None
    )
    box = groups[0].boxes[0]
    assert (box.xmin * 40, box.ymin * 20, box.xmax * 40, box.ymax * 20) == pytest.approx(
        (w_off, h_off, w_off + 20, h_off + 10), abs=1e-4
    )


@pytest.mark.parametrize("shape", [(16, 16), (37, 53), (16, 2), (3, 70)])
def test_hsv_conversions_equal_opencv(shape: tuple[int, int]) -> None:
    gen = np.random.default_rng(0)
    img = gen.integers(0, 256, size=(*shape, 3), dtype=np.uint8)
    back = augment.hsv_to_bgr(augment.bgr_to_hsv(img))
    assert np.abs(back.astype(int) - img.astype(int)).max() <= 8  # 8-bit HSV loses hue resolution
    cv2 = pytest.importorskip("cv2")
    np.testing.assert_array_equal(augment.bgr_to_hsv(img), cv2.cvtColor(img, cv2.COLOR_BGR2HSV))
    hsv = gen.integers(0, 256, size=(*shape, 3), dtype=np.uint8)  # H past 180 too, as after a hue shift
    np.testing.assert_array_equal(augment.hsv_to_bgr(hsv), cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR))


def test_create_annoset_reads_txt_and_voc_xml(tmp_path: pathlib.Path) -> None:
    make_shapes(str(tmp_path), count=1, seed=0)
    (tmp_path / "labels" / "0000.txt").write_text("2 4 8 20 24\n2 0 0 12 12\n1 10 10 30 30\n")
    (tmp_path / "labels" / "0000.xml").write_text(
        "<annotation><size><width>48</width><height>48</height></size>"
        "<object><name>disc</name><difficult>1</difficult><bndbox><xmin>4</xmin><ymin>8</ymin><xmax>20</xmax>"
        "<ymax>24</ymax></bndbox></object></annotation>"
    )
    (tmp_path / "xml.txt").write_text("images/0000.png labels/0000.xml\n")
    create_annoset(f"{tmp_path}/", str(tmp_path / "list.txt"), str(tmp_path / "txt_db"))
    [item] = stored(str(tmp_path / "txt_db"))
    assert [(g.group_label, [a.instance_id for a in g.annotation]) for g in item.annotation_group] == [
        (2, [0, 1]),
        (1, [0]),
    ]
    box = item.annotation_group[0].annotation[0].bbox
    assert (box.xmin, box.ymin, box.xmax, box.ymax) == pytest.approx((4 / 48, 8 / 48, 20 / 48, 24 / 48))
    assert item.datum.encoded
    create_annoset(
        f"{tmp_path}/",
        str(tmp_path / "xml.txt"),
        str(tmp_path / "xml_db"),
        label_type="xml",
        label_map_file=str(tmp_path / "labelmap.prototxt"),
    )
    [item] = stored(str(tmp_path / "xml_db"))
    assert item.annotation_group[0].group_label == 2 and item.annotation_group[0].annotation[0].bbox.difficult
    with pytest.raises(DataError, match="label_map_file"):
        create_annoset(f"{tmp_path}/", str(tmp_path / "xml.txt"), str(tmp_path / "x2"), label_type="xml")
    (tmp_path / "labels" / "0000.json").write_text(
        '{"image": {"width": 48, "height": 48}, "annotation": ['
        '{"category_id": 1, "bbox": [4, 8, 16, 16], "iscrowd": 1}, '
        '{"category_id": 2, "bbox": [0, 0, 10, 12]}]}'
    )
    (tmp_path / "json.txt").write_text("images/0000.png labels/0000.json\n")
    (tmp_path / "coco_map.prototxt").write_text('item { name: "1" label: 5 } item { name: "2" label: 7 }')
    create_annoset(f"{tmp_path}/", str(tmp_path / "json.txt"), str(tmp_path / "json_db"), label_type="json",
                   label_map_file=str(tmp_path / "coco_map.prototxt"))
    [item] = stored(str(tmp_path / "json_db"))
    assert [g.group_label for g in item.annotation_group] == [5, 7]
    box = item.annotation_group[0].annotation[0].bbox
    assert (box.xmin, box.ymin, box.xmax, box.ymax) == pytest.approx((4 / 48, 8 / 48, 20 / 48, 24 / 48))
    assert box.difficult and not item.annotation_group[1].annotation[0].bbox.difficult


def test_shapes_dataset_is_deterministic(tmp_path: pathlib.Path) -> None:
    make_shapes(str(tmp_path / "a"), count=3, seed=2)
    make_shapes(str(tmp_path / "b"), count=3, seed=2)
    for path in sorted((tmp_path / "a").rglob("*.*")):
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes()


@pytest.mark.parametrize("size", [(20, 30), (41, 67), (30, 70)])
def test_resize_modes_are_within_a_grey_level_of_opencv(size: tuple[int, int]) -> None:
    cv2 = pytest.importorskip("cv2")
    img = np.random.default_rng(1).integers(0, 256, size=(37, 53, 3), dtype=np.uint8)
    flags = {
        1: cv2.INTER_LINEAR,
        2: cv2.INTER_AREA,
        3: cv2.INTER_NEAREST,
        4: cv2.INTER_CUBIC,
        5: cv2.INTER_LANCZOS4,
    }
    for mode, flag in flags.items():
        mine = augment.resize_to(img, *size, mode).astype(int)
        theirs = cv2.resize(img, size[::-1], interpolation=flag).astype(int)
        assert np.abs(mine - theirs).max() <= (0 if mode == 3 else 1), augment.INTERP_NAMES[mode]


def _sampler(constraint: str) -> str:
    return (
        "batch_sampler { sampler { min_scale: 0.3 max_scale: 1 min_aspect_ratio: 0.5 max_aspect_ratio: 2 } "
        f"sample_constraint {{ {constraint} }} max_sample: 1 max_trials: 50 }}"
    )


def test_the_ssd_pascal_recipe_runs(shapes_lmdb: str) -> None:
    """The augmentation ssd_pascal.py (and MobileNet-SSD) train with: every interp mode, the full
    distortion, 4x expansion and the seven batch samplers."""
    transform = """mirror: true mean_value: 104 mean_value: 117 mean_value: 123
      resize_param { prob: 1 resize_mode: WARP height: 64 width: 64 interp_mode: LINEAR interp_mode: AREA
                     interp_mode: NEAREST interp_mode: CUBIC interp_mode: LANCZOS4 }
      emit_constraint { emit_type: CENTER }
      distort_param { brightness_prob: 0.5 brightness_delta: 32 contrast_prob: 0.5
                      contrast_lower: 0.5 contrast_upper: 1.5 hue_prob: 0.5 hue_delta: 18
                      saturation_prob: 0.5 saturation_lower: 0.5 saturation_upper: 1.5
                      random_order_prob: 0.0 }
      expand_param { prob: 0.5 max_expand_ratio: 4.0 }"""
    samplers = " ".join(
        ["batch_sampler { max_sample: 1 max_trials: 1 }"]
        + [_sampler(f"min_jaccard_overlap: {t}") for t in (0.1, 0.3, 0.5, 0.7, 0.9)]
        + [_sampler("max_jaccard_overlap: 1.0")]
    )
    layer, top = data_layer(
        shapes_lmdb, transform, f'annotated_data_param {{ {samplers} label_map_file: "x" }}', batch=6
    )
    for _ in range(3):
        layer.run_forward([], top)
        assert top[0].shape == (6, 3, 64, 64)
        rows = top[1].data.view(-1, 8)
        assert bool(((rows[:, 3:7] >= 0) & (rows[:, 3:7] <= 1)).all()) or bool((rows == -1).all())


def test_fit_small_size_scales_extrapolate_the_boxes(shapes_lmdb: str) -> None:
    resize = (
        "resize_param { resize_mode: FIT_SMALL_SIZE height: 40 width: 40 height_scale: 20 width_scale: 20 }"
    )
    plain, top_plain = data_layer(
        shapes_lmdb, resize.replace(" height_scale: 20 width_scale: 20", ""), batch=1
    )
    plain.run_forward([], top_plain)
    layer, top = data_layer(shapes_lmdb, resize, batch=1)
    layer.run_forward([], top)
    assert top[0].shape == (1, 3, 40, 40)  # square images: both sides fit
    np.testing.assert_allclose(
        top[1].data[..., 3:7].numpy(), 2 * top_plain[1].data[..., 3:7].numpy(), rtol=1e-6
    )
    with pytest.raises(LayerError, match="batch_size 1"):
        data_layer(shapes_lmdb, resize, batch=2)


def test_fit_small_size_batches_take_each_sampled_items_shape(shapes_lmdb: str) -> None:
    layer, top = data_layer(shapes_lmdb, "resize_param { resize_mode: FIT_SMALL_SIZE height: 30 width: 30 }",
                            SAMPLERS, batch=1)
    shapes = set()
    for _ in range(8):
        layer.run_forward([], top)
        shapes.add(top[0].shape)
        assert min(top[0].shape[2:]) == 30
    assert len(shapes) > 1  # sampled crops of other aspect ratios keep theirs
