"""Architecture derivation: train each top-K candidate from scratch and keep the best.

The candidates are independent keras-tuner trials: `DeriveOracle` hands out one candidate per
trial and `DeriveTuner` trains it with `train_lib` (in `<run_dir>/derive/candidate_<i>/`, locked
while it trains) and reports the scores of the generator the candidate keeps: the best FID of
its evaluations and the IS of that evaluation (its `best/scores.json`), not those of the last
evaluation. Candidates are ranked by that FID (lower first; ties: higher IS); a candidate whose
training diverged (NaN/Inf) is a failed trial, listed apart, and the others go on.

keras-tuner's distributed mode spreads the candidates over processes or machines: run the same
command with `KERASTUNER_TUNER_ID=chief` on one process and `KERASTUNER_TUNER_ID=tuner0, tuner1,
...` on the workers, all with `KERASTUNER_ORACLE_IP` and `KERASTUNER_ORACLE_PORT` set; the chief
only hands out trials and collects results.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Optional, Sequence

import keras_tuner
from absl import logging
from keras_tuner.engine.trial import TrialStatus

from autogan_tf import rundir
from autogan_tf import search_space as ss
from autogan_tf.errors import AutoGANError, NonFiniteError
from autogan_tf.search.search_lib import reported_errors
from autogan_tf.training import train_lib

__all__ = ["DeriveOracle", "DeriveTuner", "build_derive", "run", "load_candidates",
           "best_scores", "rank", "summarise", "format_table"]


def load_candidates(spec: str, limit: Optional[int] = None) -> list:
    """Candidate architectures from a search's top_architectures.json or a list of specs.

    Args:
      spec: a JSON file with {'architectures': [{'arch': [...], ...}, ...]} (or a bare list of
        such entries or token lists), or specs (names or 14 integers) separated by ';'.
      limit: keep only the first `limit`.

    Raises:
      ArchitectureError: a malformed file, no candidates, or an invalid architecture.
    """
    if os.path.isfile(spec):
        try:
            with open(spec) as f:
                data = json.load(f)
        except ValueError as e:
            raise ss.ArchitectureError(f"malformed candidates file {spec}: {e}") from e
        entries = data.get("architectures") if isinstance(data, dict) else data
        if not entries or not isinstance(entries, list):
            raise ss.ArchitectureError(f"{spec} lists no architectures (expected "
                                       "{'architectures': [{'arch': [14 integers]}, ...]})")
        archs = []
        for i, e in enumerate(entries):
            if isinstance(e, dict) and "arch" not in e:
                raise ss.ArchitectureError(f"{spec}: entry {i} has no 'arch' key")
            archs.append(ss.Architecture.parse(e["arch"] if isinstance(e, dict) else e))
    else:
        archs = [ss.Architecture.parse(s) for s in spec.split(";") if s.strip()]
    if not archs:
        raise ss.ArchitectureError(f"no candidate architectures in {spec!r}")
    return archs[:limit] if limit else archs


def best_scores(run_dir: str) -> Optional[dict]:
    """The scores of the generator a training run keeps (`best/scores.json`), or None."""
    path = os.path.join(run_dir, "best", "scores.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


class DeriveOracle(keras_tuner.Oracle):
    """Hands out one candidate architecture per trial, in order; objective: lowest best FID.

    Every candidate runs even if the ones before it failed (diverged).
    """

    def __init__(self, candidates: Sequence, **kwargs):
        self.candidates = [list(ss.Architecture.parse(c).tokens) for c in candidates]
        hps = keras_tuner.HyperParameters()
        hps.Fixed("arch", "")
        hps.Fixed("candidate", 0)
        kwargs.setdefault("max_consecutive_failed_trials", len(self.candidates) + 1)
        super().__init__(objective=keras_tuner.Objective("fid", direction="min"),
                         max_trials=len(self.candidates), hyperparameters=hps, **kwargs)

    def populate_space(self, trial_id):
        index = len(self.start_order)  # trials created so far (re-runs keep their values)
        if index >= len(self.candidates):
            return {"status": TrialStatus.STOPPED, "values": None}
        return {"status": TrialStatus.RUNNING,
                "values": {"arch": " ".join(map(str, self.candidates[index])),
                           "candidate": index}}


class DeriveTuner(keras_tuner.engine.base_tuner.BaseTuner):
    """Trains the candidate of each trial in `<project>/candidate_<i>/`."""

    def __init__(self, oracle: DeriveOracle, base_config: "train_lib.TrainConfig",
                 directory: str, project_name: str = "derive", overwrite: bool = False,
                 strategy=None):
        self.base_config = base_config
        self.strategy = strategy
        super().__init__(oracle, directory=directory, project_name=project_name,
                         overwrite=overwrite)

    def candidate_dir(self, index: int) -> str:
        return os.path.join(self.project_dir, f"candidate_{index}")

    def run_trial(self, trial, *args, **kwargs):
        hp = trial.hyperparameters
        index = int(hp.get("candidate"))
        arch = ss.Architecture.parse(hp.get("arch"))
        cfg = dataclasses.replace(self.base_config, arch=arch.tokens)
        logging.info("Deriving candidate %d: %s", index, arch)
        run_dir = self.candidate_dir(index)
        try:
            report = train_lib.train(cfg, run_dir, strategy=self.strategy)
        except NonFiniteError as e:  # this architecture diverged; the others go on
            raise keras_tuner.errors.FailedTrialError(str(e)) from e
        except (AutoGANError, OSError) as e:
            raise keras_tuner.errors.FatalError(str(e)) from e
        best = best_scores(run_dir)
        if best is None:
            raise keras_tuner.errors.FailedTrialError(
                f"candidate {index} has no finite evaluation in {run_dir}/best")
        final = report["final"]
        return {"fid": float(best["fid"]), "inception_score": float(best["is_mean"]),
                "best_iteration": float(best["iteration"]),
                "final_fid": float(final["fid"]), "final_inception_score": float(final["is_mean"])}


def build_derive(candidates: Sequence, base_config: "train_lib.TrainConfig", run_dir: str,
                 overwrite: bool = False, strategy=None) -> DeriveTuner:
    """The tuner of a derivation in `<run_dir>/derive`, after checking the inputs.

    The dataset, the classifier and precomputed statistics are checked before anything is
    written. `overwrite` moves an earlier derivation to `<run_dir>/derive.replaced-<time>`
    (only the chief of a distributed derivation does).

    Raises:
      DatasetError, ClassifierError, StatsError: bad inputs.
    """
    train_lib.check_inputs(base_config)
    project = os.path.join(run_dir, "derive")
    worker = (os.environ.get("KERASTUNER_TUNER_ID", "chief") != "chief"
              and bool(os.environ.get("KERASTUNER_ORACLE_IP")))
    if overwrite and not worker and os.path.isdir(project):
        rundir.move_aside(project, keep=())
    return DeriveTuner(DeriveOracle(candidates), base_config, run_dir, strategy=strategy)


def run(tuner: DeriveTuner) -> None:
    """Runs the tuner's trials; an error that stopped them is raised as itself (one line)."""
    with reported_errors():
        tuner.search()


def rank(rows: list) -> list:
    """Rows sorted best first: finite FID ascending, then IS descending, then candidate."""
    def key(r):
        fid = r["fid"]
        ok = fid is not None and math.isfinite(fid)
        return (not ok, fid if ok else 0.0, -(r["inception_score"] or 0.0), r["candidate"])
    return sorted(rows, key=key)


def summarise(oracle: keras_tuner.Oracle) -> dict:
    """The table of the finished candidates (ranked by `rank`), the best, and the failed ones."""
    rows, failed = [], []
    for t in oracle.trials.values():
        index = int(t.hyperparameters.get("candidate"))
        arch = [int(v) for v in t.hyperparameters.get("arch").split()]
        if t.status != TrialStatus.COMPLETED:
            if t.status == TrialStatus.FAILED:
                failed.append({"candidate": index, "arch": arch,
                               "message": (t.message or "").strip().splitlines()[-1:]})
            continue
        m = t.metrics
        row = {"candidate": index, "arch": arch, "fid": m.get_last_value("fid"),
               "inception_score": m.get_last_value("inception_score")}
        for k in ("best_iteration", "final_fid", "final_inception_score"):
            if m.exists(k):
                row[k] = m.get_last_value(k)
        rows.append(row)
    rows = rank(rows)
    return {"candidates": rows, "best": rows[0] if rows else None, "failed": failed}


def format_table(summary: dict) -> str:
    """A text table of the ranked candidates (best FID of `best/`, its IS), then failures."""
    lines = [f"{'rank':>4}  {'cand':>4}  {'best FID':>9}  {'IS':>7}  architecture"]
    for rank_, r in enumerate(summary["candidates"], 1):
        lines.append(f"{rank_:>4}  {r['candidate']:>4}  {r['fid']:>9.3f}  "
                     f"{r['inception_score']:>7.3f}  {' '.join(map(str, r['arch']))}")
    for r in summary.get("failed", []):
        lines.append(f"{'-':>4}  {r['candidate']:>4}  {'failed':>9}  {'':>7}  "
                     f"{' '.join(map(str, r['arch']))}")
    return "\n".join(lines)
