"""Property: whatever file or number a user passes, the CLI either works or fails by the contract.

The contract (README, "The CLI"): exit 2, one to three lines on stderr starting
``roofline: error:``, nothing on stdout, no traceback (any exception other than
the parser's SystemExit fails the test), no NaN printed, and no file left
behind. Files are generated as raw bytes, text, arbitrary JSON, and valid
documents with one field replaced or dropped; option values are numbers and
strings outside every option's stated range.
"""

import contextlib
import io
import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roofline.cli.main import main
from roofline.model import zoo

pytestmark = pytest.mark.analytic

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Valid documents of every kind the CLI reads, to mutate one field at a time.
_IR = json.loads(zoo.dumps(zoo.load("cifar_resnet56")))
_CALIBRATION = {
    "format": "roofline-calibration", "version": 1, "gpu": "v100-sxm2", "source": "test",
    "dram_bytes_s": 8.0e11, "peak_flops_s": {"fp16": 1.0e14},
}  # fmt: skip
_TABLE = {
    "format": "roofline-latency-table", "version": 1, "gpu": "v100-sxm2", "dtype": "fp16",
    "backend": "roofline", "entries": {},
}  # fmt: skip

#: kind -> (argv for a file at PATH, a valid document or None, exit codes a valid-looking file may give)
READERS = {
    "ir": (lambda p: ["analyze", p, "--summary", "--batch", "8"], _IR, (0,)),
    "calibration": (
        lambda p: ["analyze", "cifar_resnet56", "--summary", "--calibration", p],
        _CALIBRATION,
        (0,),
    ),
    "latency table": (
        lambda p: ["analyze", "cifar_resnet56", "--summary", "--latency-table", p],
        _TABLE,
        (0,),
    ),
    "accuracy csv": (lambda p: ["survey", "cifar_resnet56", "--accuracy", p], None, (0,)),
    "perf results": (lambda p: ["perf-compare", p, p], None, (0, 1, 3, 4)),
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def mutated(draw, doc):
    """``doc`` with one field, at any depth, replaced by an arbitrary JSON value or removed."""
    doc = json.loads(json.dumps(doc))
    node = doc
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            return doc
        key = draw(st.sampled_from(keys))
        child = node[key]
        if isinstance(child, (dict, list)) and child and draw(st.booleans()):
            node = child
            continue
        if isinstance(node, dict) and draw(st.booleans()):
            del node[key]
        else:
            node[key] = draw(json_values)
        return doc


def contents(kind: str):
    doc = READERS[kind][1]
    raw = st.binary(max_size=64) | st.text(max_size=64).map(str.encode)
    as_json = json_values.map(lambda v: json.dumps(v).encode())
    if doc is None:
        return raw | as_json
    return raw | as_json | mutated(doc).map(lambda d: json.dumps(d).encode())


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse exits from inside parse_args
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def check_contract(code: int, out: str, err: str, allowed: tuple[int, ...]) -> None:
    assert code in (2, *allowed), (code, err)
    assert "nan" not in out.lower().split()
    if code == 2:
        lines = err.splitlines()
        assert out == "" and 1 <= len(lines) <= 3, err
        assert lines[-1].startswith("roofline: error: "), err


@pytest.mark.parametrize("kind", list(READERS))
def test_any_file_gets_a_result_or_a_one_line_error(kind):
    argv_for, _, allowed = READERS[kind]

    @SETTINGS
    @given(data=contents(kind))
    def check(data: bytes) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "input.file"
            path.write_bytes(data)
            cwd = os.getcwd()
            os.chdir(tmp)
            try:
                code, out, err = run(argv_for(str(path)))
            finally:
                os.chdir(cwd)
            check_contract(code, out, err, allowed)
            assert sorted(p.name for p in Path(tmp).iterdir()) == ["input.file"]

    check()


#: Every numeric option, with a command line that reaches it, and its inclusive bounds.
NUMBERS = [
    (["analyze", "resnet18", "--batch"], 1, 2**24),
    (["analyze", "resnet18", "--resolution"], 1, 8192),
    (["analyze", "resnet18", "--blocks-per-sm"], 1, 32),
    (["fold", "resnet18", "--factor"], 1, 64),
    (["survey", "resnet18", "--fold"], 1, 64),
    (["nats-sweep", "--batch"], 1, 2**24),
    (["nats-sweep", "--top"], 1, 1000),
    (["gpunet", "--samples"], 1, 10**6),
    (["gpunet", "--seed"], 0, 2**32 - 1),
    (["gpunet", "--tiers"], 1, 100),
]
FRACTIONS = [
    (["optimize-widths", "resnet18", "--tau"], 0.0, 1.0),
    (["optimize-widths", "resnet18", "--delta"], 0.0, 1.0),
    (["perf-compare", "a", "b", "--floor"], 0.0, 1.0),
    (["perf-compare", "a", "b", "--alpha"], 0.0, 1.0),
]


@st.composite
def out_of_range_integer(draw, low, high):
    return draw(
        st.integers(max_value=low - 1).map(str)
        | st.integers(min_value=high + 1).map(str)
        | st.floats(allow_nan=True, allow_infinity=True).filter(lambda f: not float(f).is_integer()).map(repr)
        | st.sampled_from(["nan", "inf", "-inf", "", "1e999", "0x10", "ten", " ", "--"])
    )


@pytest.mark.parametrize("prefix, low, high", NUMBERS, ids=[" ".join(n[0]) for n in NUMBERS])
def test_out_of_range_integers_fail_in_one_line(prefix, low, high):
    @SETTINGS
    @given(value=out_of_range_integer(low, high))
    def check(value: str) -> None:
        code, out, err = run([*prefix, value])
        assert code == 2, (value, err)
        check_contract(code, out, err, ())

    check()


@pytest.mark.parametrize("prefix, low, high", FRACTIONS, ids=[" ".join(n[0]) for n in FRACTIONS])
def test_out_of_range_fractions_fail_in_one_line(prefix, low, high):
    bad = (
        st.floats(max_value=low, allow_nan=False)
        | st.floats(min_value=high, exclude_min=True, allow_nan=False)
    ).map(repr) | st.sampled_from(["nan", "inf", "-inf", "", "half", "1/2"])

    @SETTINGS
    @given(value=bad)
    def check(value: str) -> None:
        code, out, err = run([*prefix, value])
        assert code == 2, (value, err)
        check_contract(code, out, err, ())

    check()
