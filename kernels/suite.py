"""One regression-suite session: measure, gate against the baseline, confirm, summarize, update.

``conftest.py`` wires this to pytest; it holds no pytest code so that the
decision flow reads top to bottom in one place:

1. ``measure(spec)`` runs a benchmark (twice under ``--update-baselines``,
   keeping the second run unless ``roofline.perf.gate.agree`` refuses the pair: it
   does only when they differ by more than the gate's own practical threshold).
2. ``judge(entry)`` applies the single-run gate (size + Mann-Whitney) against the
   baseline entry; a suspected regression is re-measured in a fresh process
   (``python -m kernels.benchmark``) and stands only if that run regresses too.
3. ``finish()`` writes the results file (and, when updating, the baseline,
   atomically) and returns the tabulate summary.
4. ``finish()`` also sets ``incomplete``: one line per benchmark that was selected
   (its test ran; pytest passes the ids) and is in a comparable baseline but has
   no valid result: its verdict is ``invalid`` (or ``not_comparable`` with a
   baseline entry, e.g. a changed unit), or nothing was recorded (its backend
   vanished, or it failed before measuring: ``missing``). ``conftest.py`` then
   ends the pytest session with status 1, so a CI job that lost measurements
   does not pass. Deselected benchmarks (``-k``, ``--backend``) are never
   selected; benchmarks without a baseline entry, or against a baseline of
   another environment, are ``not_comparable`` and fail nothing. An update
   session (``--update-baselines``) only lists the entries it refused to write.

Baselines live in ``baselines/<gpu key>.json`` (a CPU run's in ``baselines/cpu-<cpu>.json``,
``baseline_name``). A baseline from another environment is not comparable: the verdict
names the differing field. A CPU run's summary starts with a line saying so.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from kernels.benchmark import RunOptions, run
from kernels.manifest import BenchSpec
from roofline.errors import RooflineError
from roofline.files import write_text
from roofline.perf import gate
from roofline.perf.gate import Verdict
from roofline.perf.results import Benchmark, PerfResults, incomparable, load_results, write_results

VERDICT = "verdict"
UPDATE_REFUSED = "update_refused"
UPDATE_AGREEMENT = "update_agreement"  # how far apart an accepted update's two runs were
CPU_RUN_NOTE = (
    "CPU RUN (device cpu, timed by process CPU time): not a GPU measurement; "
    "no utilization, prediction or telemetry"
)


def baseline_name(environment: Mapping) -> str:
    """``<gpu key>.json`` for a GPU run, ``cpu-<cpu model>.json`` for a CPU run (never a GPU's name)."""
    if environment.get("device") == "cpu":
        slug = re.sub(r"[^a-z0-9]+", "-", str(environment.get("cpu_model") or "unknown").lower()).strip("-")
        return f"cpu-{slug[:60]}.json"
    return f"{environment['gpu_key']}.json"


@dataclass
class Session:
    """``results`` entries carry their verdict and any refused update in ``extra`` so that
    xdist workers' partial results files hold everything the controller summarizes."""

    environment: dict
    baseline_path: Path
    results_path: Path
    options: RunOptions
    manifest: Path
    update: bool = False
    confirm: bool = True
    say: Callable[[str], None] = lambda _message: None
    results: dict[str, Benchmark] = field(default_factory=dict)
    #: Benchmarks whose test ran (measure adds each; ``finish`` takes pytest's list too).
    selected: set[str] = field(default_factory=set)
    #: Set by ``finish``: why the session lacks a valid result it should have (step 4 of the module doc).
    incomplete: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.baseline = load_results(self.baseline_path, "baseline") if self.baseline_path.exists() else None
        self.mismatch = (
            incomparable(self.baseline, PerfResults(self.environment, {})) if self.baseline else []
        )

    def measure(self, spec: BenchSpec) -> Benchmark:
        self.selected.add(spec.id)
        entry = run(spec, self.options, self.environment, self.say)
        if self.update:
            self.say(f"{spec.id}: second measurement for the baseline update")
            second = run(spec, self.options, self.environment, self.say)
            refused = gate.agree(entry, second)
            agreement = None if refused else gate.agreement(entry, second)
            entry = replace(
                second, extra={**second.extra, UPDATE_REFUSED: refused, UPDATE_AGREEMENT: agreement}
            )
        self.results[spec.id] = entry
        return entry

    def judge(self, entry: Benchmark) -> gate.Verdict:
        """The gate's verdict on ``entry``. While updating baselines it is only reported (no re-run):
        the update exists to accept a new level."""
        verdict = self._single_run(entry)
        if verdict.verdict == "regression" and self.confirm and not self.update:
            self.say(f"{entry.id}: suspected regression ({verdict.reason}); re-running in a fresh process")
            verdict = gate.confirm(verdict, self._single_run(self._rerun(entry.id)))
        self.results[entry.id] = replace(entry, extra={**entry.extra, VERDICT: verdict.to_dict()})
        return verdict

    def _single_run(self, entry: Benchmark) -> gate.Verdict:
        if self.baseline is None:
            reason = f"no baseline {self.baseline_path}: record one with --update-baselines"
        elif self.mismatch:
            reason = "environment differs from the baseline: " + "; ".join(self.mismatch)
        elif entry.id not in self.baseline.benchmarks:
            reason = f"no entry in {self.baseline_path}: record one with --update-baselines"
        else:
            return gate.judge(self.baseline.benchmarks[entry.id], entry)
        return gate.Verdict(entry.id, None, entry.median, None, "not_comparable", reason)

    def _rerun(self, benchmark_id: str) -> Benchmark:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "rerun.json"
            cmd = [sys.executable, "-m", "kernels.benchmark", benchmark_id, "--manifest", str(self.manifest),
                   "--out", str(out), *self.options.argv()]  # fmt: skip
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
                raise RooflineError(f"the confirmation re-run of {benchmark_id} failed: {tail}")
            return load_results(out, "re-run results").benchmarks[benchmark_id]

    def absorb(self, path: Path) -> None:
        """Take an xdist worker's partial results file into this (controller) session."""
        self.results.update(load_results(path, "worker results").benchmarks)
        path.unlink()

    def finish(self, worker: bool = False, selected: Iterable[str] = ()) -> str:
        """Write the results, the summary and (when updating) the baseline; return the summary.

        ``selected``: the ids of the benchmarks whose test ran (pytest's reports; under xdist the
        controller's are every worker's). An xdist worker writes only its partial results, even none,
        so that the controller learns the environment; the controller absorbs them and finishes."""
        self.selected.update(selected)
        if worker:
            write_results(self.results_path, PerfResults(self.environment, dict(self.results)))
            return ""
        self.incomplete = []
        rows = [Verdict(**e.extra[VERDICT]) for e in self.results.values() if VERDICT in e.extra]
        rows += self._missing()
        if not self.results and not rows:
            return "no benchmarks ran"
        lines = [CPU_RUN_NOTE] if self.environment.get("device") == "cpu" else []
        lines += [gate.summary_table(sorted(rows, key=lambda v: v.id))] if rows else []
        if self.results:
            write_results(self.results_path, PerfResults(self.environment, dict(self.results)))
            lines.append(f"results: {self.results_path}")
        if self.update:
            lines += self._update_baseline()
        else:
            self.incomplete = gate.incomplete(rows, require_a_comparison=False)
            lines += [f"INCOMPLETE: {line}" for line in self.incomplete]
            if self.incomplete:
                lines.append(
                    f"the session fails: no valid result for {len(self.incomplete)} selected baseline "
                    "benchmark(s); re-run them, or deselect them (-k, --backend) to leave them out"
                )
        text = "\n".join(lines)
        write_text(self.summary_path, text + "\n")
        return text

    def _missing(self) -> list[Verdict]:
        """A ``missing`` verdict for each selected benchmark of a comparable baseline that has no result,
        or a result the gate never judged (its test failed in between)."""
        if self.update or self.baseline is None or self.mismatch:
            return []
        judged = {k for k, e in self.results.items() if VERDICT in e.extra}
        out = []
        for key in sorted(self.selected - judged):
            base = self.baseline.benchmarks.get(key)
            if base is None:
                continue
            what = "was not judged" if key in self.results else "no result was recorded"
            reason = (
                f"selected and in {self.baseline_path}, but {what}: its test skipped or failed before "
                "the gate (see it above)"
            )
            out.append(Verdict(key, base.median, None, None, gate.MISSING, reason))
        return out

    @property
    def summary_path(self) -> Path:
        return self.results_path.with_name(f"{self.results_path.stem}-summary.txt")

    def _update_baseline(self) -> list[str]:
        refused = {k: e.extra[UPDATE_REFUSED] for k, e in self.results.items() if e.extra.get(UPDATE_REFUSED)}
        session_keys = (VERDICT, UPDATE_REFUSED, UPDATE_AGREEMENT)
        accepted = {
            k: replace(e, extra={n: v for n, v in e.extra.items() if n not in session_keys})
            for k, e in self.results.items()
            if k not in refused
        }
        kept: Mapping[str, Benchmark] = {}
        if self.baseline is not None and not self.mismatch:
            kept = {k: v for k, v in self.baseline.benchmarks.items() if k not in accepted}
        notes = [f"baseline NOT updated for {k}: {why}" for k, why in sorted(refused.items())]
        notes += [
            f"baseline entry {k}: {self.results[k].extra[UPDATE_AGREEMENT]}"
            for k in sorted(accepted)
            if self.results[k].extra.get(UPDATE_AGREEMENT)
        ]
        if accepted:
            write_results(self.baseline_path, PerfResults(self.environment, {**kept, **accepted}))
            notes.append(f"baseline {self.baseline_path}: wrote {len(accepted)} benchmarks, kept {len(kept)}")
        return notes
