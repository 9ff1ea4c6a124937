"""One regression-suite session: measure, gate against the baseline, confirm, summarize, update.

``conftest.py`` wires this to pytest; it holds no pytest code so that the
decision flow reads top to bottom in one place:

1. ``measure(spec)`` runs a benchmark (twice under ``--update-baselines``,
   keeping the second run only if ``roofline.perf.gate.agree`` says the two agree).
2. ``judge(entry)`` applies the single-run gate (size + Mann-Whitney) against the
   baseline entry; a suspected regression is re-measured in a fresh process
   (``python -m kernels.benchmark``) and stands only if that run regresses too.
3. ``finish()`` writes the results file (and, when updating, the baseline,
   atomically) and returns the tabulate summary.

Baselines live in ``baselines/<gpu key>.json``. A baseline from another
environment is not comparable: the verdict names the differing field.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
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

    def __post_init__(self) -> None:
        self.baseline = load_results(self.baseline_path, "baseline") if self.baseline_path.exists() else None
        self.mismatch = (
            incomparable(self.baseline, PerfResults(self.environment, {})) if self.baseline else []
        )

    def measure(self, spec: BenchSpec) -> Benchmark:
        entry = run(spec, self.options, self.environment, self.say)
        if self.update:
            self.say(f"{spec.id}: second measurement for the baseline update")
            second = run(spec, self.options, self.environment, self.say)
            refused = entry.extra.get("invalid_reason") or second.extra.get("invalid_reason")
            refused = refused or gate.agree(entry, second)
            entry = replace(second, extra={**second.extra, UPDATE_REFUSED: refused})
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

    def finish(self, worker: bool = False) -> str:
        """Write the results, the summary and (when updating) the baseline; return the summary.

        An xdist worker writes only its partial results; the controller absorbs them and finishes."""
        if not self.results:
            return "no benchmarks ran"
        write_results(self.results_path, PerfResults(self.environment, dict(self.results)))
        if worker:
            return ""
        rows = [Verdict(**e.extra[VERDICT]) for e in self.results.values() if VERDICT in e.extra]
        lines = [gate.summary_table(rows)] if rows else []
        lines.append(f"results: {self.results_path}")
        if self.update:
            lines += self._update_baseline()
        text = "\n".join(lines)
        write_text(self.summary_path, text + "\n")
        return text

    @property
    def summary_path(self) -> Path:
        return self.results_path.with_name(f"{self.results_path.stem}-summary.txt")

    def _update_baseline(self) -> list[str]:
        refused = {k: e.extra[UPDATE_REFUSED] for k, e in self.results.items() if e.extra.get(UPDATE_REFUSED)}
        accepted = {
            k: replace(e, extra={n: v for n, v in e.extra.items() if n not in (VERDICT, UPDATE_REFUSED)})
            for k, e in self.results.items()
            if k not in refused
        }
        kept: Mapping[str, Benchmark] = {}
        if self.baseline is not None and not self.mismatch:
            kept = {k: v for k, v in self.baseline.benchmarks.items() if k not in accepted}
        notes = [f"baseline NOT updated for {k}: {why}" for k, why in sorted(refused.items())]
        if accepted:
            write_results(self.baseline_path, PerfResults(self.environment, {**kept, **accepted}))
            notes.append(f"baseline {self.baseline_path}: wrote {len(accepted)} benchmarks, kept {len(kept)}")
        return notes
