"""The validation layer every reader uses: one line naming the file, the field, the problem and the fix."""

import pytest

from roofline import RooflineError
from roofline.schema import Fields

pytestmark = pytest.mark.analytic

FIX = "regenerate it"


def fields(data, where=""):
    return Fields(data, "f.json", FIX, where)


def test_good_values_pass_through():
    f = fields({"n": 3, "x": 0.5, "s": "fp16", "o": {"k": 1}, "l": [1]})
    assert (f.integer("n", 1), f.number("x", 0, 1), f.string("s", ("fp16",))) == (3, 0.5, "fp16")
    assert f.object("o").integer("k") == 1 and f.list("l", nonempty=True) == [1]
    assert f.integer("absent", default=None) is None


@pytest.mark.parametrize(
    "data, read, message",
    [
        ([1], lambda f: None, "f.json: the top level must be an object, got a list; regenerate it"),
        ({}, lambda f: f.integer("n"), "f.json: n is missing; regenerate it"),
        ({"n": 0}, lambda f: f.integer("n", 1), "f.json: n must be an integer >= 1, got 0; regenerate it"),
        ({"n": 2.5}, lambda f: f.integer("n"), "n must be an integer, got 2.5"),
        ({"n": True}, lambda f: f.integer("n"), "n must be an integer, got True"),
        ({"n": "3"}, lambda f: f.integer("n"), "n must be an integer, got '3'"),
        ({"x": float("nan")}, lambda f: f.number("x"), "x must be a finite number, got nan"),
        ({"x": -1.0}, lambda f: f.number("x", positive=True), "x must be positive, got -1.0"),
        ({"x": 2}, lambda f: f.number("x", 0, 1), "x must be in [0, 1], got 2"),
        ({"s": ""}, lambda f: f.string("s"), "s must be a non-empty string"),
        ({"s": "fp64"}, lambda f: f.string("s", ("fp16", "fp32")), "s must be one of fp16, fp32, got 'fp64'"),
        ({"o": [1]}, lambda f: f.object("o"), "f.json: o must be an object, got a list"),
        ({"o": {"k": -1}}, lambda f: f.object("o").integer("k", 0), "f.json: o.k must be an integer >= 0"),
        ({"l": {}}, lambda f: f.list("l"), "l must be a list, got an object"),
        ({"l": []}, lambda f: f.list("l", nonempty=True), "l must not be empty"),
    ],
)
def test_bad_values_name_file_field_and_fix(data, read, message):
    with pytest.raises(RooflineError) as exc:
        read(fields(data))
    text = str(exc.value)
    assert message in text and text.endswith(FIX) and "\n" not in text


def test_where_locates_nested_objects():
    with pytest.raises(RooflineError, match=r"f.json: layers\[2\].stride must be a list"):
        fields({"stride": 1}, "layers[2]").list("stride")
