"""The learned utilization predictor: features, the family split, the model file, --learned and learn."""

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roofline import RooflineError
from roofline.analysis.predict import evaluate
from roofline.analysis.target import Target
from roofline.cli.main import main
from roofline.model import zoo
from roofline.model.builder import NetBuilder
from roofline.model.ir import Network, Softmax
from roofline.studies.learned import features, training
from roofline.studies.learned.features import (
    COLUMNS,
    FEATURES,
    FeatureTable,
    Sample,
    build_table,
    family,
    graph_counts,
    parse_table,
)
from unit_tests.helpers import cli_error

pytestmark = pytest.mark.analytic


@pytest.fixture(autouse=True, scope="module")
def private_cache(tmp_path_factory):
    """Trained models go to a fresh cache: the first use trains, later ones read the pickle."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ROOFLINE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


def block_net(name="handnet", width=32) -> Network:
    """conv-bn-relu, depthwise conv-bn-silu, grouped conv, residual add, pool, linear, softmax."""
    b = NetBuilder(name, (1, 3, 32, 32))
    x = b.act(b.bn(b.conv(b.input, width, 3)), "relu")
    d = b.act(b.bn(b.conv(x, width, 3, groups=width)), "silu")
    g = b.conv(d, width, 3, groups=4)
    y = b.global_pool(b.add(g, x))
    logits = b.linear(y, 10)
    net = b.network(resolution=32)
    soft = Softmax(name="softmax", inputs=(logits,), output="softmax", input_shapes=((1, 10),),
                   output_shape=(1, 10))  # fmt: skip
    return Network(name=net.name, inputs=net.inputs, outputs=("softmax",), layers=(*net.layers, soft),
                   resolution=32)  # fmt: skip


def test_the_studys_counts_on_a_hand_built_network():
    net = block_net()
    counts = graph_counts(net)
    # conv x3; linear x1; relu, silu, softmax; bn x2, add, pool
    assert counts["conv_layers"] == 3
    assert counts["linear_layers"] == 1
    assert counts["activation_layers"] == 3
    assert counts["other_layers"] == 4
    params = (32 * 3 * 9) + 2 * 32 + (32 * 1 * 9) + 2 * 32 + (32 * 8 * 9) + (10 * 32 + 10)
    assert net.params() == params
    assert counts["model_size_mb"] == params * 4 / 1e6
    assert counts["gflops"] == net.flops() / 1e9


def test_grouped_and_depthwise_shares_by_hand():
    net = block_net()
    dense = 2 * 32 * 32 * 32 * 3 * 9
    depthwise = 2 * 32 * 32 * 32 * 1 * 9
    grouped = 2 * 32 * 32 * 32 * 8 * 9
    total = dense + depthwise + grouped + 2 * 32 * 10
    assert net.flops() == total
    assert features.conv_flops_shares(net) == (grouped / total, depthwise / total)


def test_estimate_features_are_the_analytic_models_own():
    net = block_net()
    target = Target.of("rtx-4090", "fp16", engine="torch")
    est = evaluate(net, target, 64)
    f = features.estimate_features(est)
    assert set(f) == set(FEATURES)
    peak = target.gpu.peak("fp16", "fp32")  # eager torch accumulates in FP32: the half rate on GeForce
    assert f["peak_flops_s"] == peak == 165.2e12
    assert f["analytic_utilization"] == pytest.approx(est.achieved_flops_s / peak, rel=1e-12)
    assert f["kernels"] == len(est.fused.kernels) == len(net.layers)  # eager: one kernel per layer
    memory = [t for t, b in zip(est.time_s, est.kernel_bound(), strict=True) if b == "memory"]
    assert f["memory_time_share"] == pytest.approx(sum(memory) / est.latency_s)
    assert f["batch"] == 64
    assert (f["engine_fp32_accumulate"], f["engine_folds_bn"], f["engine_fuses_pointwise"]) == (1, 0, 0)
    trt = features.estimate_features(evaluate(net, Target.of("rtx-4090", "fp16"), 64))
    assert trt["kernels"] < f["kernels"] and trt["engine_folds_bn"] == 1


@pytest.mark.parametrize(
    ("model", "stem"),
    [
        ("resnext50_32x4d", "resnext"), ("timm:resnext101_64x4d.fb_in1k", "resnext"),
        ("tf_efficientnet_b0", "efficientnet"), ("efficientnetv2_rw_s", "efficientnet"),
        ("mobilenetv3_large_100", "mobilenet"), ("mobilenetv2_100", "mobilenet"),
        ("swinv2_tiny_window8_256", "swin"), ("vit_base_patch16_224", "vit"), ("levit_128", "levit"),
        ("repvit_m1", "repvit"), ("dm_nfnet_f0", "nfnet"), ("some/dir/mynet.json", "mynet"),
        ("3dnet", "3dnet"),
    ],
)  # fmt: skip
def test_family_is_the_architecture_stem(model, stem):
    assert family(model) == stem


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([f"fam{i}" for i in range(9)]), min_size=2, max_size=80))
def test_family_folds_never_leak_a_family(names):
    fams = np.array(names)
    if len(set(names)) < 2:
        with pytest.raises(RooflineError, match="two model families"):
            training.family_folds(fams)
        return
    seen = np.zeros(len(fams), dtype=int)
    for train, test in training.family_folds(fams):
        assert not set(fams[train]) & set(fams[test])
        assert len(train) + len(test) == len(fams)
        seen[test] += 1
    assert (seen == 1).all()  # every row is predicted exactly once


def test_gpu_split_holds_out_the_whole_gpu():
    gpus = np.array(["a", "b", "a", "c", "b"])
    train, test = training.gpu_split(gpus, "b")
    assert list(test) == [1, 4] and list(train) == [0, 2, 3]
    with pytest.raises(RooflineError, match="holding out z"):
        training.gpu_split(gpus, "z")


def test_grid_shortcut_equals_separate_fits():
    """One fit per depth stands for every size of the grid (warm-start trees, staged boosting)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 4))
    y = x[:, 0] - 2 * x[:, 1] ** 2 + rng.normal(scale=0.1, size=80)
    with training.one_thread():
        for kind in ("forest", "boosting", "linear"):
            for params, predicted in training.grid_predictions(kind, x[:60], y[:60], x[60:]).items():
                alone = training.make(kind, dict(params)).fit(x[:60], y[:60]).predict(x[60:])
                np.testing.assert_array_equal(predicted, alone)


ZOO_ROWS = ["resnet18", "resnet50", "mobilenetv2_100", "efficientnet_b0", "regnetx_002", "dla34",
            "repvgg_a2", "gernet_s", "vgg16", "hrnet_w18_small", "dpn68", "mixnet_s"]  # fmt: skip


def zoo_samples():
    """Made-up throughputs of zoo models on two GPUs: the code path, not a claim about any GPU."""
    out = []
    for i, name in enumerate(ZOO_ROWS):
        for gpu, scale in (("rtx-4090", 2.0), ("rtx-3090", 1.0)):
            net = zoo.load(name)
            util = 0.05 + 0.03 * (i % 7)
            peak = Target.of(gpu, "fp16", engine="torch").gpu.peak("fp16", "fp32")
            out.append(Sample(name, net.resolution, 256, gpu, "torch", scale * util * peak / net.flops()))
    return out


@pytest.fixture(scope="module")
def zoo_table():
    table, skipped = build_table(zoo_samples(), lambda model, res: zoo.load(model))
    assert not skipped
    return table


def test_table_round_trips_through_csv(zoo_table):
    again = parse_table(zoo_table.to_csv(), "t.csv")
    assert len(again) == len(zoo_table) == 2 * len(ZOO_ROWS)
    for name in COLUMNS:
        if name in features.TEXT_COLUMNS:
            assert list(again[name]) == list(zoo_table[name])
        else:
            np.testing.assert_allclose(again[name], zoo_table[name], rtol=1e-6, equal_nan=True)
    # The measured utilization is the definition: throughput x FLOPs / peak.
    u = again["throughput_img_s"] * again["gflops"] * 1e9 / again["peak_flops_s"]
    np.testing.assert_allclose(u, again["flop_utilization"], rtol=1e-5)


def test_model_round_trips_through_its_file(zoo_table, tmp_path):
    path = tmp_path / "model.csv"
    path.write_text(zoo_table.to_csv())
    direct = training.train(parse_table(path.read_text()))
    first = training.load_model(path)  # trains and caches
    second = training.load_model(path)  # reads the cache
    assert len(list(training.cache_dir().glob("*.pickle"))) >= 1
    query = {n: zoo_table[n][:5] for n in FEATURES}
    for model in (first, second):
        got, want = model.predict(query), direct.predict(query)
        np.testing.assert_array_equal(got.utilization, want.utilization)
        np.testing.assert_array_equal(got.low, want.low)


def test_a_changed_file_is_not_served_from_the_cache(zoo_table, tmp_path):
    path = tmp_path / "model.csv"
    path.write_text(zoo_table.to_csv())
    before = training.load_model(path)
    path.write_text(zoo_table.subset(np.arange(10)).to_csv())
    after = training.load_model(path)
    assert (before.rows, after.rows) == (len(zoo_table), 10)


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda lines: ["model,foo", *lines[1:]], "is not a features table"),
        (lambda lines: [lines[0]], "has no rows"),
        (lambda lines: [lines[0], lines[1] + ",1"], "t.csv:2:"),
        (lambda lines: [lines[0], lines[1].replace("rtx-4090", "")], "gpu is empty"),
        (lambda lines: [lines[0], _cell(lines[1], "batch", "lots")], "batch 'lots' is not a number"),
        (lambda lines: [lines[0], _cell(lines[1], "sms", "-3")], "sms '-3' is out of range"),
        (lambda lines: [lines[0], _cell(lines[1], "flop_utilization", "nan")], "out of range"),
    ],
)  # fmt: skip
def test_bad_tables_are_one_line_errors(zoo_table, mutate, fragment):
    lines = zoo_table.to_csv().splitlines()
    with pytest.raises(RooflineError, match=fragment) as info:
        parse_table("\n".join(mutate(lines)), "t.csv")
    assert "\n" not in str(info.value) and "roofline learn" in str(info.value)


def _cell(line: str, column: str, value: str) -> str:
    cells = line.split(",")
    cells[COLUMNS.index(column)] = value
    return ",".join(cells)


def test_predictions_carry_their_spread_and_extrapolations(zoo_table):
    model = training.train(zoo_table)
    est = evaluate(zoo.load("resnet50"), Target.of("v100", "fp16"), 256)  # neither GPU nor engine seen
    (guess,) = training.predict_estimates(model, [est])
    d = guess.to_dict()
    assert set(est.to_dict(layers=False)["predicted"]) <= set(d)
    assert d["uncertainty"]["utilization_low"] <= d["utilization"] <= d["uncertainty"]["utilization_high"]
    assert d["throughput_img_s"] == pytest.approx(d["utilization"] * est.peak.flops_s / est.flops_per_image)
    assert d["headroom"] == pytest.approx(1 - d["utilization"])
    assert any("GPU v100" in e for e in d["extrapolated"]) and any(
        "engine tensorrt" in e for e in d["extrapolated"]
    )


def test_compare_scores_every_set_on_both_splits(zoo_table, monkeypatch):
    small = {
        "linear": {},
        "boosting": {"max_iter": [5, 10], "max_depth": [2]},
        "forest": {"n_estimators": [5, 10], "max_depth": [4]},
    }
    monkeypatch.setattr(training, "GRIDS", small)
    c = training.compare(zoo_table)
    assert c.held_out_gpu in ("rtx-3090", "rtx-4090")
    keys = {(s.split, s.features, s.regressor) for s in c.scores}
    for split in ("family", "gpu", "random"):
        assert (split, "analytic", "none") in keys
        for fs in training.FEATURE_SETS:
            for kind in training.REGRESSORS:
                assert (split, fs.name, kind) in keys
    assert all(math.isfinite(s.rmsle) and s.rmsle >= 0 and s.test_rows > 0 for s in c.scores)
    analytic = c.score("family", "analytic", "none")
    u = zoo_table["analytic_utilization"]
    assert analytic.rmsle == pytest.approx(training.rmsle(u, zoo_table["flop_utilization"]))


# --- the CLI -----------------------------------------------------------------------------------------------


def test_analyze_learned_on_an_unseen_family(capsys, tmp_path):
    """The shipped model on a network of no family it was trained on: finite, with a stated spread."""
    path = tmp_path / "zzqnet.json"
    path.write_text(zoo.dumps(block_net("zzqnet", width=64)))
    shipped = training.load_model()
    assert family("zzqnet") not in set(parse_table(_shipped_text())["family"])
    argv = ["analyze", str(path), "--gpu", "rtx-4090", "--engine", "torch", "--batch", "128", "--learned"]
    assert main([*argv, "--json", "--summary"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    learned = entry["learned"]
    for key in entry["predicted"]:
        assert math.isfinite(learned[key]) and learned[key] > 0
    spread = learned["uncertainty"]
    assert spread["utilization_low"] <= learned["utilization"] <= spread["utilization_high"]
    assert math.isfinite(spread["log_std"]) and spread["log_std"] >= 0
    assert learned["extrapolated"] == [] and learned["model"]["rows"] == shipped.rows
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "learned util %" in out and "standard deviation of the trees' log predictions" in out


def _shipped_text() -> str:
    from importlib import resources

    return resources.files("roofline.data.learned").joinpath(training.DEFAULT_TABLE).read_text()


def test_survey_learned_shows_the_headroom(capsys):
    argv = ["survey", "resnet18", "mobilenetv2_100", "--gpu", "rtx-3090", "--engine", "torch", "--learned"]
    assert main([*argv, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["models"]
    for row in rows:
        assert row["learned"]["headroom"] == pytest.approx(1 - row["learned"]["utilization"])
    assert main(argv) == 0
    out = capsys.readouterr().out
    table = out[out.index("Co-location headroom") :]
    # most idle first: the depthwise network leaves more of the GPU idle than ResNet-18
    assert table.index("mobilenetv2_100") < table.index("resnet18")


def test_learn_builds_the_table_and_skips_what_it_cannot_load(capsys, tmp_path):
    rows = ["model,infer_img_size,infer_samples_per_sec,infer_step_time,infer_batch_size,param_count"]
    for s in zoo_samples():
        if s.gpu == "rtx-4090":
            rows.append(f"{s.model},{s.resolution},{s.throughput_img_s:.2f},1.0,256,1.0")
    rows.append("cifar_resnet56,64,1000.0,1.0,256,1.0")  # stored at 32 px only: left out, named
    measured = tmp_path / "benchmark-infer-amp-nhwc-pt240-cu124-rtx4090.csv"
    measured.write_text("\n".join(rows) + "\n")
    out = tmp_path / "model.csv"
    assert main(["learn", str(measured), "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == len(ZOO_ROWS) and summary["gpus"] == ["rtx-4090"]
    assert [s["model"] for s in summary["skipped"]] == ["cifar_resnet56"]
    table = features.read_table(out)
    assert set(table["engine"]) == {"torch"} and (table["channels_last"] == 1).all()  # "nhwc" in the name
    # a features table is DATA too, and the written file is a model --learned-model reads
    assert main(["learn", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == len(ZOO_ROWS)
    assert main(["analyze", "resnet50", "--learned-model", str(out), "--json", "--summary"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["learned"]["model"]["rows"] == len(ZOO_ROWS)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["learn", "{tmp}/missing.csv"], "does not exist"),
        (["learn", "{tmp}/empty.csv"], "is empty"),
        (["learn", "{tmp}/model.csv", "--gpu", "nope"], "unknown GPU"),
        (["learn", "{tmp}/model.csv", "--out", "{tmp}"], "is a directory"),
        (["learn", "{tmp}/model.csv", "--target", "time_utilization"], "no time_utilization values"),
        (["learn", "{tmp}/model.csv", "--compare", "--held-out-gpu", "a100"], "holding out a100"),
        (["analyze", "resnet50", "--learned-model", "{tmp}/missing.csv"], "does not exist"),
        (["analyze", "resnet50", "--learned-model", "{tmp}/empty.csv"], "is not a features table"),
    ],
)  # fmt: skip
def test_learn_and_learned_bad_input(capsys, tmp_path, zoo_table, argv, fragment):
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "model.csv").write_text(zoo_table.to_csv())
    assert fragment in cli_error(capsys, [a.replace("{tmp}", str(tmp_path)) for a in argv])


def test_shipped_table_matches_the_analytic_model():
    """The shipped features hold the analytic model's outputs: after the model changes, rebuild the table.

    Only the zoo rows can be recomputed without torch; they are enough to see a stale table.
    """
    table = parse_table(_shipped_text())
    assert len(table) >= 1000 and len(set(table["gpu"])) >= 2 and len(set(table["family"])) >= 50
    names = set(zoo.zoo_names())
    picked = [
        i
        for i, m in enumerate(table["model"])
        if m in names and table["resolution"][i] == zoo.load(m).resolution  # the zoo's own IR, no trace
    ][:40]
    assert picked, "the shipped table holds no zoo model to check"
    for i in picked:
        sample = Sample(str(table["model"][i]), int(table["resolution"][i]), int(table["batch"][i]),
                        str(table["gpu"][i]), str(table["engine"][i]), float(table["throughput_img_s"][i]),
                        channels_last=bool(table["channels_last"][i]))  # fmt: skip
        fresh = FeatureTable.from_rows(
            [
                features.sample_row(
                    sample,
                    evaluate(
                        zoo.load(sample.model),
                        Target.of(sample.gpu, "fp16", engine=sample.engine),
                        sample.batch,
                    ),
                )
            ]
        )
        for name in FEATURES:
            assert fresh[name][0] == pytest.approx(table[name][i], rel=1e-5), (
                f"{sample.model} on {sample.gpu}/{sample.engine}: {name} is {fresh[name][0]:.7g} now, "
                f"{table[name][i]:.7g} in the shipped table: rebuild it (README, 'Learned utilization "
                "predictor')"
            )


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_text_is_a_table_or_one_line_error(zoo_table_text, data):
    """Mutated and arbitrary features tables read back or fail with one RooflineError line."""
    lines = zoo_table_text.splitlines()[:4]
    choice = data.draw(st.sampled_from(["text", "cell", "cut"]))
    if choice == "text":
        text = data.draw(st.text(max_size=300))
    elif choice == "cell":
        row = data.draw(st.integers(1, len(lines) - 1))
        cells = lines[row].split(",")
        cells[data.draw(st.integers(0, len(cells) - 1))] = data.draw(st.text(max_size=12))
        text = "\n".join([*lines[:row], ",".join(cells), *lines[row + 1 :]])
    else:
        text = "\n".join(lines)[: data.draw(st.integers(0, len("\n".join(lines))))]
    try:
        table = parse_table(text, "t.csv")
    except RooflineError as exc:
        assert "\n" not in str(exc)
    else:
        assert len(table) >= 1 and all(np.isfinite(table[n]).all() for n in FEATURES)


@pytest.fixture(scope="module")
def zoo_table_text(zoo_table):
    return zoo_table.to_csv()


def test_learn_reads_results_files_and_their_time_utilization(capsys, tmp_path):
    """The suite's results: each model benchmark's engine, and nvidia-smi's busy share as a second target."""
    from roofline.perf.results import COMPARED_FIELDS, Benchmark, PerfResults, write_results

    environment = {name: "x" for name in COMPARED_FIELDS} | {
        "gpu_key": "rtx-4090",
        "backends": {"torch": "2.5"},
    }
    benches = {}
    for i, name in enumerate(ZOO_ROWS[:6]):
        extra = {"kind": "model", "model": name, "resolution": zoo.load(name).resolution, "batch": 64,
                 "backend": "torch", "telemetry": {"gpu_util_pct_mean": 60.0 + 5 * i}}  # fmt: skip
        benches[f"{name}-b64"] = Benchmark.from_samples(
            f"{name}-b64", [1000.0 + 100 * i] * 3, "img/s", extra=extra
        )
    path = tmp_path / "results.json"
    write_results(path, PerfResults(environment, benches))
    out = tmp_path / "model.csv"
    assert main(["learn", str(path), "--out", str(out), "--target", "time_utilization", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == 6 and summary["target"] == "time_utilization"
    table = features.read_table(out)
    np.testing.assert_allclose(sorted(table["time_utilization"]), [0.60, 0.65, 0.70, 0.75, 0.80, 0.85])
    assert set(table["engine"]) == {"torch"} and set(table["gpu"]) == {"rtx-4090"}
