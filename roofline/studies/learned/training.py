"""Training, evaluation and use of the learned utilization predictor.

**Method** (utilization-prediction study; DESIGN.md, "Graph-feature utilization
predictor"): scikit-learn regressors on the features of ``features``, with the
study's hyperparameter search (5-fold grid search over the number of trees and
their depth). The target is log utilization: it spans two decades across the
tables, and a relative error is what matters. Three regressors: a random forest
(the study's best), histogram gradient boosting (scikit-learn's LightGBM-style
booster, standing in for the study's LightGBM and XGBoost) and ordinary least
squares on standardized log features (its linear baseline).

**Feature sets** (``FEATURE_SETS``): the study's seven alone (its method); the
seven plus the GPU's and engine's figures; and the hybrid, every feature. The
hybrid is fitted two ways: to the utilization itself, and to the analytic
model's error, log(measured / analytic), the prediction then being the
analytic one times the learned correction (residual learning: a tree cannot
extrapolate past its training targets, the analytic model can, so on a GPU it
never saw the forest only corrects the analytic figure). The analytic
prediction alone is scored too, with no fit.

**Splits.** The study split 81 workloads at random, 80/20. Public tables hold
the same architecture at many sizes (``resnet18`` ... ``resnet152``) and on
several GPUs and engines, so a random row split tests memory, not prediction.
Here the grid search is a 5-fold cross-validation whose folds hold whole model
families (``features.family``; scikit-learn ``GroupKFold``): every row is
predicted once by a model that saw no row of its family, and the family-split
figures are those out-of-fold predictions of the configuration the search
chose (selected over at most four configurations, so slightly optimistic; the
held-out-GPU figure has no such selection). The second split holds out one
whole GPU: train on every other GPU's rows with the chosen configuration,
test on its rows. For comparison with the study's figure, the chosen
configuration is also scored on a 5-fold split of rows at random, which lets
a model's own rows on other tables, and its family, into training.

**Metrics** (study's first, then the project's): RMSLE of utilization in
percent, sqrt(mean((ln(1 + 100 u_pred) - ln(1 + 100 u_meas))^2)), as the study
scored utilization on nvidia-smi's 0-100 scale; MdAPE, median |u_pred / u_meas -
1|; Spearman's rank correlation (DESIGN.md, "Validate against measurements").

**Use.** ``load_model`` trains the default (``DEFAULT_SET``, a random forest
with fixed hyperparameters and random_state) from a features table, by default
the shipped one, and caches it in the user's cache directory, keyed by the
table's bytes, the recipe and the library versions, so no pickle travels with
the package. Its uncertainty is the spread of its trees: one standard
deviation of the per-tree log predictions either side of their mean (the
forest's prediction), so the interval always holds the prediction and is the
16th-84th percentile range for a normal spread; the model's own (bootstrap)
uncertainty. It does not include measurement noise, and a GPU, engine or dtype
absent from training is flagged as an extrapolation, which the spread does not
measure.
"""

from __future__ import annotations

import hashlib
import math
import os
import pickle
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from roofline import files
from roofline.analysis.predict import Estimate
from roofline.errors import RooflineError
from roofline.studies.learned.features import (
    ENGINE_FEATURES,
    FEATURES,
    GPU_FEATURES,
    STUDY_FEATURES,
    FeatureTable,
    estimate_features,
    parse_table,
    reference_peak_flops_s,
)


@dataclass(frozen=True)
class FeatureSet:
    name: str
    features: tuple[str, ...]
    #: Fit log(measured / analytic) instead of log(measured): the analytic model times a correction.
    residual: bool = False


FEATURE_SETS = (
    FeatureSet("study", STUDY_FEATURES),
    FeatureSet("study+context", STUDY_FEATURES + GPU_FEATURES + ENGINE_FEATURES),
    FeatureSet("hybrid", FEATURES),
    FeatureSet("hybrid-residual", FEATURES, residual=True),
)
ANALYTIC = "analytic"  # the analytic model's prediction itself, no fit
REGRESSORS = ("linear", "boosting", "forest")
TARGETS = ("flop_utilization", "time_utilization")

#: Features spanning decades enter as logarithms (counts as log(1 + n)). Trees are invariant
#: to this; it keeps the linear baseline from being a straw man.
LOG_FEATURES = frozenset(
    {"model_size_mb", "gflops", "batch", "analytic_utilization", "ai_over_cmr", "kernels",
     "peak_flops_s", "dram_bytes_s", "sms", "l2_bytes"}
)  # fmt: skip
COUNT_FEATURES = frozenset({"conv_layers", "linear_layers", "activation_layers", "other_layers"})

#: The study's search: number of trees and depth (boosting: iterations and depth). Small, for 2 cores.
GRIDS: dict[str, dict[str, list[Any]]] = {
    "linear": {},
    "boosting": {"max_iter": [200, 400], "max_depth": [4, 8]},
    "forest": {"n_estimators": [100, 200], "max_depth": [12, None]},
}
FOLDS = 5

#: The forest's settings besides the grid's. ``max_features`` 0.5 and ``min_samples_leaf`` 2 are
#: the usual regression settings for noisy targets (Geurts et al., "Extremely randomized trees",
#: Machine Learning 63, 2006, section 4.2.3: about half the features for regression; scikit-learn's
#: RandomForestRegressor docs); the grid then picks trees and depth.
FOREST_BASE = {"min_samples_leaf": 2, "max_features": 0.5}
SEED = 0

#: The default model: this feature set, and the forest the grid chose for it on the family split
#: (``roofline learn FILE --compare`` prints the choice; README, "Learned utilization predictor").
DEFAULT_SET = "hybrid-residual"
DEFAULT_FOREST = {"n_estimators": 100, "max_depth": 12}
#: Raise when the recipe changes: cached default models of an older recipe are not reused.
RECIPE_VERSION = 1
DEFAULT_TABLE = "features.csv"  # in the package ``roofline.data.learned``
#: The interval reported with every learned prediction, in standard deviations of the trees' log predictions.
INTERVAL_SIGMAS = 1.0


def feature_set(name: str) -> FeatureSet:
    return next(s for s in FEATURE_SETS if s.name == name)


def design(table: FeatureTable | Mapping[str, np.ndarray], names: Sequence[str]) -> np.ndarray:
    """The regressors' input: ``names`` as columns, logarithms where the module doc says."""
    columns = []
    for name in names:
        x = np.asarray(table[name], dtype=float)
        if name in LOG_FEATURES:
            x = np.log(x)
        elif name in COUNT_FEATURES:
            x = np.log1p(x)
        columns.append(x)
    return np.column_stack(columns)


def rmsle(predicted: np.ndarray, measured: np.ndarray) -> float:
    """RMSLE of utilization in percent (module doc)."""
    p, m = np.log1p(100 * np.asarray(predicted)), np.log1p(100 * np.asarray(measured))
    return float(np.sqrt(np.mean((p - m) ** 2)))


def mdape(predicted: np.ndarray, measured: np.ndarray) -> float:
    return float(np.median(np.abs(np.asarray(predicted) / np.asarray(measured) - 1)))


def spearman(predicted: np.ndarray, measured: np.ndarray) -> float:
    """Spearman's rho; NaN when either side is constant (no ranking to compare)."""
    if np.ptp(predicted) == 0 or np.ptp(measured) == 0:
        return math.nan
    return float(spearmanr(predicted, measured).statistic)


def family_folds(families: np.ndarray, folds: int = FOLDS) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) row indices of ``folds`` folds, each family's rows all in one fold (``GroupKFold``)."""
    from sklearn.model_selection import GroupKFold

    count = len(set(families))
    if count < 2:
        raise RooflineError(f"a family split needs at least two model families; the table has {count}")
    splitter = GroupKFold(n_splits=min(folds, count))
    return list(splitter.split(np.zeros(len(families)), groups=families))


def row_folds(rows: int, folds: int = FOLDS) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) row indices of ``folds`` folds of rows drawn at random (seeded): the study's split,
    for comparison only, since rows of one family (and one model on other tables) fall on both sides."""
    from sklearn.model_selection import KFold

    return list(KFold(n_splits=min(folds, rows), shuffle=True, random_state=SEED).split(np.zeros(rows)))


def gpu_split(gpus: np.ndarray, held_out: str) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) row indices: every row of GPU ``held_out`` in test, every other row in train."""
    test = gpus == held_out
    if not test.any() or test.all():
        present = ", ".join(sorted(set(gpus)))
        raise RooflineError(
            f"holding out {held_out} needs rows of it and of another GPU; the table has {present}"
        )
    return np.flatnonzero(~test), np.flatnonzero(test)


def one_thread():
    """Native thread pools (OpenMP, BLAS) held to one thread while fitting.

    Histogram gradient boosting uses every core through OpenMP; on a shared two-core machine
    its threads spin against each other, and one fit took 80x the CPU time of a one-thread fit
    (measured here: 28 s against 0.35 s). The forests run one job at a time too (``n_jobs=1``).
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def make(kind: str, params: Mapping[str, Any]):
    """An unfitted regressor of ``kind`` with ``params`` (a point of its ``GRIDS`` entry)."""
    if kind == "forest":
        from sklearn.ensemble import RandomForestRegressor

        return RandomForestRegressor(random_state=SEED, n_jobs=1, **{**FOREST_BASE, **params})
    if kind == "boosting":
        from sklearn.ensemble import HistGradientBoostingRegressor

        return HistGradientBoostingRegressor(random_state=SEED, early_stopping=False, **params)
    if kind == "linear":
        from sklearn.linear_model import LinearRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(StandardScaler(), LinearRegression())
    raise ValueError(f"unknown regressor {kind!r}")


def grid_predictions(
    kind: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray
) -> dict[tuple[tuple[str, Any], ...], np.ndarray]:
    """Test predictions of every configuration of ``kind``'s grid (sorted parameter items -> array).

    One fit per depth covers every size: scikit-learn draws each tree's seed from the forest's
    random_state in turn (what ``warm_start`` relies on), so a forest's first n trees are the n-tree
    forest of the same seed; and a booster's staged predictions are its predictions after each
    iteration (``HistGradientBoostingRegressor.staged_predict``; deterministic with early stopping off).
    """
    if kind == "linear":
        return {(): make(kind, {}).fit(x_train, y_train).predict(x_test)}
    size = {"forest": "n_estimators", "boosting": "max_iter"}[kind]
    sizes = GRIDS[kind][size]
    out = {}
    for depth in GRIDS[kind]["max_depth"]:
        model = make(kind, {size: max(sizes), "max_depth": depth}).fit(x_train, y_train)
        if kind == "forest":
            running = np.cumsum([tree.predict(x_test) for tree in model.estimators_], axis=0)
            staged = [running[n - 1] / n for n in range(1, max(sizes) + 1)]
        else:
            staged = list(model.staged_predict(x_test))
        for n in sizes:
            out[tuple(sorted({size: n, "max_depth": depth}.items()))] = staged[n - 1]
    return out


@dataclass(frozen=True)
class Score:
    """One feature set and regressor, scored on one split."""

    split: str
    features: str
    regressor: str
    params: Mapping[str, Any]
    rmsle: float
    mdape: float
    spearman: float
    train_rows: int
    test_rows: int
    fit_s: float

    def to_dict(self) -> dict[str, Any]:
        out = {**self.__dict__, "params": dict(self.params)}
        return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in out.items()}


@dataclass(frozen=True)
class Comparison:
    scores: tuple[Score, ...]
    target: str
    rows: int
    families: int
    gpus: tuple[str, ...]
    held_out_gpu: str
    splits: Mapping[str, str]  # split key -> what it holds out, in words
    seconds: float

    def score(self, split: str, features: str, regressor: str) -> Score:
        return next(
            s for s in self.scores if (s.split, s.features, s.regressor) == (split, features, regressor)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target, "rows": self.rows, "families": self.families, "gpus": list(self.gpus),
            "held_out_gpu": self.held_out_gpu, "splits": dict(self.splits), "seconds": self.seconds,
            "scores": [s.to_dict() for s in self.scores],
        }  # fmt: skip


def _usable(table: FeatureTable, target: str) -> FeatureTable:
    if target not in TARGETS:
        raise RooflineError(f"unknown target {target!r}: choose one of {', '.join(TARGETS)}")
    keep = np.isfinite(table[target])
    if not keep.any():
        raise RooflineError(
            f"the table has no {target} values: time utilization needs results files whose telemetry "
            "recorded nvidia-smi's utilization"
        )
    return table.subset(np.flatnonzero(keep))


def _scored(split, fs, kind, params, predicted, measured, train_rows, seconds) -> Score:
    return Score(
        split, fs, kind, params, rmsle(predicted, measured), mdape(predicted, measured),
        spearman(predicted, measured), train_rows, len(measured), seconds,
    )  # fmt: skip


def compare(
    table: FeatureTable,
    target: str = "flop_utilization",
    held_out_gpu: str | None = None,
    regressors: Sequence[str] = REGRESSORS,
    progress: Callable[[str], None] | None = None,
) -> Comparison:
    """Every feature set x regressor, and the analytic prediction alone, on both splits (module doc).

    ``held_out_gpu`` defaults to the GPU with the fewest rows, so the larger part trains.
    """
    begin = time.perf_counter()
    table = _usable(table, target)
    gpus, counts = np.unique(table["gpu"].astype(str), return_counts=True)
    if held_out_gpu is None:
        if len(gpus) < 2:
            raise RooflineError(f"a held-out-GPU split needs rows of two GPUs; the table has {gpus[0]} only")
        held_out_gpu = str(gpus[np.argmin(counts)])
    families = table["family"].astype(str)
    folds = family_folds(families)
    random_folds = row_folds(len(families))
    train_gpu, test_gpu = gpu_split(table["gpu"].astype(str), held_out_gpu)
    y = np.asarray(table[target], dtype=float)
    log_y, log_analytic = np.log(y), np.log(np.asarray(table["analytic_utilization"], dtype=float))
    described = {
        "family": f"{len(folds)}-fold cross-validation, folds of whole families ({len(set(families))})",
        "gpu": f"{held_out_gpu} held out, trained on {', '.join(g for g in gpus if g != held_out_gpu)}",
        "random": f"{FOLDS}-fold cross-validation over rows at random (the study's split; leaks families)",
    }
    analytic = np.exp(log_analytic)
    scores = [
        _scored("family", ANALYTIC, "none", {}, analytic, y, 0, 0.0),
        _scored("gpu", ANALYTIC, "none", {}, analytic[test_gpu], y[test_gpu], 0, 0.0),
        _scored("random", ANALYTIC, "none", {}, analytic, y, 0, 0.0),
    ]
    for fs in FEATURE_SETS:
        x = design(table, fs.features)
        base = log_analytic if fs.residual else np.zeros(len(y))
        for kind in regressors:
            if progress is not None:
                progress(f"{fs.name} features, {kind}")
            start = time.perf_counter()
            oof: dict[tuple, np.ndarray] = {}
            with one_thread():
                for train, test in folds:
                    for params, p in grid_predictions(
                        kind, x[train], log_y[train] - base[train], x[test]
                    ).items():
                        oof.setdefault(params, np.empty(len(y)))[test] = p + base[test]
                chosen = min(oof, key=lambda params: float(np.mean((oof[params] - log_y) ** 2)))
                best, best_oof = dict(chosen), oof[chosen]
                cv_s = time.perf_counter() - start
                start = time.perf_counter()
                model = make(kind, best).fit(x[train_gpu], log_y[train_gpu] - base[train_gpu])
                on_gpu = np.exp(model.predict(x[test_gpu]) + base[test_gpu])
                gpu_s = time.perf_counter() - start
                start = time.perf_counter()
                at_random = np.empty(len(y))
                for train, test in random_folds:
                    model = make(kind, best).fit(x[train], log_y[train] - base[train])
                    at_random[test] = np.exp(model.predict(x[test]) + base[test])
                random_s = time.perf_counter() - start
            train_rows = len(y) - len(folds[0][1])
            scores.append(_scored("family", fs.name, kind, best, np.exp(best_oof), y, train_rows, cv_s))
            scores.append(_scored("gpu", fs.name, kind, best, on_gpu, y[test_gpu], len(train_gpu), gpu_s))
            scores.append(_scored("random", fs.name, kind, best, at_random, y, train_rows, random_s))
    return Comparison(
        tuple(scores),
        target,
        len(table),
        len(set(families)),
        tuple(str(g) for g in gpus),
        held_out_gpu,
        described,
        time.perf_counter() - begin,
    )


@dataclass(frozen=True)
class Prediction:
    """Per-row learned utilization (datasheet peak, engine accumulator) and its tree spread."""

    utilization: np.ndarray
    low: np.ndarray  # exp(mean - sigma) of the trees' log predictions
    high: np.ndarray  # exp(mean + sigma)
    log_std: np.ndarray  # standard deviation of the trees' log utilization


@dataclass(frozen=True)
class LearnedModel:
    """The default forest (``DEFAULT_SET``, ``DEFAULT_FOREST``) and what it was trained on."""

    forest: Any  # sklearn.ensemble.RandomForestRegressor
    target: str
    rows: int
    families: int
    gpus: tuple[str, ...]
    engines: tuple[str, ...]
    dtypes: tuple[str, ...]
    source: str
    training_s: float
    feature_set: FeatureSet = field(default_factory=lambda: feature_set(DEFAULT_SET))
    sklearn_version: str = ""

    def predict(self, table: FeatureTable | Mapping[str, np.ndarray]) -> Prediction:
        x = design(table, self.feature_set.features)
        per_tree = np.stack([tree.predict(x) for tree in self.forest.estimators_])
        if self.feature_set.residual:  # the trees predict log(measured / analytic)
            per_tree = per_tree + np.log(np.asarray(table["analytic_utilization"], dtype=float))
        mean, std = per_tree.mean(axis=0), per_tree.std(axis=0)
        return Prediction(
            utilization=np.exp(mean), low=np.exp(mean - INTERVAL_SIGMAS * std),
            high=np.exp(mean + INTERVAL_SIGMAS * std), log_std=std,
        )  # fmt: skip

    def describe(self) -> str:
        return (
            f"random forest ({len(self.forest.estimators_)} trees, {self.feature_set.name} features) on "
            f"{self.rows} measurements of {self.families} model families ({', '.join(self.gpus)}; "
            f"{', '.join(self.engines)}), {self.source}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "random_forest", "trees": len(self.forest.estimators_), "features": self.feature_set.name,
            "target": self.target, "rows": self.rows, "families": self.families, "gpus": list(self.gpus),
            "engines": list(self.engines), "dtypes": list(self.dtypes), "source": self.source,
        }  # fmt: skip


def train(table: FeatureTable, target: str = "flop_utilization", source: str = "") -> LearnedModel:
    """The default forest (``DEFAULT_SET``, ``DEFAULT_FOREST``, fixed random_state) on every usable row."""
    import sklearn

    table = _usable(table, target)
    # The analytic model predicts FLOP utilization: only that target is fitted as its correction.
    fs = feature_set(DEFAULT_SET if target == "flop_utilization" else "hybrid")
    log_y = np.log(np.asarray(table[target], dtype=float))
    if fs.residual:
        log_y = log_y - np.log(np.asarray(table["analytic_utilization"], dtype=float))
    start = time.perf_counter()
    with one_thread():
        forest = make("forest", DEFAULT_FOREST).fit(design(table, fs.features), log_y)
    return LearnedModel(
        forest=forest, target=target, rows=len(table), families=len(set(table["family"])),
        gpus=tuple(sorted(set(table["gpu"]))), engines=tuple(sorted(set(table["engine"]))),
        dtypes=tuple(sorted(set(table["dtype"]))), source=source,
        training_s=time.perf_counter() - start, feature_set=fs, sklearn_version=sklearn.__version__,
    )  # fmt: skip


def cache_dir() -> Path:
    """Where trained default models are kept: ``$ROOFLINE_CACHE_DIR/learned``, else
    ``$XDG_CACHE_HOME/roofline/learned``, else ``~/.cache/roofline/learned`` (the XDG Base Directory
    Specification's cache directory; a relative ``$XDG_CACHE_HOME`` is ignored, as it says)."""
    own = os.environ.get("ROOFLINE_CACHE_DIR")
    if own:
        return Path(own) / "learned"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "roofline" / "learned"


def _cache_key(data: bytes, target: str) -> str:
    import sklearn

    recipe = (
        f"{RECIPE_VERSION}|{DEFAULT_SET}|{feature_set(DEFAULT_SET)}|{sorted(DEFAULT_FOREST.items())}|"
        f"{sorted(FOREST_BASE.items())}|{target}"
    )
    versions = f"{sklearn.__version__}|{np.__version__}|{platform.python_version()}|{sys.byteorder}"
    return hashlib.sha256(data + recipe.encode() + versions.encode()).hexdigest()[:32]


def load_model(path: str | Path | None = None, target: str = "flop_utilization") -> LearnedModel:
    """The forest trained on the features table at ``path`` (default: the shipped one).

    Training takes seconds; the result is cached (``cache_dir``) under a key of the table's
    bytes, the recipe and the library versions, so a changed table, recipe or scikit-learn
    retrains instead of unpickling something stale. No network is used.
    """
    if path is None:
        data = resources.files("roofline.data.learned").joinpath(DEFAULT_TABLE).read_bytes()
        name = f"the shipped table (roofline/data/learned/{DEFAULT_TABLE})"
    else:
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            raise RooflineError(f"learned model file {path} does not exist; check the path") from None
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise RooflineError(f"cannot read learned model file {path} ({reason}); check it") from None
        name = str(path)
    try:
        cached = cache_dir() / f"{_cache_key(data, target)}.pickle"
    except RuntimeError:  # Path.home() without HOME or a passwd entry: no cache, train every time
        cached = None
    if cached is not None:
        try:
            with cached.open("rb") as f:
                model = pickle.load(f)
            if isinstance(model, LearnedModel):
                return model
        except Exception:  # missing, unreadable, or pickled by an incompatible library: retrain
            pass
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise RooflineError(
            f"{name} is not a UTF-8 features table; pass a file `roofline learn --out` wrote"
        ) from None
    model = train(parse_table(text, name), target, source=name)
    if cached is not None:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            files.write_bytes(cached, pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
        except (OSError, RooflineError):  # a read-only home: train again next time rather than fail
            pass
    return model


@dataclass(frozen=True)
class Learned:
    """The learned prediction for one analytic estimate, in the estimate's own terms."""

    estimate: Estimate
    model: LearnedModel
    #: Relative to the datasheet peak for the dtype and the engine's accumulator (``features``).
    reference_utilization: float
    reference_low: float
    reference_high: float
    log_std: float
    extrapolated: tuple[str, ...] = field(default=())

    def _scale(self, reference_utilization: float) -> float:
        """Utilization relative to the peak the estimate reports (``--peak``)."""
        peak = reference_peak_flops_s(self.estimate.target)
        return reference_utilization * peak / self.estimate.peak.flops_s

    def _throughput(self, reference_utilization: float) -> float:
        peak = reference_peak_flops_s(self.estimate.target)
        return reference_utilization * peak / self.estimate.flops_per_image

    @property
    def utilization(self) -> float:
        return self._scale(self.reference_utilization)

    @property
    def throughput_img_s(self) -> float:
        return self._throughput(self.reference_utilization)

    @property
    def latency_s(self) -> float:
        return self.estimate.images / self.throughput_img_s

    @property
    def headroom(self) -> float:
        """Co-location headroom: 1 - utilization, the share of the peak this model leaves idle."""
        return 1 - self.utilization

    def to_dict(self) -> dict[str, Any]:
        """The keys of ``Estimate.to_dict()['predicted']``, the tree spread, and the model's provenance."""
        return {
            "latency_s": self.latency_s,
            "throughput_img_s": self.throughput_img_s,
            "tflops": self.throughput_img_s * self.estimate.flops_per_image / 1e12,
            "utilization": self.utilization,
            "headroom": self.headroom,
            "uncertainty": {
                "method": "spread of the forest's trees: exp(mean -+ one standard deviation) of their "
                "log predictions",
                "log_std": self.log_std,
                "utilization_low": self._scale(self.reference_low),
                "utilization_high": self._scale(self.reference_high),
                "throughput_img_s_low": self._throughput(self.reference_low),
                "throughput_img_s_high": self._throughput(self.reference_high),
            },
            "extrapolated": list(self.extrapolated),
            "model": self.model.to_dict(),
        }


def extrapolations(model: LearnedModel, estimate: Estimate) -> tuple[str, ...]:
    """What about ``estimate``'s target the model never saw: its prediction there is an extrapolation."""
    target = estimate.target
    out = []
    for what, value, seen in (
        ("GPU", target.gpu.key, model.gpus), ("engine", target.engine.key, model.engines),
        ("dtype", target.dtype, model.dtypes),
    ):  # fmt: skip
        if value not in seen:
            out.append(f"{what} {value} is not in the training data ({', '.join(seen)})")
    return tuple(out)


def predict_estimates(
    model: LearnedModel, estimates: Sequence[Estimate], channels_last: bool = False
) -> list[Learned]:
    """The learned prediction beside each analytic estimate, in one batch through the forest."""
    if not estimates:
        return []
    rows = [estimate_features(e, channels_last) for e in estimates]
    columns = {name: np.array([r[name] for r in rows], dtype=float) for name in FEATURES}
    p = model.predict(columns)
    return [
        Learned(e, model, float(p.utilization[i]), float(p.low[i]), float(p.high[i]), float(p.log_std[i]),
                extrapolations(model, e))
        for i, e in enumerate(estimates)
    ]  # fmt: skip
