"""The pattern API, as an op author uses it, and several ops in one insert."""
import textwrap

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import pytest
from onnx import helper

import onnx_chains as chains
from plugkit.cli import main
from plugkit.onnx_tools import Pattern, plugin_nodes

SWISH_OP = '''
import numpy as np
from plugkit.schema import Attr, OpSchema

def reference(X, *, beta=1.0):
    x = np.asarray(X, dtype=np.float64)
    return x / (1 + np.exp(-beta * x))

schema = OpSchema(name="Swish", inputs=("X",), outputs=("Y",),
                  attrs=(Attr("beta", "float32", 1.0),), reference=reference)
'''

SWISH_PATTERNS = '''
from plugkit.onnx_tools import Pattern, Replacement, Rewrite

def swish():
    p = Pattern("x * sigmoid(x)")
    x = p.input("X")
    return p.output(p.op("Mul", x, p.op("Sigmoid", x), name="mul"))

rewrites = [Rewrite(swish(), lambda m: Replacement([m.input("X")], {"beta": 1.0}))]
'''


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    """A plugins folder holding RMSNorm and a second op, Swish."""
    from pathlib import Path
    root = tmp_path / "plugins"
    source = Path(__file__).resolve().parents[1] / "plugins" / "rms_norm"
    (root / "rms_norm").mkdir(parents=True)
    for name in ("op.py", "patterns.py"):
        (root / "rms_norm" / name).write_text((source / name).read_text())
    (root / "swish").mkdir()
    (root / "swish" / "op.py").write_text(textwrap.dedent(SWISH_OP))
    (root / "swish" / "patterns.py").write_text(textwrap.dedent(SWISH_PATTERNS))
    (root / "no_patterns").mkdir()
    (root / "no_patterns" / "op.py").write_text(SWISH_OP.replace('"Swish"', '"Bare"'))
    monkeypatch.setenv("PLUGKIT_PLUGINS_DIR", str(root))
    return root


def swish_after_rms_norm():
    model = chains.build(chains.Chain(post=("MatMul",)))
    graph = model.graph
    ident = next(n for n in graph.node if n.op_type == "Identity")
    y = ident.input[0]
    graph.node.extend([helper.make_node("Sigmoid", [y], ["sig"], name="/sigmoid"),
                       helper.make_node("Mul", ["sig", y], ["swish"], name="/swish")])
    ident.input[0] = "swish"
    graph.node.remove(ident)
    graph.node.append(ident)
    return model


def test_several_ops_in_one_run(plugins, tmp_path, capsys):
    path, out = tmp_path / "m.onnx", tmp_path / "p.onnx"
    model = swish_after_rms_norm()
    onnx.save(model, path)
    assert main(["insert", str(path), "--op", "RMSNorm", "--op", "Swish", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "replaced 2 subgraph(s)" in text and "Swish_0" in text and "RMSNorm_0" in text
    plugged = onnx.load(out)
    assert sorted(n.op_type for n in plugin_nodes(plugged)) == ["RMSNorm", "Swish"]
    assert main(["verify", str(path), str(out)]) == 0  # both run their references


def test_op_without_patterns(plugins, tmp_path, capsys):
    path = tmp_path / "m.onnx"
    onnx.save(swish_after_rms_norm(), path)
    assert main(["insert", str(path), "--op", "Bare", "-o", str(tmp_path / "o.onnx")]) == 2
    assert "declares no ONNX patterns" in capsys.readouterr().err


def test_commutative_and_optional_inputs_expand():
    p = Pattern("t")
    x = p.input("X")
    p.output(p.op("Add", p.op("ReduceMean", x, p.constant("axes", optional=True)), p.constant("c", 1.0)))
    # ReduceMean with/without axes x Add in both orders
    assert len(p._variants) == 4


def test_constant_value_must_match():
    p = Pattern("plus one")
    x = p.input("X")
    p.output(p.op("Add", x, p.constant("one", 1.0)))
    for value, found in ((1.0, 1), (2.0, 0)):
        x_var = gs.Variable("x", np.float32, [2])
        y = gs.Variable("y", np.float32, [2])
        c = gs.Constant("c", np.array([value], np.float32))
        graph = gs.Graph(nodes=[gs.Node("Add", inputs=[c, x_var], outputs=[y])], inputs=[x_var], outputs=[y])
        assert len(p.find(graph)) == found


def test_pattern_declaration_errors():
    p = Pattern("bad")
    x = p.input("X")
    with pytest.raises(ValueError, match="used twice"):
        p.input("X")
    with pytest.raises(ValueError, match="only the last input"):
        p.op("Foo", p.constant("a", optional=True), x)
    with pytest.raises(ValueError, match="no output"):
        Pattern("empty").find(gs.Graph(nodes=[gs.Node("Foo")]))
