"""Architecture derivation: train each top-K candidate from scratch and keep the best.

The candidates are independent keras-tuner trials: `DeriveOracle` hands out one candidate per
trial and `DeriveTuner` trains it with `train_lib` and reports its final FID and IS. keras-tuner's
distributed mode therefore spreads them over processes or machines: run the same command with
`KERASTUNER_TUNER_ID=chief` on one process and `KERASTUNER_TUNER_ID=tuner0, tuner1, ...` on the
workers, all with `KERASTUNER_ORACLE_IP` and `KERASTUNER_ORACLE_PORT` set; the chief only hands
out trials and collects results.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Optional, Sequence

import keras_tuner
from keras_tuner.engine.trial import TrialStatus

from autogan_tf import search_space as ss
from autogan_tf.training import train_lib

__all__ = ["DeriveOracle", "DeriveTuner", "load_candidates", "summarise", "format_table"]


def load_candidates(spec: str, limit: Optional[int] = None) -> list:
    """Candidate architectures from a search's top_architectures.json or a list of specs.

    Args:
      spec: a JSON file with {'architectures': [{'arch': [...], ...}, ...]}, or specs (names or
        14 integers) separated by ';'.
      limit: keep only the first `limit`.
    """
    if os.path.isfile(spec):
        try:
            with open(spec) as f:
                data = json.load(f)
        except ValueError as e:
            raise ss.ArchitectureError(f"malformed candidates file {spec}: {e}") from e
        entries = data.get("architectures") if isinstance(data, dict) else data
        if not entries:
            raise ss.ArchitectureError(f"{spec} lists no architectures")
        archs = [ss.Architecture.parse(e["arch"] if isinstance(e, dict) else e) for e in entries]
    else:
        archs = [ss.Architecture.parse(s) for s in spec.split(";") if s.strip()]
    if not archs:
        raise ss.ArchitectureError(f"no candidate architectures in {spec!r}")
    return archs[:limit] if limit else archs


class DeriveOracle(keras_tuner.Oracle):
    """Hands out one candidate architecture per trial, in order; objective: lowest FID."""

    def __init__(self, candidates: Sequence, **kwargs):
        self.candidates = [list(ss.Architecture.parse(c).tokens) for c in candidates]
        hps = keras_tuner.HyperParameters()
        hps.Fixed("arch", "")
        hps.Fixed("candidate", 0)
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
        print(f"Deriving candidate {index}: {arch}", flush=True)
        try:
            report = train_lib.train(cfg, self.candidate_dir(index), strategy=self.strategy)
        except train_lib.TrainError as e:
            raise keras_tuner.errors.FatalError(str(e)) from e
        final = report["final"]
        return {"fid": float(final["fid"]), "inception_score": float(final["is_mean"])}


def summarise(oracle: keras_tuner.Oracle) -> dict:
    """The table of all candidates (by FID, then IS) and the best."""
    rows = []
    for t in oracle.trials.values():
        if t.status != TrialStatus.COMPLETED:
            continue
        m = t.metrics
        rows.append({"candidate": int(t.hyperparameters.get("candidate")),
                     "arch": [int(v) for v in t.hyperparameters.get("arch").split()],
                     "fid": m.get_last_value("fid"),
                     "inception_score": m.get_last_value("inception_score")})
    rows.sort(key=lambda r: (r["fid"], -r["inception_score"]))
    return {"candidates": rows, "best": rows[0] if rows else None}


def format_table(summary: dict) -> str:
    lines = [f"{'rank':>4}  {'cand':>4}  {'FID':>9}  {'IS':>7}  architecture"]
    for rank, r in enumerate(summary["candidates"], 1):
        lines.append(f"{rank:>4}  {r['candidate']:>4}  {r['fid']:>9.3f}  "
                     f"{r['inception_score']:>7.3f}  {' '.join(map(str, r['arch']))}")
    return "\n".join(lines)
