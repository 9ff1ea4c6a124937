"""Per-kernel latency lookup table: keys, measured overrides, merging and the JSON file."""

import dataclasses
import json
from collections import Counter

import pytest

from roofline import RooflineError, evaluate, get_gpu
from roofline.analysis.latency_table import (
    Entry,
    LatencyTable,
    kernel_key,
    load,
    merge,
    network_latency,
    predicted_table,
    save,
)
from roofline.analysis.predict import FusedNetwork
from roofline.analysis.target import Target
from roofline.model import zoo
from roofline.model.ir import Network
from unit_tests.helpers import ew, network

pytestmark = pytest.mark.analytic

US = 1e-6


@pytest.fixture(scope="module")
def resnet18_v100():
    return evaluate(zoo.load("resnet18"), Target.of("v100", "fp16"), 8)


def keys_of(net: Network, batch: int) -> list[str]:
    return [kernel_key(k, batch) for k in FusedNetwork.of(net).kernels]


def renamed(net: Network) -> Network:
    def n(name: str) -> str:
        return f"other/{name}"

    layers = tuple(
        dataclasses.replace(
            layer, name=n(layer.name), inputs=tuple(map(n, layer.inputs)), output=n(layer.output)
        )
        for layer in net.layers
    )
    return dataclasses.replace(
        net,
        layers=layers,
        inputs=tuple((n(name), s) for name, s in net.inputs),
        outputs=tuple(map(n, net.outputs)),
    )


# -- keys ---------------------------------------------------------------------


def test_repeated_resnet56_blocks_share_keys():
    keys = keys_of(zoo.load("cifar_resnet56"), 8)
    counts = Counter(keys)
    # 59 kernels: stem, 3 stages of 9 basic blocks (2 kernels each; the first
    # block of stages 2 and 3 has 3: strided conv, conv+bn, pad shortcut+add+relu),
    # pool, fc = 1 + 18 + 19 + 19 + 1 + 1. Distinct: stem 1, stage 1 2, stages
    # 2 and 3 5 each (3 downsampling + 2 repeated), pool 1, fc 1 = 15.
    assert len(keys) == 59
    assert len(counts) == 15
    assert sorted(counts.values()) == [1] * 9 + [8, 8, 8, 8, 9, 9]
    assert (
        "conv(dilation=1x1,kernel=3x3,padding=1x1,stride=1x1)+norm(channels=16,fn=batch)"
        "+elementwise(fn=add)+elementwise(fn=relu)|in=8x16x32x32,8x16x32x32|out=8x16x32x32|w=2320"
    ) in counts


def test_key_is_batch_specific_and_name_independent():
    net = zoo.load("resnet18")
    assert keys_of(renamed(net), 8) == keys_of(net, 8)
    assert set(keys_of(net, 8)).isdisjoint(keys_of(net, 16))
    assert keys_of(net, 8)[0].endswith("|in=8x3x224x224|out=8x64x112x112|w=9472")


def test_key_writes_shapes_the_kernel_boundary_does_not_imply():
    # SE gating as one pointwise kernel: sigmoid's output is not the kernel's output shape.
    x, s = (1, 32, 8, 8), (1, 32, 1, 1)
    net = network(
        [ew("g", "sigmoid", ["s"], [s]), ew("m", "mul", ["x", "g"], [x, s], x)], [("x", x), ("s", s)]
    )
    (kernel,) = FusedNetwork.of(net).kernels
    assert kernel_key(kernel, 2) == (
        "elementwise(fn=sigmoid)@2x32x1x1>2x32x1x1+elementwise(fn=mul)@2x32x8x8,2x32x1x1>2x32x8x8"
        "|in=2x32x1x1,2x32x8x8|out=2x32x8x8|w=0"
    )


# -- predicted and measured ------------------------------------------------------


def test_predicted_table_reproduces_the_model(resnet18_v100):
    est = resnet18_v100
    table = predicted_table(est)
    assert (table.gpu, table.dtype, table.backend) == ("v100-sxm2", "fp16", "roofline")
    assert len(table.entries) == 21  # 23 kernels; layer1's two blocks are identical
    assert all(e.source == "predicted" and e.samples is None for e in table.entries.values())
    result = network_latency(est, table)
    assert result.latency_s == est.latency_s
    assert (result.measured, result.modelled) == (0, 23)
    assert result.sources == ("model",) * 23
    assert result.throughput_img_s == 8 / est.latency_s
    assert result.to_dict() == {
        "latency_s": est.latency_s,
        "throughput_img_s": 8 / est.latency_s,
        "measured_layers": 0,
        "modelled_layers": 23,
        "backend": "roofline",
    }


@pytest.mark.parametrize("index", [0, 2])  # the stem is unique; layer1's first conv appears twice
def test_measured_entry_overrides_every_kernel_with_its_key(resnet18_v100, index):
    est = resnet18_v100
    keys = [kernel_key(k, 8) for k in est.fused.kernels]
    key = keys[index]
    hits = keys.count(key)
    assert hits == (1 if index == 0 else 2)
    entries = dict(predicted_table(est).entries)
    entries[key] = Entry(float(est.time_s[index]) + 100 * US, "measured", 50, "test")
    result = network_latency(est, LatencyTable("v100-sxm2", "fp16", "roofline", entries))
    assert result.latency_s - est.latency_s == pytest.approx(hits * 100 * US, abs=1e-15)
    assert (result.measured, result.modelled) == (hits, 23 - hits)
    assert [i for i, s in enumerate(result.sources) if s == "measured"] == [
        i for i, k in enumerate(keys) if k == key
    ]


def test_network_latency_refuses_another_gpu_or_dtype(resnet18_v100):
    with pytest.raises(RooflineError, match="not comparable.*gpu"):
        network_latency(resnet18_v100, LatencyTable(get_gpu("a100").key, "fp16", "tensorrt", {}))
    with pytest.raises(RooflineError, match="not comparable.*dtype"):
        network_latency(resnet18_v100, LatencyTable("v100-sxm2", "fp32", "tensorrt", {}))


# -- merge --------------------------------------------------------------------


def table(**entries: Entry) -> LatencyTable:
    return LatencyTable("v100-sxm2", "fp16", "tensorrt", entries)


def test_merge_precedence():
    pred = Entry(1e-5, "predicted")
    few, many, tie = Entry(2e-5, "measured", 10), Entry(3e-5, "measured", 100), Entry(4e-5, "measured", 100)
    merged = merge(table(a=few, b=pred, c=many, d=pred), table(a=pred, b=few, c=few, e=pred))
    assert merged.entries == {"a": few, "b": few, "c": many, "d": pred, "e": pred}
    assert merge(table(k=many), table(k=tie)).entries["k"] == tie  # equal samples: the later table
    assert merge(table(k=Entry(1e-5, "predicted")), table(k=pred)).entries["k"] is pred
    assert merge(table(k=Entry(5e-5, "measured")), table(k=few)).entries["k"] == few  # no count = 0


@pytest.mark.parametrize(
    "other, field",
    [
        (LatencyTable("a100-sxm4-40gb", "fp16", "tensorrt", {}), "gpu"),
        (LatencyTable("v100-sxm2", "int8", "tensorrt", {}), "dtype"),
        (LatencyTable("v100-sxm2", "fp16", "pytorch", {}), "backend"),
    ],
)
def test_merge_refuses_mismatched_tables(other, field):
    with pytest.raises(RooflineError, match=f"different {field}"):
        merge(table(), other)


def test_merge_names_both_tables_it_refuses():
    trt, torch = table(), LatencyTable("v100-sxm2", "fp16", "pytorch", {})
    with pytest.raises(RooflineError) as exc:
        merge(table(), trt, torch, names=["a.json", "b.json", "c.json"])
    assert str(exc.value) == (
        "cannot merge latency tables with different backend: a.json has 'tensorrt', c.json has 'pytorch'; "
        "merge only tables of one GPU, dtype and backend"
    )
    with pytest.raises(ValueError, match="one name per table"):
        merge(trt, torch, names=["a.json"])


def test_entry_validation():
    with pytest.raises(RooflineError, match="positive"):
        Entry(0.0, "measured")
    with pytest.raises(RooflineError, match="unknown source"):
        Entry(1e-5, "guessed")


# -- file ---------------------------------------------------------------------


def test_save_load_round_trip_is_atomic(tmp_path, resnet18_v100):
    entries = dict(predicted_table(resnet18_v100, backend="tensorrt").entries)
    first = next(iter(entries))
    entries[first] = Entry(1.5e-4, "measured", 200, "kernels/bench.py on host, 2024-05-01")
    original = LatencyTable("v100-sxm2", "fp16", "tensorrt", entries)
    path = tmp_path / "v100.json"
    save(original, path)
    save(original, path)  # overwriting goes through the same temp-and-replace
    assert [p.name for p in tmp_path.iterdir()] == ["v100.json"]
    assert load(path) == original
    data = json.loads(path.read_text())
    assert (data["format"], data["version"], data["backend"]) == ("roofline-latency-table", 1, "tensorrt")
    assert list(data["entries"]) == sorted(entries)
    assert data["entries"][first] == {
        "latency_s": 1.5e-4,
        "source": "measured",
        "samples": 200,
        "provenance": "kernels/bench.py on host, 2024-05-01",
    }


def test_loaded_a100_table_does_not_apply_to_v100(tmp_path, resnet18_v100):
    path = tmp_path / "a100.json"
    save(LatencyTable("a100-sxm4-40gb", "fp16", "roofline", {"k": Entry(1e-5, "measured", 3)}), path)
    assert load(path).gpu == "a100-sxm4-40gb"
    with pytest.raises(RooflineError, match="not comparable"):
        network_latency(resnet18_v100, load(path))


def valid() -> dict:
    return {
        "format": "roofline-latency-table",
        "version": 1,
        "gpu": "v100",
        "dtype": "fp16",
        "backend": "tensorrt",
        "entries": {"k": {"latency_s": 1e-5, "source": "measured", "samples": 5, "provenance": "x"}},
    }


def with_entry(**changes) -> dict:
    data = valid()
    data["entries"]["k"].update(changes)
    return data


def test_load_accepts_gpu_aliases(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps(valid()))
    assert load(path) == LatencyTable("v100-sxm2", "fp16", "tensorrt", {"k": Entry(1e-5, "measured", 5, "x")})


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("{not json", "not valid JSON"),
        (json.dumps({**valid(), "format": "roofline-calibration"}), "not a roofline-latency-table version 1"),
        (json.dumps({**valid(), "version": 2}), "not a roofline-latency-table version 1"),
        (json.dumps(with_entry(latency_s=-1e-5)), r"entries\.k\.latency_s must be positive, got -1e-05"),
        (json.dumps(with_entry(latency_s="fast")), r"entries\.k\.latency_s must be a finite number"),
        (json.dumps(with_entry(source="guessed")), r"entries\.k\.source must be one of predicted, measured"),
        (json.dumps(with_entry(samples=-1)), r"entries\.k\.samples must be an integer >= 0"),
        (json.dumps(with_entry(samples=2.5)), r"entries\.k\.samples must be an integer"),
        (json.dumps(with_entry(provenance=3)), r"entries\.k\.provenance must be a string"),
        (json.dumps({**valid(), "entries": {"k": 3}}), r"entries\.k must be an object, got a number"),
        (json.dumps({**valid(), "entries": []}), "entries must be an object, got a list"),
        (json.dumps({k: v for k, v in valid().items() if k != "backend"}), "backend is missing"),
        (json.dumps({**valid(), "backend": ""}), "backend must be a non-empty string"),
        (json.dumps({**valid(), "dtype": "fp64"}), "dtype must be one of fp32, tf32"),
        (json.dumps({**valid(), "gpu": "v1000"}), "gpu 'v1000' is not in the GPU database"),
    ],
)
def test_bad_files_are_one_line_errors_naming_the_path(tmp_path, text, fragment):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(RooflineError, match=fragment) as exc:
        load(path)
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)
    if "JSON" not in fragment and "version 1" not in fragment:
        assert str(exc.value).endswith("fix the file, or write it again with `roofline latency-table`")


def test_null_samples_and_missing_provenance_load(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({**valid(), "entries": {"k": {"latency_s": 2e-5, "source": "predicted",
                                                              "samples": None}}}))  # fmt: skip
    assert load(path).entries["k"] == Entry(2e-5, "predicted", None, "")


def test_missing_file(tmp_path):
    path = tmp_path / "absent.json"
    with pytest.raises(RooflineError, match="does not exist") as exc:
        load(path)
    assert str(path) in str(exc.value)


# -- the CLI: --merge takes one file and repeats; the new table's backend --------------------------------


def _write_table(path, backend, gpu="v100-sxm2", latency=1e-5):
    save(LatencyTable(gpu, "fp16", backend, {"k": Entry(latency, "measured", 7, "test")}), path)
    return str(path)


def _cli(capsys, *argv):
    from roofline.cli.main import main

    code = main(["latency-table", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_merge_before_the_models_keeps_the_models(capsys, tmp_path):
    trt = _write_table(tmp_path / "trt.json", "tensorrt")
    out = str(tmp_path / "out.json")
    code, stdout, err = _cli(capsys, "--merge", trt, "resnet18", "--batch", "8", "--out", out, "--json")
    assert (code, err) == (0, "")
    table = load(out)
    predicted = predicted_table(evaluate(zoo.load("resnet18"), Target.of("v100", "fp16"), 8))
    assert set(table.entries) == set(predicted.entries) | {"k"}
    # The predictions hold for any backend: the new table takes the merged tables' backend.
    assert table.backend == "tensorrt" and json.loads(stdout)["backend"] == "tensorrt"
    assert table.entries["k"] == Entry(1e-5, "measured", 7, "test")


def test_cli_merge_repeats(capsys, tmp_path):
    few = _write_table(tmp_path / "few.json", "tensorrt")
    many = tmp_path / "many.json"
    more = {"k": Entry(3e-5, "measured", 70, "more"), "k2": Entry(4e-5, "measured", 9, "other")}
    save(LatencyTable("v100-sxm2", "fp16", "tensorrt", more), many)
    out = str(tmp_path / "out.json")
    code, *_ = _cli(capsys, "resnet18", "--batch", "8", "--merge", few, "--merge", str(many), "--out", out)
    assert code == 0 and load(out).entries["k"].samples == 70 and "k2" in load(out).entries
    code, *_ = _cli(capsys, "resnet18", "--batch", "8", "--merge", str(many), "--merge", few, "--out", out)
    assert load(out).entries["k"].samples == 70  # measured: more samples win, whatever the order
    assert _cli(capsys, "resnet18", "--batch", "8", "--out", out)[0] == 0
    assert load(out).backend == "roofline"  # no --merge: a predicted-only table


@pytest.mark.parametrize(
    "second, fragment",
    [
        ({"backend": "pytorch"}, "different backend: {a} has 'tensorrt', {b} has 'pytorch'"),
        ({"backend": "tensorrt", "gpu": "a100-sxm4-40gb"},
         "different gpu: {a} has 'v100-sxm2', {b} has 'a100-sxm4-40gb'"),
    ],
)  # fmt: skip
def test_cli_refuses_to_merge_tables_of_two_backends_or_gpus(capsys, tmp_path, second, fragment):
    from unit_tests.helpers import cli_error

    a = _write_table(tmp_path / "a.json", "tensorrt")
    b = _write_table(tmp_path / "b.json", **second)
    out = tmp_path / "out.json"
    err = cli_error(capsys, ["latency-table", "resnet18", "--merge", a, "--merge", b, "--out", str(out)])
    assert fragment.format(a=a, b=b) in err and not out.exists()


def test_cli_refuses_a_merged_table_of_another_gpu_than_the_target(capsys, tmp_path):
    from unit_tests.helpers import cli_error

    a100 = _write_table(tmp_path / "a100.json", "tensorrt", gpu="a100-sxm4-40gb")
    err = cli_error(capsys, ["latency-table", "resnet18", "--gpu", "v100", "--merge", a100, "--out",
                             str(tmp_path / "out.json")])  # fmt: skip
    assert f"different gpu: the predicted table (--gpu v100-sxm2 --dtype fp16) has 'v100-sxm2', {a100}" in err
