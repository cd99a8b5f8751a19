"""Random chains around the RMSNorm pattern: insert, then verify, always agree."""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import onnx_chains as chains
from plugkit.onnx_tools import insert_plugins, plugin_nodes
from plugkit.onnx_tools.verify import verify_models

ELEMENTWISE = st.sampled_from(["Relu", "Bias", "MatMul", "Tanh"])


@st.composite
def random_chains(draw):
    rank = draw(st.integers(2, 4))
    shape = ("N", *draw(st.lists(st.integers(1, 6), min_size=rank - 2, max_size=rank - 2)),
             draw(st.integers(1, 24)))
    cast = draw(st.sampled_from(["none", "norm", "all"]))
    return chains.Chain(
        shape=shape,
        normalized=draw(st.integers(1, rank - 1)),
        epsilon=draw(st.sampled_from([1e-6, 1e-5, 1e-3, 0.5])),
        square=draw(st.sampled_from(["Pow", "Mul"])),
        inverse=draw(st.sampled_from(["Reciprocal", "Div1", "DivX"])),
        cast=cast,
        scale=draw(st.booleans()) or cast == "norm",
        swap_add=draw(st.booleans()),
        swap_mul=draw(st.booleans()),
        opset=draw(st.sampled_from([13, 17, 18, 20])),
        constant_nodes=draw(st.booleans()),
        # fp16 models: only elementwise ops after the chain, so the comparison
        # measures the plugin and not fp16 matmul rounding.
        pre=tuple(draw(st.lists(ELEMENTWISE, max_size=2))),
        post=tuple(draw(st.lists(ELEMENTWISE if cast == "none" else st.sampled_from(["Relu", "Tanh"]),
                                 max_size=2))),
        seed=draw(st.integers(0, 2**16)),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chain=random_chains(), break_it=st.booleans())
def test_insert_then_verify_agree(chain, break_it):
    # break_it exposes an intermediate result as a graph output: then nothing may change.
    model = chains.build(chain, extra_output="var" if break_it else None)
    result = insert_plugins(model, ["RMSNorm"])
    if break_it:
        assert result.count() == 0 and result.skipped
        assert result.model.SerializeToString() == model.SerializeToString()
        return
    assert result.count() == 1, result.summary()
    (node,) = plugin_nodes(result.model)
    attrs = {a.name: a for a in node.attribute}
    assert attrs["axis"].i == -chain.normalized
    assert attrs["epsilon"].f == pytest.approx(chain.epsilon, rel=1e-3)  # fp32 attribute
    report = verify_models(model, result.model, dims={"N": [1, 3]})
    assert report.ok, report.summary()
