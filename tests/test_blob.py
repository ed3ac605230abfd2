"""Blob: shapes, Caffe's capacity rule, sharing, legacy accessors and the small math helpers."""

from __future__ import annotations

import threading

import pytest
import torch

from recaffe.blob import MAX_BLOB_AXES, Blob


def test_default_blob_is_empty() -> None:
    blob = Blob()
    assert blob.shape == () and blob.num_axes == 0
    assert blob.count() == 0
    assert blob.shape_string() == " (0)"


def test_preshaped_blob_is_zero_filled() -> None:
    blob = Blob((2, 3, 4, 5))
    assert (blob.num, blob.channels, blob.height, blob.width) == (2, 3, 4, 5)
    assert blob.count() == 120
    assert blob.data.shape == (2, 3, 4, 5) and blob.diff.shape == (2, 3, 4, 5)
    assert torch.count_nonzero(blob.data) == 0 and torch.count_nonzero(blob.diff) == 0
    assert blob.dtype == torch.float32 and blob.device == torch.device("cpu")


def test_scalar_blob_has_one_element() -> None:
    blob = Blob(())
    assert blob.num_axes == 0 and blob.count() == 1
    assert blob.data.shape == ()


def test_dtype_is_kept() -> None:
    blob = Blob((2,), dtype=torch.float64)
    assert blob.data.dtype == torch.float64 and blob.diff.dtype == torch.float64


def test_reshape_accepts_dims_or_a_sequence() -> None:
    blob = Blob()
    blob.reshape(2, 3, 4, 5)
    assert blob.shape == (2, 3, 4, 5) and blob.count() == 120
    blob.reshape([6, 20])
    assert blob.shape == (6, 20)
    blob.reshape((3,))
    assert blob.shape == (3,)


def test_reshape_with_a_zero_dim() -> None:
    blob = Blob()
    blob.reshape((0, 5))
    assert blob.count() == 0
    assert blob.data.shape == (0, 5)
    assert blob.shape_string() == "0 5 (0)"


def test_reshape_rejects_negative_dims_and_too_many_axes() -> None:
    with pytest.raises(ValueError, match="negative dimension"):
        Blob((2, -1))
    with pytest.raises(ValueError, match=f"at most {MAX_BLOB_AXES} axes"):
        Blob((1,) * (MAX_BLOB_AXES + 1))
    Blob((1,) * MAX_BLOB_AXES)  # the limit itself is fine


def test_shrinking_keeps_memory_and_contents() -> None:
    blob = Blob((2, 3))
    blob.data.copy_(torch.arange(6.0).view(2, 3))
    pointer = blob.data.data_ptr()
    blob.reshape((4,))
    assert blob.data.data_ptr() == pointer
    assert blob.data.tolist() == [0.0, 1.0, 2.0, 3.0]
    blob.reshape((3, 2))  # back up to the capacity: still the same memory
    assert blob.data.data_ptr() == pointer
    assert blob.data.reshape(-1).tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]


def test_growing_past_capacity_gives_fresh_zeros() -> None:
    blob = Blob((2, 3))
    blob.data.fill_(1.0)
    blob.diff.fill_(1.0)
    blob.reshape((7,))
    assert torch.count_nonzero(blob.data) == 0 and torch.count_nonzero(blob.diff) == 0


def test_reshape_like() -> None:
    blob = Blob()
    blob.reshape_like(Blob((3, 1, 2)))
    assert blob.shape == (3, 1, 2)


def test_count_of_axis_ranges() -> None:
    blob = Blob((2, 3, 4, 5))
    assert blob.count(1) == 60
    assert blob.count(1, 3) == 12
    assert blob.count(0, 0) == 1
    assert blob.count(4) == 1


def test_share_data_and_share_diff() -> None:
    a, b = Blob((2, 3)), Blob((6,))
    b.share_data(a)
    a.data.fill_(2.0)
    assert b.data.tolist() == [2.0] * 6
    assert torch.count_nonzero(b.diff) == 0  # only the data is shared
    b.share_diff(a)
    b.diff.fill_(5.0)
    assert a.diff.reshape(-1).tolist() == [5.0] * 6


def test_sharing_needs_equal_counts() -> None:
    with pytest.raises(ValueError, match="between blobs of 6 and 5 elements"):
        Blob((2, 3)).share_data(Blob((5,)))
    with pytest.raises(ValueError, match="between blobs of 6 and 5 elements"):
        Blob((2, 3)).share_diff(Blob((5,)))


def test_legacy_accessors_fill_missing_axes_with_one() -> None:
    blob = Blob((3, 2))
    assert (blob.num, blob.channels, blob.height, blob.width) == (3, 2, 1, 1)
    assert blob.legacy_shape(-1) == 2 and blob.legacy_shape(-3) == 1


def test_legacy_accessors_need_at_most_four_axes() -> None:
    blob = Blob((2, 3, 4, 5, 6))
    for accessor in ("num", "channels", "height", "width"):
        with pytest.raises(ValueError, match="at most 4 axes"):
            getattr(blob, accessor)
    assert blob.shape_at(4) == 6  # the N-D accessors still work


def test_canonical_axis() -> None:
    blob = Blob((2, 3, 4, 5))
    assert [blob.canonical_axis(a) for a in (0, 3, -1, -4)] == [0, 3, 3, 0]
    assert blob.shape_at(-1) == 5
    for axis in (4, -5):
        with pytest.raises(ValueError, match=f"axis {axis} out of range for a 4-D blob"):
            blob.canonical_axis(axis)


def test_copy_from_data_and_diff() -> None:
    source, target = Blob((2, 3)), Blob((2, 3))
    source.data.copy_(torch.arange(6.0).view(2, 3))
    source.diff.fill_(-1.0)
    target.copy_from(source)
    assert torch.equal(target.data, source.data)
    assert torch.count_nonzero(target.diff) == 0
    target.copy_from(source, copy_diff=True)
    assert torch.equal(target.diff, source.diff)
    source.data.fill_(9.0)
    assert float(target.data[0, 0]) == 0.0  # a copy, not a share


def test_copy_from_another_shape_needs_reshape() -> None:
    source, target = Blob((2, 3)), Blob((6,))
    source.data.fill_(1.5)
    with pytest.raises(ValueError, match="different shapes"):
        target.copy_from(source)
    target.copy_from(source, reshape=True)
    assert target.shape == (2, 3) and float(target.data.sum()) == 9.0


def test_update_subtracts_the_diff() -> None:
    blob = Blob((3,))
    blob.data.copy_(torch.tensor([1.0, 2.0, 3.0]))
    blob.diff.copy_(torch.tensor([0.5, -1.0, 3.0]))
    blob.update()
    assert blob.data.tolist() == [0.5, 3.0, 0.0]
    assert blob.diff.tolist() == [0.5, -1.0, 3.0]


def test_asum_and_sumsq() -> None:
    blob = Blob((2, 3, 4, 5))
    assert blob.asum_data() == blob.sumsq_data() == blob.asum_diff() == blob.sumsq_diff() == 0
    values = torch.empty(2, 3, 4, 5).uniform_(-3, 3, generator=torch.Generator().manual_seed(1))
    blob.data.copy_(values)
    assert blob.asum_data() == pytest.approx(float(values.double().abs().sum()), rel=1e-6)
    assert blob.sumsq_data() == pytest.approx(float((values.double() ** 2).sum()), rel=1e-6)
    assert blob.asum_diff() == blob.sumsq_diff() == 0
    blob.diff.copy_(2 * values)
    assert blob.asum_diff() == pytest.approx(2 * blob.asum_data(), rel=1e-6)
    assert blob.sumsq_diff() == pytest.approx(4 * blob.sumsq_data(), rel=1e-6)


def test_shape_string_and_repr() -> None:
    blob = Blob((2, 3))
    assert blob.shape_string() == "2 3 (6)"
    assert "shape=(2, 3)" in repr(blob)


def channels_last_values(shape: tuple[int, ...]) -> torch.Tensor:
    return torch.arange(float(torch.Size(shape).numel())).view(shape).contiguous(
        memory_format=torch.channels_last)


def test_adopted_data_is_held_then_read_back_row_major() -> None:
    blob = Blob((2, 4, 3, 3))
    pointer = blob.data.data_ptr()
    values = channels_last_values((2, 4, 3, 3))
    blob.adopt_data(values)
    assert blob.strided_data() is values  # taken as it is, no copy
    assert blob.data.is_contiguous() and torch.equal(blob.data, values)
    assert blob.data.data_ptr() == pointer  # copied back into the blob's own storage
    assert blob.strided_data().data_ptr() == pointer  # and no longer held


def test_sharers_see_an_adopted_tensor() -> None:
    a, same, flat = Blob((2, 4, 3, 3)), Blob((2, 4, 3, 3)), Blob((2, 36))
    same.share_data(a)
    flat.share_data(a)
    values = channels_last_values((2, 4, 3, 3))
    a.adopt_data(values)
    assert same.strided_data() is values
    assert flat.data.tolist() == values.reshape(2, 36).tolist()  # row-major, as Caffe's memory
    assert torch.equal(a.data, values)


def test_a_reshape_that_fits_keeps_adopted_values() -> None:
    blob = Blob((2, 4, 3, 3))
    values = channels_last_values((2, 4, 3, 3))
    blob.adopt_data(values)
    blob.reshape((8, 9))
    assert blob.strided_data().tolist() == values.reshape(8, 9).tolist()


def test_adopted_diff_counts_as_allocated() -> None:
    blob = Blob((1, 4, 2, 2))
    assert not blob.has_diff
    blob.adopt_diff(channels_last_values((1, 4, 2, 2)))
    assert blob.has_diff and blob.diff.reshape(-1).tolist() == list(range(16))


def test_adopt_checks_shape_and_dtype() -> None:
    blob = Blob((2, 3))
    with pytest.raises(ValueError, match=r"shape \(3, 2\) into a torch.float32 blob of shape \(2, 3\)"):
        blob.adopt_data(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="torch.float64 tensor"):
        blob.adopt_diff(torch.zeros(2, 3, dtype=torch.float64))


def test_keep_row_major_copies_adopted_tensors_into_the_storage() -> None:
    blob = Blob((2, 4, 3, 3))
    blob.keep_row_major()
    view = blob.data
    value = torch.randn(2, 4, 3, 3).contiguous(memory_format=torch.channels_last)
    blob.adopt_data(value)
    assert torch.equal(view, value) and blob.strided_data().is_contiguous()
    blob.adopt_diff(value)  # the diff side is still free to hold the tensor as it is
    assert blob.strided_diff() is value
    blob.reshape((4, 4, 3, 3))  # new storage: held tensors are adopted again until the next view
    blob.adopt_data(torch.randn(4, 4, 3, 3).contiguous(memory_format=torch.channels_last))
    assert not blob.strided_data().is_contiguous()


def test_overwriting_data_skips_the_zero_fill_but_never_leaves_garbage() -> None:
    blob = Blob((2, 3))
    with blob.overwriting_data() as data:
        data.copy_(torch.arange(6.0).view(2, 3))
    assert torch.equal(blob.data, torch.arange(6.0).view(2, 3))
    big = Blob((4, 5))
    big.reshape((2, 5))  # capacity 20: the 10 values beyond the shape are zeros
    with pytest.raises(RuntimeError), big.overwriting_data() as data:
        data[0].fill_(7.0)
        raise RuntimeError("the file ended")
    assert torch.equal(big.data, torch.zeros(2, 5))  # fresh memory a failed writer leaves: zeros
    big.reshape((4, 5))
    assert torch.equal(big.data, torch.zeros(4, 5))
    with pytest.raises(RuntimeError), blob.overwriting_data() as data:  # memory held already: untouched
        raise RuntimeError
    assert torch.equal(blob.data, torch.arange(6.0).view(2, 3))
    tail = Blob((4, 5))
    tail.reshape((2, 5))
    with tail.overwriting_data() as data:
        data.fill_(1.0)
    tail.reshape((4, 5))
    assert torch.equal(tail.data[2:], torch.zeros(2, 5))


def test_a_held_tensor_is_copied_back_once_however_many_threads_read_the_blob() -> None:
    """A second reader arriving while the first copies the held (channels-last) tensor back waits
    for the copy: it never sees the storage half filled (deploy mode runs readers at once)."""
    blob = Blob((1, 64, 512, 512))
    held = torch.arange(blob.count(), dtype=torch.float32).view(1, 512, 512, 64).permute(0, 3, 1, 2)
    blob.adopt_data(held)
    last = float(held[0, -1, -1, -1])
    seen: list[float] = []
    first = threading.Thread(target=lambda: seen.append(float(blob.data[0, -1, -1, -1])))
    first.start()
    while blob._data_mem.flat is None and first.is_alive():
        pass  # until the first reader has allocated the storage and is copying into it
    seen.append(float(blob.data[0, -1, -1, -1]))
    first.join()
    assert seen == [last, last]
