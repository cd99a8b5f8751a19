"""`plugkit doctor`: plugin nodes vs. the creators that libraries export, on the CPU."""
import json
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
import numpy as np

from plugkit import doctor, testing
from plugkit.cli import main
from plugkit.doctor import Creator, DoctorError, LoadedLibrary, check_model, plugin_nodes

REPO = Path(__file__).resolve().parents[1]
LIB = "build/libplugkit_plugins.so"


def rms_library(path=LIB, name="RMSNorm", version="1", namespace="plugkit"):
    creator = Creator(name, version, namespace, (("axis", "INT32"), ("epsilon", "FLOAT32")), path)
    return LoadedLibrary(path, "10.14.1", (creator,))


def plugged_model(op_type="RMSNorm", domain="plugkit", opset=17, **attrs):
    attrs = {"plugin_version": "1", "plugin_namespace": "plugkit", "epsilon": 1e-5, "axis": -1, **attrs}
    attrs = {k: v for k, v in attrs.items() if v is not None}
    node = helper.make_node(op_type, ["x", "scale"], ["y"], name="/blocks.0/norm", domain=domain, **attrs)
    graph = helper.make_graph(
        [node, helper.make_node("Relu", ["y"], ["z"], name="/relu")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", 8])],
        [numpy_helper.from_array(np.ones(8, np.float32), "scale")])
    imports = [helper.make_opsetid("", opset)]
    if domain not in ("", "ai.onnx"):
        imports.append(helper.make_opsetid(domain, 1))
    return helper.make_model(graph, opset_imports=imports)


def test_matching_node_is_ok():
    report = check_model(plugged_model(), [rms_library()], "m.onnx")
    assert report.ok and len(report.findings) == 1
    assert report.findings[0].creator.library == LIB
    text = report.format()
    assert "ok       node '/blocks.0/norm'" in text and LIB in text
    assert "registered plugins: RMSNorm version '1' namespace 'plugkit'" in text


def test_standard_ops_are_not_plugin_nodes():
    nodes, warnings = plugin_nodes(plugged_model())
    assert [n.op_type for n in nodes] == ["RMSNorm"] and warnings == []
    assert sorted(nodes[0].attributes) == [("axis", "INT"), ("epsilon", "FLOAT")]


def test_missing_plugin_reports_node_registered_closest_and_libraries():
    report = check_model(plugged_model(op_type="RMSNrm"), [rms_library()], "m.onnx")
    assert not report.ok
    missing = report.missing[0]
    assert missing.node.op_type == "RMSNrm"
    assert missing.closest[0][0].name == "RMSNorm"
    text = report.format()
    assert "MISSING  node '/blocks.0/norm': op RMSNrm version '1' namespace 'plugkit'" in text
    assert "closest: RMSNorm version '1' namespace 'plugkit' in build/libplugkit_plugins.so" in text
    assert "similar name: RMSNorm vs RMSNrm" in text
    assert "plugin libraries loaded:\n  build/libplugkit_plugins.so (TensorRT headers 10.14.1)" in text
    assert "1 plugin node(s) would fail to parse" in text


def test_version_mismatch_names_the_attribute_fix():
    report = check_model(plugged_model(plugin_version="2"), [rms_library()])
    creator, why = report.missing[0].closest[0]
    assert creator.version == "1"
    assert "version '1', node asks '2'" in why and "plugin_version='1'" in why


def test_namespace_mismatch_and_domain_fallback():
    # No plugin_namespace attribute, default domain: namespace "" does not match "plugkit".
    report = check_model(plugged_model(domain="", plugin_namespace=None), [rms_library()])
    assert not report.ok
    assert "plugin_namespace='plugkit'" in report.missing[0].closest[0][1]
    # No attribute, but the node's domain names the namespace (TensorRT >= 10.10 reads it).
    report = check_model(plugged_model(plugin_namespace=None), [rms_library()])
    assert report.ok
    assert "10.10" in report.findings[0].notes[0]
    # An empty attribute falls back to the domain as well.
    assert check_model(plugged_model(plugin_namespace=""), [rms_library()]).ok


def test_case_only_difference_is_named():
    report = check_model(plugged_model(op_type="rmsnorm"), [rms_library()])
    assert "differs only in case" in report.missing[0].closest[0][1]


def test_nothing_similar_and_no_libraries():
    report = check_model(plugged_model(op_type="Zzzz"), [])
    assert "closest: nothing similar is registered" in report.format()
    assert "plugin libraries loaded: none (pass --plugins LIB)" in report.format()
    assert "registered plugins: none" in report.format()


def test_unknown_attribute_is_noted():
    report = check_model(plugged_model(gamma=1.0), [rms_library()])
    assert report.ok
    assert any("attribute 'gamma' is not a field of RMSNorm" in n for n in report.findings[0].notes)


def test_plugin_shadowing_builtin_op_is_flagged():
    shadow = LoadedLibrary("libshadow.so", None, (Creator("LayerNormalization", "1", "", (), "libshadow.so"),))
    report = check_model(plugged_model(), [rms_library(), shadow])
    assert report.ok
    assert any("shadows the built-in ONNX op LayerNormalization" in w for w in report.warnings)


def test_builtin_node_with_plugin_attributes_is_flagged():
    node = helper.make_node("Relu", ["x"], ["y"], name="r", plugin_version="1")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    nodes, warnings = plugin_nodes(helper.make_model(graph))
    assert nodes == [] and "Relu is a built-in ONNX op" in warnings[0]


def test_tensorrt_builtin_plugins_are_skipped():
    report = check_model(plugged_model(op_type="EfficientNMS_TRT", domain=""), [rms_library()])
    assert report.ok and report.findings[0].provided_by_tensorrt
    assert "TensorRT's own plugin library" in report.format()


def test_nodes_in_subgraphs_and_local_functions_are_found():
    inner = helper.make_node("RMSNorm", ["x", "scale"], ["y"], name="inner", domain="plugkit",
                             plugin_version="1", plugin_namespace="plugkit")
    then_graph = helper.make_graph([inner], "then", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [8])])
    else_graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y2"])], "else", [],
                                   [helper.make_tensor_value_info("y2", TensorProto.FLOAT, [8])])
    if_node = helper.make_node("If", ["cond"], ["out"], then_branch=then_graph, else_branch=else_graph)
    function = helper.make_function("local", "MyBlock", ["a"], ["b"],
                                    [helper.make_node("RMSNrm", ["a", "a"], ["b"], domain="plugkit")],
                                    [helper.make_opsetid("", 17), helper.make_opsetid("plugkit", 1)])
    call = helper.make_node("MyBlock", ["x"], ["fb"], domain="local")
    graph = helper.make_graph([if_node, call], "g",
                              [helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
                               helper.make_tensor_value_info("x", TensorProto.FLOAT, [8])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [8])],
                              [numpy_helper.from_array(np.ones(8, np.float32), "scale")])
    model = helper.make_model(graph, functions=[function],
                              opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("plugkit", 1),
                                             helper.make_opsetid("local", 1)])
    report = check_model(model, [rms_library()])
    by_op = {f.node.op_type: f for f in report.findings}
    assert set(by_op) == {"RMSNorm", "RMSNrm"}  # the function call itself is not a plugin node
    assert by_op["RMSNorm"].ok and "subgraph then_branch" in by_op["RMSNorm"].node.graph
    assert not by_op["RMSNrm"].ok and by_op["RMSNrm"].node.graph == "function MyBlock"


def test_json_report_round_trips():
    data = check_model(plugged_model(op_type="RMSNrm"), [rms_library()]).to_dict()
    assert json.loads(json.dumps(data))["ok"] is False
    assert data["nodes"][0]["closest"][0]["creator"]["name"] == "RMSNorm"


def test_doctor_error_carries_the_report():
    report = check_model(plugged_model(op_type="RMSNrm"), [rms_library()])
    err = DoctorError(report)
    assert err.report is report and "MISSING" in str(err)


def test_describe_library_accepts_host_objects():
    class Field:
        def __init__(self, name, type):
            self.name, self.type = name, type

    class CreatorInfo:
        name, version, namespace = "RMSNorm", "1", "plugkit"
        fields = [Field("axis", "INT32")]

    class Library:
        path, tensorrt_version, creators = "lib.so", "10.14.1", [CreatorInfo()]

    lib = doctor.describe_library(Library())
    assert lib.creators[0] == Creator("RMSNorm", "1", "plugkit", (("axis", "INT32"),), "lib.so")
    assert check_model(plugged_model(), [Library()]).ok


def test_missing_library_file(tmp_path):
    with pytest.raises(doctor.PlugkitError, match="does not exist"):
        doctor.load_libraries([tmp_path / "libnope.so"])
    with pytest.raises(doctor.PlugkitError, match="is a directory"):
        doctor.load_libraries([tmp_path])


def test_cli_missing_model(tmp_path, capsys):
    assert main(["doctor", str(tmp_path / "none.onnx")]) == 2
    assert "ONNX model" in capsys.readouterr().err


def test_cli_not_onnx(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\xff\xfe garbage")
    assert main(["doctor", str(bad)]) == 2
    assert "is not an ONNX model" in capsys.readouterr().err


def test_cli_reports_missing_plugin_without_libraries(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    onnx.save(plugged_model(), path)
    assert main(["doctor", str(path)]) == 1
    out = capsys.readouterr().out
    assert "MISSING" in out and "plugin libraries loaded: none" in out
    assert main(["doctor", str(path), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["ok"] is False


def test_cli_model_without_plugin_nodes(tmp_path, capsys):
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    path = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph), path)
    assert main(["doctor", str(path)]) == 0
    assert "plugin nodes: 0" in capsys.readouterr().out


# --- with the real plugin library, read by the host (no TensorRT needed) -------

def test_real_library_matches_plugged_model(tmp_path, capsys):
    lib = testing.built_library()
    model = tmp_path / "m.onnx"
    onnx.save(plugged_model(), model)
    report = doctor.check(model, [lib])
    assert report.ok, report.format()
    assert any(c.name == "RMSNorm" and c.namespace == "plugkit" for c in report.creators)
    assert main(["doctor", str(model), "--plugins", str(lib)]) == 0
    assert "ok       node '/blocks.0/norm'" in capsys.readouterr().out


def test_real_library_misspelled_node(tmp_path, capsys):
    lib = testing.built_library()
    model = tmp_path / "m.onnx"
    onnx.save(plugged_model(op_type="RmsNorm"), model)
    assert main(["doctor", str(model), "--plugins", str(lib)]) == 1
    out = capsys.readouterr().out
    assert "MISSING" in out and "closest: RMSNorm version '1' namespace 'plugkit'" in out
    assert str(lib) in out
