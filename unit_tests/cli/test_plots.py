"""The survey's figures: model names never overlap, and every frontier is drawn where it can be seen."""

import itertools

import numpy as np
import pytest

from roofline import Target
from roofline.cli import plots
from roofline.model import zoo
from roofline.studies.survey import survey

pytestmark = pytest.mark.analytic

# Roughly timm's ImageNet top-1 for the zoo's ImageNet models: data to draw, not a reference.
TOP1 = {
    "resnet18": 69.76, "resnet50": 80.4, "wide_resnet50_2": 81.5, "resnext50_32x4d": 81.1,
    "resnext101_32x8d": 79.3, "seresnet50": 80.3, "seresnext50_32x4d": 81.3, "regnetx_002": 68.75,
    "regnetx_004": 72.4, "regnetx_016": 76.9, "regnetx_032": 78.2, "regnety_004": 74.0, "regnety_016": 77.9,
    "regnety_032": 82.0, "efficientnet_b0": 77.7, "efficientnet_b1": 78.8, "efficientnet_b2": 80.6,
    "efficientnetv2_s": 83.9, "efficientnetv2_m": 85.1, "mixnet_s": 75.99, "mixnet_m": 77.3,
    "mobilenetv2_100": 72.97, "mobilenetv3_large_100": 75.8, "dla34": 74.6, "dla60x_c": 67.9, "dpn68": 76.3,
    "dpn92": 80.0, "hrnet_w18_small": 72.3, "hrnet_w32": 78.5, "repvgg_a2": 76.5, "repvgg_b1": 78.4,
    "gernet_s": 76.9, "gernet_m": 80.7, "gernet_l": 81.3, "tresnet_m": 80.8, "cspresnet50": 79.6,
    "resnetrs50": 79.9, "vgg16": 71.6,
}  # fmt: skip


@pytest.fixture(scope="module")
def zoo_survey():
    """The whole zoo, folded by 4, with top-1 for all but the CIFAR models: the most crowded figures."""
    return survey(
        [zoo.load(n) for n in zoo.zoo_names()], Target.of("v100"), 256, fold_factor=4, accuracies=TOP1
    )


@pytest.fixture(scope="module")
def figures(zoo_survey):
    plt = plots._pyplot()
    drawn = {stem: plots.figure(draw) for stem, draw in plots.survey_drawings(zoo_survey).items()}
    yield drawn
    for fig in drawn.values():
        plt.close(fig)


def _names(ax):
    return [t for t in ax.texts if t.get_visible() and t.get_text()]


@pytest.mark.parametrize("stem", ["roofline", "pareto", "accuracy"])
def test_names_do_not_overlap(figures, stem):
    fig = figures[stem]
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        frame = ax.get_window_extent(renderer)
        boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in _names(ax)]
        assert boxes
        legend = ax.get_legend()
        if legend is not None:
            boxes.append(("legend", legend.get_window_extent(renderer)))
        for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
            assert not box_a.overlaps(box_b), f"{stem}: {a!r} overlaps {b!r}"
        for name, box in boxes:
            if name != "legend":
                assert frame.contains(box.x0, box.y0) and frame.contains(box.x1, box.y1), (stem, name)


def test_every_model_and_every_frontier_model_is_named(figures, zoo_survey):
    names = lambda stem: {t.get_text() for ax in figures[stem].axes for t in _names(ax)}  # noqa: E731
    assert names("pareto") == {e.name for e in zoo_survey.entries}
    assert {zoo_survey.entries[i].name for i in zoo_survey.frontier()} <= names("roofline")
    known = {e.name for e in zoo_survey.entries if e.top1 is not None}
    assert names("accuracy") <= known
    for idx in zoo_survey.accuracy_frontiers().values():
        assert {zoo_survey.entries[i].name for i in idx} <= names("accuracy")


def _frontier_points(s, key):
    metric = {
        "throughput": lambda e: e.estimate.throughput_img_s,
        "utilization": lambda e: 100 * e.estimate.utilization,
    }
    return sorted((metric[key](s.entries[i]), s.entries[i].top1) for i in s.accuracy_frontiers()[key])


def _visible_lines(ax):
    """Lines that show on the figure: two points or more, or one with a marker."""
    marked = lambda line: line.get_marker() not in (None, "None", "", " ")  # noqa: E731
    lines = [line for line in ax.get_lines() if line.get_visible() and len(line.get_xdata())]
    return [line for line in lines if len(line.get_xdata()) > 1 or marked(line)]


def test_accuracy_plot_draws_each_frontier(figures, zoo_survey):
    axes = figures["accuracy"].axes
    assert len(axes) == 2
    for ax, key in zip(axes, ("throughput", "utilization"), strict=True):
        want = _frontier_points(zoo_survey, key)
        drawn = [sorted(zip(line.get_xdata(), line.get_ydata(), strict=True)) for line in _visible_lines(ax)]
        assert any(len(d) == len(want) and np.allclose(d, want) for d in drawn), key
        assert f"frontier ({len(want)})" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_a_frontier_of_one_model_is_visible():
    one = survey(
        [zoo.load(n) for n in ("resnet18", "vgg16")], Target.of("v100"), 256, accuracies={"vgg16": 71.6}
    )
    fig = plots.figure(plots.survey_drawings(one)["accuracy"])
    try:
        for ax in fig.axes:
            assert [list(zip(line.get_xdata(), line.get_ydata(), strict=True)) for line in _visible_lines(ax)]
    finally:
        plots._pyplot().close(fig)
