"""Shape specs as trtexec users write them (`--shapes input:MIN,OPT,MAX`), on the CPU."""
import pytest

from plugkit.shapes import (ShapeRange, ShapeSpecError, check_ranges_against_model,
                            check_shape_in_range, format_shape, parse_run_shapes, parse_shape,
                            parse_shape_range, parse_shape_specs)


def test_parse_shape():
    assert parse_shape("1x3x32x64") == (1, 3, 32, 64)
    assert parse_shape(" 8 ") == (8,)
    assert parse_shape("1X3") == (1, 3)
    assert parse_shape("scalar") == ()
    assert parse_shape("0x16") == (0, 16)
    assert format_shape((1, 3)) == "1x3" and format_shape(()) == "scalar"


@pytest.mark.parametrize("bad", ["1x?x3", "1,3", "1x-1", "axb", "1xx2"])
def test_parse_shape_rejects(bad):
    with pytest.raises(ShapeSpecError, match="shape"):
        parse_shape(bad)


def test_parse_range_min_opt_max():
    r = parse_shape_range("input:1x3x32x64,1x3x32x448,1x3x32x1024")
    assert r == ShapeRange("input", (1, 3, 32, 64), (1, 3, 32, 448), (1, 3, 32, 1024))
    assert not r.is_fixed
    assert str(r) == "input:1x3x32x64,1x3x32x448,1x3x32x1024"
    assert r.contains((1, 3, 32, 100)) and not r.contains((1, 3, 32, 2000))
    assert not r.contains((1, 3, 32))


def test_parse_range_fixed_and_names_with_colons():
    assert parse_shape_range("x:2x8").is_fixed
    assert parse_shape_range("x:2x8").opt == (2, 8)
    # TensorFlow-style names hold a colon: split at the last one, or quote the name.
    assert parse_shape_range("input:0:1x3").name == "input:0"
    assert parse_shape_range("'input:0':1x3,2x3,4x3").max == (4, 3)


@pytest.mark.parametrize("spec, message", [
    ("1x3x32x64", "names no input"),
    ("input:1x3,1x3", "one shape .fixed. or three"),
    ("input:1x3,2x3,3x3,4x3", "one shape .fixed. or three"),
    ("input:1x3,1x3x4,1x3", "different ranks"),
    ("input:4x3,2x3,8x3", "MIN <= OPT <= MAX"),
    ("input:1x3,2x3,1x3", "MIN <= OPT <= MAX"),
    ("'input:1x3", "unbalanced quote"),
])
def test_parse_range_rejects(spec, message):
    with pytest.raises(ShapeSpecError, match=message):
        parse_shape_range(spec)


def test_parse_specs_repeated_and_space_joined():
    ranges = parse_shape_specs(["a:1x2,2x2,4x2", "b:3 c:1x1,1x1,9x1"])
    assert list(ranges) == ["a", "b", "c"]
    with pytest.raises(ShapeSpecError, match="more than once"):
        parse_shape_specs(["a:1x2", "a:1x3"])
    assert parse_shape_specs(None) == {}


def test_run_shapes_are_single_shapes():
    assert parse_run_shapes(["input:1x3x32x448"]) == {"input": (1, 3, 32, 448)}
    with pytest.raises(ShapeSpecError, match="one shape per input"):
        parse_run_shapes(["input:1x3,2x3,4x3"])


MODEL = {"images": ["batch", 3, 32, "width"], "lengths": [None], "mask": [1, 8]}


def test_check_against_model_ok():
    ranges = parse_shape_specs(["images:1x3x32x64,1x3x32x448,8x3x32x1024", "lengths:1,1,8"])
    assert check_ranges_against_model(ranges, MODEL) == ranges


def test_check_against_model_unknown_input():
    with pytest.raises(ShapeSpecError, match="does not have; its inputs are: images, lengths, mask"):
        check_ranges_against_model(parse_shape_specs(["image:1x3x32x64"]), MODEL)


def test_check_against_model_rank_and_fixed_dims():
    with pytest.raises(ShapeSpecError, match="rank 4 .* rank 3"):
        check_ranges_against_model(parse_shape_specs(["images:1x3x32", "lengths:1"]), MODEL)
    with pytest.raises(ShapeSpecError, match="dimension 1 is fixed to 3 .* MAX shape .* has 4"):
        check_ranges_against_model(
            parse_shape_specs(["images:1x3x32x64,1x3x32x64,1x4x32x64", "lengths:1"]), MODEL)


def test_check_against_model_dynamic_input_needs_range():
    with pytest.raises(ShapeSpecError, match=r"lengths \(\?\).*--shapes lengths:1,1,8"):
        check_ranges_against_model(parse_shape_specs(["images:1x3x32x64"]), MODEL)


def test_shape_in_range_messages():
    r = parse_shape_range("input:1x3x32x64,1x3x32x448,1x3x32x1024")
    check_shape_in_range("input", (1, 3, 32, 64), r)
    with pytest.raises(ShapeSpecError, match="outside the engine's optimization profile: dimension 3 is 2048, "
                                             "allowed 64..1024"):
        check_shape_in_range("input", (1, 3, 32, 2048), r)
    with pytest.raises(ShapeSpecError, match="rank 3"):
        check_shape_in_range("input", (1, 3, 32), r)
