"""Every plugin in plugins/*/op.py, checked against its compiled creator: on any
machine up to the kernel launch, and numerically against the reference on a GPU."""
import pytest

from plugkit import testing
from plugkit.ops import load_schemas

SCHEMAS = load_schemas()


def _cases(schema):
    return schema.test_cases or ({"inputs": []},)


@pytest.fixture(scope="module")
def library():
    return testing.plugin_library()


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_creator_fields_equal_schema(library, name):
    assert testing.check_fields(library, SCHEMAS[name]) == []


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_creates_from_default_fields_in_both_phases(library, name):
    schema = SCHEMAS[name]
    creator = library.creator(schema.name, schema.version, schema.namespace)
    for phase in ("build", "runtime"):
        plugin = creator.create({}, phase=phase)
        assert (plugin.name, plugin.version, plugin.namespace) == (schema.name, schema.version, schema.namespace)
        fields = {f.name: f.value for f in plugin.serialize()}
        for attr in schema.attrs:
            expected = attr.default
            if attr.type == "string":
                assert fields[attr.name] == expected
            else:  # numbers are serialized as arrays, of one element for a scalar
                assert fields[attr.name] == pytest.approx(list(expected) if attr.is_array else [expected], rel=1e-6)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_output_shapes_and_dtypes_of_test_cases(library, name):
    schema = SCHEMAS[name]
    creator = library.creator(schema.name, schema.version, schema.namespace)
    for case in _cases(schema):
        plugin = creator.create(case.get("attrs"))
        for dtype in schema.dtypes:
            out_dtypes = plugin.output_dtypes([dtype] * len(case["inputs"]))
            assert len(out_dtypes) == len(schema.outputs)
        assert len(plugin.output_shapes(case["inputs"])) == len(schema.outputs)


@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_matches_reference_on_test_cases(library, name):
    testing.require_cuda()
    schema = SCHEMAS[name]
    for i, case in enumerate(_cases(schema)):
        for dtype in schema.dtypes:
            testing.check_against_reference(library, schema, case["inputs"], dtype, case.get("attrs"), seed=i,
                                            values=case.get("values"))
