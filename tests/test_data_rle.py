"""RLE codecs against encoders written here independently, in the style of the data sets' own code."""
import re

import numpy as np
import pytest

from jaxprobe.data.records import Record
from jaxprobe.data.rle import RLEError, chexmask_columns, decode_chexmask, decode_siim, encode_chexmask, encode_siim


def siim_encode_reference(mask):
    """Competition-style mask2rle: walk x (columns) outer, y (rows) inner; relative starts; end run kept."""
    height, width = mask.shape
    out, run_start, run_length, last_end, previous = [], -1, 0, 0, False
    position = 0
    for x in range(width):
        for y in range(height):
            value = bool(mask[y, x])
            if value and not previous:
                run_start, run_length = position, 1
            elif value and previous:
                run_length += 1
            elif not value and previous:
                out += [run_start - last_end, run_length]
                last_end = run_start + run_length
            previous = value
            position += 1
    if previous:
        out += [run_start - last_end, run_length]
    return " ".join(map(str, out)) if out else "-1"


def chexmask_encode_reference(mask):
    """CheXmask-style: row-major, 1-based absolute starts."""
    flat = list(mask.astype(int).ravel())
    out, i = [], 0
    while i < len(flat):
        if flat[i]:
            j = i
            while j < len(flat) and flat[j]:
                j += 1
            out += [i + 1, j - i]
            i = j
        else:
            i += 1
    return " ".join(map(str, out))


def random_masks(seed, count=30):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        height, width = rng.integers(1, 40, size=2)
        density = rng.uniform(0, 1)
        yield rng.random((height, width)) < density


def test_siim_hand_example():
    mask = np.zeros((4, 3), dtype=bool)
    mask[1:3, 0] = True  # column-major pixels 1, 2
    mask[3, 2] = True  # column-major pixel 11
    assert encode_siim(mask) == "1 2 8 1"
    np.testing.assert_array_equal(decode_siim("1 2 8 1", 4, 3), mask)


def test_chexmask_hand_example():
    mask = np.zeros((4, 3), dtype=bool)
    mask[1:3, 0] = True  # row-major pixels 3 and 6 (0-based)
    mask[3, 1:] = True  # pixels 10, 11
    assert encode_chexmask(mask) == "4 1 7 1 11 2"
    np.testing.assert_array_equal(decode_chexmask("4 1 7 1 11 2", 4, 3), mask)


@pytest.mark.parametrize("seed", [0, 1])
def test_siim_round_trip_against_reference_encoder(seed):
    for mask in random_masks(seed):
        text = siim_encode_reference(mask)
        assert encode_siim(mask) == text
        np.testing.assert_array_equal(decode_siim(text, *mask.shape), mask)


@pytest.mark.parametrize("seed", [2, 3])
def test_chexmask_round_trip_against_reference_encoder(seed):
    for mask in random_masks(seed):
        text = chexmask_encode_reference(mask)
        assert encode_chexmask(mask) == text
        np.testing.assert_array_equal(decode_chexmask(text, *mask.shape), mask)


def test_siim_is_column_major_and_chexmask_row_major():
    mask = np.zeros((5, 7), dtype=bool)
    mask[0, :3] = True  # a horizontal run: one run row-major, three column-major
    assert len(encode_chexmask(mask).split()) == 2
    assert len(encode_siim(mask).split()) == 6


def test_empty_masks_and_blank_values():
    assert encode_siim(np.zeros((3, 3), bool)) == "-1"
    assert encode_chexmask(np.zeros((3, 3), bool)) == ""
    for text in ("-1", " -1", "", "  "):
        assert not decode_siim(text, 3, 3).any()
    for value in ("", None, float("nan"), "nan"):
        assert not decode_chexmask(value, 3, 3).any()


def test_siim_default_size_is_1024():
    assert decode_siim("5 10").shape == (1024, 1024)


@pytest.mark.parametrize(
    "text, words",
    [("1 2 3", "odd number"), ("-1 2", "negative start"), ("1 0", "length"), ("0 5 4 2", "past the end"),
     ("1 x", "not an integer")],
)
def test_siim_malformed(text, words):
    with pytest.raises(RLEError, match=words):
        decode_siim(text, 3, 3)


@pytest.mark.parametrize(
    "text, words",
    [("1 2 3", "odd number"), ("0 2", "1-based"), ("2 -1", "length"), ("8 3", "past the end")],
)
def test_chexmask_malformed(text, words):
    with pytest.raises(RLEError, match=words):
        decode_chexmask(text, 3, 3)


def test_several_rows_of_one_image_are_ored():
    first = np.zeros((6, 5), bool)
    first[1:4, 1:3] = True
    second = np.zeros((6, 5), bool)
    second[3:5, 2:5] = True  # overlaps `first` at row 3, column 2
    record = Record("siim_acr", "x", "/x.dcm", "p", 1, 6, 5, "siim",
                    (("pneumothorax", (siim_encode_reference(first), siim_encode_reference(second))),))
    np.testing.assert_array_equal(record.mask(), first | second)
    np.testing.assert_array_equal(record.mask("pneumothorax"), first | second)
    with pytest.raises(KeyError, match="heart"):
        record.mask("heart")


@pytest.mark.parametrize("decode", [decode_chexmask, chexmask_columns])
@pytest.mark.parametrize(
    "text, message",
    [("1 2 3", "RLE has an odd number of values (3); expected start/length pairs"),
     ("1 x", "RLE token 'x' is not an integer"),
     ("1 1 -1 2", "start -1 < 1; CheXmask starts are 1-based"),
     ("2 1 3 0", "run length 0; lengths must be positive"),
     ("2 1 3 -2", "run length -2; lengths must be positive"),
     ("2 1 8 3", "a run ends at pixel 10, past the end of a 3x3 mask (9 pixels)")],
)
def test_chexmask_errors_name_the_offending_value(decode, text, message):
    """Both CheXmask readers reject the same runs with the same message, naming the offending value; a zero-length
    run is an error like a negative one."""
    with pytest.raises(RLEError, match="^" + re.escape(message) + "$"):
        decode(text, 3, 3)


def test_chexmask_runs_may_end_on_the_last_pixel_and_blank_values_in_any_case_are_empty():
    last = decode_chexmask("7 3", 3, 3)
    assert last.sum() == 3 and last[2].all()
    assert chexmask_columns("7 3", 3, 3) == (0, 2)
    assert chexmask_columns("9 1", 3, 3) == (2, 2)
    cols = np.flatnonzero(decode_chexmask("4 2 1 1", 3, 3).any(axis=0))  # runs out of order: the readers agree
    assert chexmask_columns("4 2 1 1", 3, 3) == (int(cols[0]), int(cols[-1]))
    for value in ("", "  ", None, float("nan"), "nan", "NaN", "NAN"):
        assert not decode_chexmask(value, 3, 3).any()
        assert chexmask_columns(value, 3, 3) is None


@pytest.mark.parametrize(
    "text, message",
    [("-1 2", "negative start -1; SIIM starts count background pixels and are >= 0"),
     ("0 1 0 0", "run length 0; lengths must be positive"),
     ("2 1 1 -3", "run length -3; lengths must be positive")],
)
def test_siim_errors_name_the_offending_value(text, message):
    with pytest.raises(RLEError, match="^" + re.escape(message) + "$"):
        decode_siim(text, 3, 3)
