"""Malformed IR files and networks the analysis cannot use: one line naming the file, the field and the fix.

Each malformed document starts from a valid small network's ``to_dict()`` and
breaks one field; the CLI must exit 2 with a single ``roofline: error:`` line
(no traceback, nothing on stdout), never a NaN table.
"""

import copy
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roofline import RooflineError
from roofline.model import ir
from roofline.model.ir import Network
from roofline.model.ir_file import read_network
from unit_tests.helpers import bn, cli_error, conv, ew

pytestmark = pytest.mark.analytic

X = (1, 8, 16, 16)
Y = (1, 16, 16, 16)


def small_network() -> Network:
    """conv -> bn -> relu -> grouped conv -> residual add -> global pool -> linear."""
    layers = (
        conv("conv1", "x", X, 16, 3),
        bn("bn1", "conv1", Y),
        ew("relu1", "relu", ["bn1"], [Y]),
        conv("conv2", "relu1", Y, 16, 3, groups=4),
        ew("add", "add", ["conv2", "relu1"], [Y, Y]),
        ir.Pool(
            name="pool",
            inputs=("add",),
            output="pool",
            input_shapes=(Y,),
            output_shape=(1, 16, 1, 1),
            mode="avg",
            kernel=(16, 16),
            stride=(16, 16),
            kind="global",
        ),  # fmt: skip
        ir.Linear(
            name="fc", inputs=("pool",), output="fc", input_shapes=((1, 16),), output_shape=(1, 10), bias=True
        ),  # fmt: skip
    )
    return Network(name="small", inputs=(("x", X),), outputs=("fc",), layers=layers, resolution=16)


def valid_doc() -> dict:
    return json.loads(json.dumps(small_network().to_dict()))


def _set(path, value):
    def mutate(doc):
        *head, last = path
        target = doc
        for key in head:
            target = target[key]
        target[last] = value
        return doc

    return mutate


def _delete(path):
    def mutate(doc):
        *head, last = path
        target = doc
        for key in head:
            target = target[key]
        del target[last]
        return doc

    return mutate


#: (id, mutation of the valid document, what the one-line message must contain)
MALFORMED = [
    ("top-level-list", lambda d: [d], "the top level must be an object"),
    ("not-roofline-ir", _set(["format"], "onnx"), "format"),
    ("version-2", _set(["version"], 2), "version"),
    ("missing-name", _delete(["name"]), "name is missing"),
    ("unknown-top-field", _set(["batchsize"], 8), "batchsize"),
    ("batch-zero", _set(["batch"], 0), "batch must be an integer >= 1"),
    ("batch-negative", _set(["batch"], -4), "batch must be an integer >= 1"),
    ("batch-string", _set(["batch"], "2"), "batch must be an integer"),
    ("batch-not-dividing-leading-dim", _set(["batch"], 2), "inputs[0]"),
    ("resolution-zero", _set(["resolution"], 0), "resolution"),
    ("images-per-sample-zero", _set(["images_per_sample"], 0), "images_per_sample"),
    ("unsupported-ops-count-string", _set(["unsupported_ops"], {"Loop": "many"}), "unsupported_ops.Loop"),
    ("inputs-object", _set(["inputs"], {"x": list(X)}), "inputs must be a list"),
    ("input-not-a-pair", _set(["inputs", 0], "x"), "inputs[0]"),
    ("input-negative-dim", _set(["inputs", 0, 1, 1], -8), "inputs[0]"),
    ("outputs-dangling", _set(["outputs"], ["logits"]), "outputs[0]"),
    ("layers-empty", _set(["layers"], []), "layers must not be empty"),
    ("layers-object", _set(["layers"], {"conv1": {}}), "layers must be a list"),
    ("layer-is-list", _set(["layers", 2], ["relu"]), "layers[2] must be an object"),
    ("layer-is-null", _set(["layers", 0], None), "layers[0] must be an object"),
    ("unknown-op", _set(["layers", 0, "op"], "conv2d"), "layers[0] (conv1).op must be one of conv, linear"),
    ("missing-op", _delete(["layers", 1, "op"]), "layers[1] (bn1).op is missing"),
    ("layer-name-number", _set(["layers", 1, "name"], 7), "layers[1].name"),
    ("missing-kernel", _delete(["layers", 0, "kernel"]), "layers[0] (conv1).kernel is missing"),
    (
        "missing-output-shape",
        _delete(["layers", 2, "output_shape"]),
        "layers[2] (relu1).output_shape is missing",
    ),
    ("unknown-layer-field", _set(["layers", 0, "kernal"], [3, 3]), "layers[0] (conv1).kernal"),
    ("negative-shape", _set(["layers", 0, "input_shapes", 0, 1], -8), "(conv1).input_shapes[0][1]"),
    ("zero-shape", _set(["layers", 2, "output_shape", 2], 0), "(relu1).output_shape[2]"),
    ("string-shape", _set(["layers", 2, "output_shape"], "1x16x16x16"), "(relu1).output_shape"),
    ("float-dim", _set(["layers", 1, "output_shape", 1], 2.5), "(bn1).output_shape[1]"),
    ("huge-dim", _set(["layers", 1, "output_shape", 1], 10**30), "(bn1).output_shape[1]"),
    ("leading-dim-zero", _set(["layers", 3, "output_shape", 0], 0), "(conv2).output_shape[0]"),
    ("dangling-input", _set(["layers", 4, "inputs", 1], "relu9"), "layers[4] (add).inputs[1]"),
    ("input-read-before-written", _set(["layers", 1, "inputs", 0], "add"), "layers[1] (bn1).inputs[0]"),
    ("no-inputs", _set(["layers", 2, "inputs"], []), "(relu1).inputs"),
    ("shapes-per-input", _delete(["layers", 4, "input_shapes", 1]), "layers[4] (add).input_shapes"),
    ("output-written-twice", _set(["layers", 2, "output"], "bn1"), "layers[2] (relu1).output"),
    ("stride-zero", _set(["layers", 0, "stride", 0], 0), "(conv1).stride[0]"),
    ("stride-int", _set(["layers", 0, "stride"], 1), "(conv1).stride"),
    ("kernel-float", _set(["layers", 0, "kernel", 1], 2.5), "(conv1).kernel[1]"),
    ("kernel-string", _set(["layers", 0, "kernel"], "3x3"), "(conv1).kernel"),
    ("kernel-rank", _set(["layers", 0, "kernel"], [3]), "(conv1).kernel"),
    ("padding-negative", _set(["layers", 0, "padding", 0], -1), "(conv1).padding[0]"),
    ("dilation-zero", _set(["layers", 3, "dilation", 1], 0), "(conv2).dilation[1]"),
    ("groups-not-dividing", _set(["layers", 3, "groups"], 3), "(conv2).groups"),
    ("groups-zero", _set(["layers", 3, "groups"], 0), "(conv2).groups"),
    ("conv-input-rank", _set(["layers", 0, "input_shapes", 0], [1, 8]), "(conv1).input_shapes[0]"),
    ("bias-string", _set(["layers", 6, "bias"], "yes"), "(fc).bias"),
    ("norm-fn", _set(["layers", 1, "fn"], "instance"), "(bn1).fn"),
    ("norm-channels-zero", _set(["layers", 1, "channels"], 0), "(bn1).channels"),
    ("pool-mode", _set(["layers", 5, "mode"], "min"), "(pool).mode"),
    ("pool-kind", _set(["layers", 5, "kind"], "spatial"), "(pool).kind"),
    ("elementwise-fn-missing", _delete(["layers", 2, "fn"]), "(relu1).fn is missing"),
    ("linear-scalar-input", _set(["layers", 6, "input_shapes", 0], []), "(fc).input_shapes[0]"),
]


def test_the_base_document_is_valid():
    assert read_network(valid_doc()) == small_network()


@pytest.mark.parametrize("mutate, field", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_ir_files_get_one_line_naming_file_and_field(tmp_path, capsys, mutate, field):
    path = tmp_path / "broken_net.json"
    path.write_text(json.dumps(mutate(valid_doc())))
    err = cli_error(capsys, ["analyze", str(path), "--json"])
    assert str(path) in err, err
    assert field in err, err
    assert err.rstrip().endswith("fix the file or re-export it with roofline"), err


def test_a_file_that_is_not_json_names_the_file(tmp_path, capsys):
    path = tmp_path / "truncated.json"
    path.write_text(json.dumps(valid_doc())[:100])
    err = cli_error(capsys, ["analyze", str(path), "--json"])
    assert str(path) in err and "JSON" in err


def test_saved_at_a_larger_batch_loads():
    doc = json.loads(json.dumps(small_network().with_batch(4).to_dict()))
    assert read_network(doc).with_batch(1) == small_network()


# -- networks the analysis cannot use ---------------------------------------------------------

COMMANDS = [["analyze"], ["survey"], ["fold"], ["batch-sweep"], ["analyze", "--json"]]


def _memory_only_doc() -> dict:
    net = Network(name="relus", inputs=(("x", X),), outputs=("r2",),
                  layers=(ew("r1", "relu", ["x"], [X]), ew("r2", "relu", ["r1"], [X])))  # fmt: skip
    return json.loads(json.dumps(net.to_dict()))


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_an_ir_network_without_flops_is_refused_early(tmp_path, capsys, command):
    path = tmp_path / "relus.json"
    path.write_text(json.dumps(_memory_only_doc()))
    err = cli_error(capsys, [command[0], str(path), *command[1:]])
    assert "relus has no layer the roofline can time" in err, err


def test_a_network_without_flops_is_refused_where_it_is_resolved():
    from roofline.model.resolve import check_timeable

    with pytest.raises(RooflineError, match="no layer the roofline can time"):
        check_timeable(read_network(_memory_only_doc()))
    check_timeable(small_network())


def _onnx_file(tmp_path, kind):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
    opsets = [helper.make_opsetid("", 17)]
    if kind == "Loop":
        body = helper.make_graph(
            [helper.make_node("Identity", ["c"], ["c_out"]), helper.make_node("Identity", ["v"], ["v_out"])],
            "body",
            [
                helper.make_tensor_value_info("i", TensorProto.INT64, []),
                helper.make_tensor_value_info("c", TensorProto.BOOL, []),
                helper.make_tensor_value_info("v", TensorProto.FLOAT, [1, 3, 8, 8]),
            ],
            [
                helper.make_tensor_value_info("c_out", TensorProto.BOOL, []),
                helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [1, 3, 8, 8]),
            ],
        )
        trips = helper.make_tensor("n", TensorProto.INT64, [], [2])
        nodes = [
            helper.make_node("Constant", [], ["n"], value=trips),
            helper.make_node("Loop", ["n", "", "x"], ["y"], body=body),
        ]
    elif kind == "Foo":
        nodes = [helper.make_node("Foo", ["x"], ["y"], domain="com.example")]
        opsets.append(helper.make_opsetid("com.example", 1))
    else:
        nodes = [helper.make_node("Identity", ["x"], ["y"])]
    model = helper.make_model(
        helper.make_graph(nodes, f"only_{kind.lower()}", [x], [y]), opset_imports=opsets
    )
    path = tmp_path / f"only_{kind.lower()}.onnx"
    onnx.save(model, path)
    return path


@pytest.mark.onnx
@pytest.mark.parametrize(
    "kind, why",
    [("Loop", "unsupported ops: Loop x1"), ("Foo", "unsupported ops: com.example.Foo x1"), ("Identity", "")],
)
@pytest.mark.parametrize("command", [*COMMANDS, ["survey", "--out", "{tmp}/survey"]], ids=" ".join)
def test_an_onnx_model_without_a_timeable_layer_is_refused(tmp_path, capsys, kind, why, command):
    path = _onnx_file(tmp_path, kind)
    argv = [command[0], str(path), *(c.format(tmp=tmp_path) for c in command[1:])]
    err = cli_error(capsys, argv)
    assert f"{path.stem} has no layer the roofline can time" in err and why in err, err
    assert not (tmp_path / "survey").exists()


# -- random mutations -------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.sampled_from([0, 1, -1, 2, 3, 16, 2**31, 2**53 + 1, 10**30])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.sampled_from(["conv", "x", "conv1", "relu1", "add", "batch", "global", "max", "roofline-ir"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def _paths(value, prefix=()):
    """Every (container path, key) in a JSON document."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield (*prefix, key)
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield (*prefix, i)
            yield from _paths(child, (*prefix, i))


BASE = valid_doc()
PATHS = list(_paths(BASE))


@st.composite
def mutated_documents(draw):
    doc = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        try:
            parent = doc
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]]
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed it
        action = draw(st.sampled_from(["replace", "delete", "duplicate"]))
        if action == "replace":
            parent[path[-1]] = draw(JSON_VALUES)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, list):
            parent.insert(path[-1], copy.deepcopy(parent[path[-1]]))
        else:
            parent[draw(st.text(max_size=6))] = copy.deepcopy(parent[path[-1]])
    return doc


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=mutated_documents())
def test_random_mutations_load_or_raise_one_line_errors(doc):
    try:
        net = read_network(doc, source="mutated.json")
    except RooflineError as exc:
        text = str(exc)
        assert text.startswith("mutated.json: ") and "\n" not in text
        assert text.endswith("fix the file or re-export it with roofline")
        return
    # What loads is usable: it scales to batch 1 and every count is finite.
    from roofline import Target
    from roofline.analysis.predict import evaluate

    per_image = net.with_batch(1)
    if per_image.flops() > 0:
        est = evaluate(per_image, Target.of("v100"), 8)
        assert all(math.isfinite(v) for v in (est.latency_s, est.utilization, est.arithmetic_intensity))
