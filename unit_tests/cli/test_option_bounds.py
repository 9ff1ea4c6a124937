"""Numbers at the CLI edge: finite and in stated bounds, else one line and exit 2; small promises kept."""

import json

import pytest

from roofline.cli.main import main
from unit_tests.helpers import cli_error

pytestmark = pytest.mark.analytic

HUGE = "99999999999999999999999"


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["analyze", "resnet50", "--batch", HUGE], "--batch: expected an integer from 1 to 16777216"),
        (["analyze", "resnet50", "--batch", str(2**63 - 1)], "--batch: expected an integer"),
        (["analyze", "resnet50", "--batch", "0"], "--batch"),
        (
            ["analyze", "resnet50", "--resolution", "100000"],
            "--resolution: expected an integer from 1 to 8192",
        ),
        (
            ["analyze", "resnet50", "--blocks-per-sm", "64"],
            "--blocks-per-sm: expected an integer from 1 to 32",
        ),
        (["optimize-widths", "resnet18", "--tau", "nan"], "--tau: expected a number in (0, 1]"),
        (["optimize-widths", "resnet18", "--tau", "inf"], "--tau"),
        (["optimize-widths", "resnet18", "--delta", "-1"], "--delta"),
        (["staircase", "resnet50", "--layer", "fc", "--widths", "1:100000000"], "<= 65536"),
        (["staircase", "resnet50", "--layer", "fc", "--widths", "1:65536:0"], "STEP >= 1"),
        (["gpunet", "--samples", "1000000000"], "--samples: expected an integer from 1 to 1000000"),
        (["gpunet", "--seed", "-1"], "--seed: expected an integer from 0 to 4294967295"),
        (["gpunet", "--tiers", "100000"], "--tiers: expected an integer from 1 to 100"),
        (["gpunet", "--tier-edges-ms", "nan,inf"], "--tier-edges-ms: expected up to 99 increasing"),
        (["gpunet", "--tier-edges-ms", "0.5,inf"], "--tier-edges-ms"),
        (["gpunet", "--samples", "3", "--tiers", "5"], "--tiers 5 is more than --samples 3"),
        (["nats-sweep", "--batch", "max"], "a search space is swept at one batch"),
        (["fold", "resnet18", "--factor", "1000"], "--factor: expected an integer from 1 to 64"),
        (["survey", "resnet18", "--fold", "0"], "--fold"),
        (["nats-sweep", "--top", "100000"], "--top"),
        (["batch-sweep", "resnet18", "--batch", "4"], "unrecognized arguments: --batch 4"),
        (["perf-compare", "a.json", "b.json", "--k", "nan"], "--k: expected a number"),
    ],
)
def test_out_of_range_numbers_fail_in_one_line(capsys, argv, fragment):
    assert fragment in cli_error(capsys, argv)


def test_staircase_says_why_no_width_is_optimal(capsys):
    assert main(["staircase", "resnet50", "--layer", "fc"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("optimal widths"))
    assert line.endswith("none yet: no step ends by width 2000; widen --widths to see where one does")


def test_a_model_named_twice_is_analysed_once(capsys):
    assert main(["analyze", "resnet18", "resnet18", "mobilenetv2_100", "--summary", "--json"]) == 0
    captured = capsys.readouterr()
    assert [e["model"] for e in json.loads(captured.out)] == ["resnet18", "mobilenetv2_100"]
    assert "resnet18 named more than once" in captured.err


def test_optimize_widths_names_the_network_it_writes(capsys, tmp_path):
    out = tmp_path / "w.json"
    assert main(["optimize-widths", "resnet18", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["name"] == "resnet18-latency-widths"


def test_empty_gpunet_tiers_are_null_not_nan(capsys):
    assert main(["gpunet", "--samples", "40", "--tier-edges-ms", "0.001,0.002,1000", "--json"]) == 0
    out = capsys.readouterr().out
    assert "NaN" not in out
    assert json.loads(out)["tiers"][0] == {
        "tier": 0, "count": 0, "min_latency_s": None, "max_latency_s": None, "best_flops_per_image": None,
        "best_encoding": None, "best_utilization": None,
    }  # fmt: skip
    assert main(["gpunet", "--samples", "40", "--tier-edges-ms", "0.001,0.002,1000"]) == 0
    assert "nan" not in capsys.readouterr().out


def test_the_parser_offers_the_width_modes_adjust_widths_takes():
    from roofline.analysis.widths import MODES
    from roofline.cli.main import WIDTH_MODES

    assert WIDTH_MODES == MODES
