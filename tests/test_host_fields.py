"""Issue 22 #8 and the host fuzz: the native layer checks field lengths against their data
and refuses names with an embedded NUL; whatever Python passes to field parsing or to the
shape API ends in a PlugkitError or a result, never a crash or another exception."""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugkit import testing
from plugkit.errors import PlugkitError
from plugkit.host import Field, PluginError

FIELD_TYPES = ["FLOAT16", "FLOAT32", "FLOAT64", "INT8", "INT16", "INT32", "INT64", "CHAR", "DIMS",
               "UNKNOWN", "BF16", "FP8", "INT4", "FP4"]
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def creator():
    return testing.plugin_library().creator("RMSNorm")


@pytest.mark.parametrize("field, message", [
    (("epsilon", "FLOAT32", b"", 100_000_000), "need 400000000 bytes of data; got 0"),
    (("axis", "INT32", b"", 2**31 - 1), "need 8589934588 bytes of data; got 0"),
    (("epsilon", "FLOAT32", b"\0\0", 1), "need 4 bytes of data; got 2"),
    (("epsilon", "FLOAT32", b"\0\0\0\0", -1), "is negative"),
    (("eps\0ilon", "FLOAT32", b"\0\0\0\0", 1), "NUL character"),
    (("epsilon", "NOT_A_TYPE", b"\0\0\0\0", 1), "unknown field type"),
])
def test_native_create_refuses_fields_that_lie_about_their_data(creator, field, message):
    with pytest.raises(RuntimeError, match=message):
        creator._native.create("", [field], "build")


def test_a_layer_name_with_a_nul_is_refused(creator):
    with pytest.raises(PluginError, match="NUL"):
        creator.create({}, layer_name="a\0b")


def test_a_field_name_with_a_nul_is_not_read_as_its_prefix(creator):
    with pytest.raises(PluginError, match="NUL"):
        creator.create(fields=[Field("epsilon\0junk", 1e-3, "FLOAT32")])


@FUZZ
@given(fields=st.lists(st.tuples(
    st.sampled_from(["epsilon", "axis", "stash_type", "", "x" * 300]) | st.text(max_size=12),
    st.sampled_from(FIELD_TYPES), st.binary(max_size=64),
    st.integers(-2**31, 2**31 - 1) | st.integers(-2, 70)), max_size=4),
    phase=st.sampled_from(["build", "runtime"]))
def test_fuzz_native_field_parsing(creator, fields, phase):
    try:
        plugin = creator._native.create("fuzz", fields, phase)
    except RuntimeError:
        return  # refused with a message: fine
    plugin.nb_outputs()


@FUZZ
@given(attrs=st.dictionaries(
    st.sampled_from(["epsilon", "axis", "bogus"]),
    st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2**70, 2**70), st.text(max_size=8),
              st.lists(st.integers(-5, 5), max_size=3), st.booleans(), st.none()), max_size=3))
def test_fuzz_creating_from_attributes(creator, attrs):
    try:
        creator.create(attrs)
    except PlugkitError:
        pass


DIM = st.one_of(st.integers(-2**40, 2**40), st.sampled_from(["B", "T", "", "abc", "1", "-3"]),
                st.floats(allow_nan=True), st.none(), st.booleans())


@FUZZ
@given(shapes=st.lists(st.lists(DIM, max_size=10) | DIM, max_size=4))
def test_fuzz_output_shapes(creator, shapes):
    plugin = creator.create({})
    try:
        result = plugin.output_shapes(shapes)
    except PlugkitError:
        return
    assert all(isinstance(d, (int, str)) for s in result for d in s)


@pytest.mark.parametrize("shapes, message", [
    ([[2, -1], [4]], "negative"),
    ([[2, 2.5], [4]], "whole number"),
    (["abc", [4]], "a list of dimensions"),
    ([[2, True], [4]], "whole number"),
])
def test_output_shapes_refuses_bad_dimensions(creator, shapes, message):
    with pytest.raises(PluginError, match=message):
        creator.create({}).output_shapes(shapes)


def test_enqueue_without_tensors_is_an_error(creator):
    plugin = creator.create({})
    with pytest.raises(PluginError, match="needs"):
        plugin.enqueue([], [])


def test_run_with_numpy_arrays_says_it_needs_cuda_tensors(creator):
    import numpy as np

    from plugkit.host import run

    with pytest.raises(PluginError, match="CUDA tensors"):
        run(creator, [np.ones((2, 4), np.float32), np.ones(4, np.float32)])
