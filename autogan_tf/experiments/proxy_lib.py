"""Proxy validity (paper section 4.3.1): does the shared-weight reward rank architectures as
training them from scratch does?

`run_proxy` reads the architectures a search scored (keras-tuner's
`<run>/search/trial_*/trial.json`, each with its shared-weight reward), keeps the full ones
(14 tokens: the last stage of a multi-level search, every trial of a single-level one; an
architecture scored more than once gets the mean of its rewards), chooses `num_archs` of them
spread over the reward range (the architectures sorted by reward, cut into `num_archs` equal
groups, one drawn from each with the `proxy` random stream of the seed), trains each from
scratch with `train_lib` for the budget of a `TrainConfig`, and reports Spearman's rank
correlation (`scipy.stats.spearmanr`, with its p-value) between the shared-weight reward and
the from-scratch score of the same kind: the final evaluation's IS for an IS reward, -ln(FID)
for an FID reward (the correlation with the other score is reported too).

Layout of the output directory (default `<run>/proxy/`)::

    .lock            held while a process runs the study
    config.json      the study's settings and the training configuration
    selection.json   the chosen architectures with their rewards (fixed at the first start)
    arch_<i>/        one training run per architecture (the layout of `train_lib`)
    proxy.json       the result (see `run_proxy`)
    proxy.png        reward against from-scratch score, one dot per architecture

Killed and started again with the same settings, a study keeps its selection, skips the
architectures whose training finished and resumes the one that was training; started with
settings that change results, it refuses and names them.
"""

from __future__ import annotations

import dataclasses
import glob
import math
import os
from typing import Callable, Optional

import numpy as np
from absl import logging

from autogan_tf import rundir
from autogan_tf import search_space as ss
from autogan_tf import seeds
from autogan_tf.errors import ConfigError, NonFiniteError, SearchError
from autogan_tf.experiments import plots
from autogan_tf.search.config import REWARDS
from autogan_tf.training import train_lib

__all__ = ["ProxyConfig", "load_scored_architectures", "select_architectures", "spearman",
           "search_dataset", "finished_report", "run_proxy", "PROXY_FILE", "PROXY_PLOT"]

PROXY_FILE = "proxy.json"
PROXY_PLOT = "proxy.png"
_SELECTION = "selection.json"
_CONFIG = "config.json"


@dataclasses.dataclass(frozen=True)
class ProxyConfig:
    """What the proxy-validity study trains.

    Attributes:
      num_archs: architectures trained from scratch (all of them when the search scored fewer).
      seed: seeds the choice of architectures (the training runs take `TrainConfig.seed`).
    """

    num_archs: int = 8
    seed: int = 0

    def __post_init__(self):
        if self.num_archs < 2:
            raise ConfigError(f"num_archs must be >= 2 (a rank correlation needs two points), "
                              f"got {self.num_archs}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")


def _read_trial(path: str) -> dict:
    return rundir.read_json(path, SearchError, "run the search again in another --run_dir")


def _tuner_config(search_dir: str) -> dict:
    """The `SharedTrainingConfig` a search recorded in its tuner state ({} if none)."""
    for path in sorted(glob.glob(os.path.join(search_dir, "tuner*.json"))):
        return (rundir.read_json(path, SearchError) or {}).get("config") or {}
    return {}


def _reward_name(search_dir: str, metric_names: set) -> str:
    """The trials' objective: the search's recorded reward, else the metric the trials hold."""
    reward = _tuner_config(search_dir).get("reward")
    if reward in REWARDS:
        return REWARDS[reward]
    return REWARDS["fid"] if REWARDS["fid"] in metric_names else REWARDS["is"]


def search_dataset(search_dir: str) -> Optional[str]:
    """The dataset a search trained on (from its tuner state), or None if unrecorded."""
    return _tuner_config(search_dir).get("dataset")


def load_scored_architectures(search_dir: str) -> tuple:
    """The full architectures a search scored, with their shared-weight rewards.

    Args:
      search_dir: the search's project directory (`<run>/search`).

    Returns:
      (architectures, reward name): a list of {'arch': [14 ints], 'reward': mean reward,
      'rewards': [each trial's], 'trials': [trial ids]}, sorted by architecture; the reward
      name is 'inception_score' or 'fid_reward'.

    Raises:
      SearchError: no search there, an unreadable trial, or no completed full architecture.
    """
    paths = sorted(glob.glob(os.path.join(search_dir, "trial_*", "trial.json")))
    if not paths:
        raise SearchError(f"{search_dir} holds no keras-tuner trials (trial_*/trial.json); "
                          "pass the --run_dir of a search (its search/ directory is read)")
    by_arch, names = {}, set()
    for path in paths:
        t = _read_trial(path)
        if t.get("status") != "COMPLETED" or t.get("score") is None:
            continue
        values = (t.get("hyperparameters") or {}).get("values") or {}
        tokens = [int(v) for v in str(values.get("arch", "")).split()]
        if len(tokens) != ss.ARCH_LENGTH or not math.isfinite(float(t["score"])):
            continue
        names |= set(((t.get("metrics") or {}).get("metrics") or {}).keys())
        entry = by_arch.setdefault(tuple(tokens), {"rewards": [], "trials": []})
        entry["rewards"].append(float(t["score"]))
        entry["trials"].append(str(t.get("trial_id")))
    if not by_arch:
        raise SearchError(f"{search_dir}: no completed trial scored a full architecture "
                          f"({ss.ARCH_LENGTH} tokens) yet; let the search reach its last stage")
    archs = [{"arch": list(a), "reward": float(np.mean(e["rewards"])), "rewards": e["rewards"],
              "trials": e["trials"]} for a, e in sorted(by_arch.items())]
    return archs, _reward_name(search_dir, names)


def select_architectures(scored: list, num: int, seed: int) -> list:
    """`num` architectures spread over the reward range, chosen reproducibly.

    The architectures, sorted by reward (ties by tokens), are cut into `num` groups of equal
    size (as `numpy.array_split` cuts); one is drawn uniformly from each group with the `proxy`
    stream of `seed`. With `num` or fewer architectures, all are taken.

    Returns:
      The chosen entries of `scored`, lowest reward first.
    """
    order = sorted(scored, key=lambda e: (e["reward"], e["arch"]))
    if len(order) <= num:
        return order
    rng = seeds.numpy_rng(seed, "proxy")
    groups = np.array_split(np.arange(len(order)), num)
    return [order[int(rng.choice(g))] for g in groups]


def spearman(x, y) -> dict:
    """Spearman's rank correlation of paired values and its two-sided p-value.

    Returns:
      {'rho', 'p_value', 'n'}; rho and p_value are None with fewer than 3 pairs or a constant
      side (the correlation is undefined there).
    """
    from scipy import stats  # pylint: disable=import-outside-toplevel

    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n = int(len(x))
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"rho": None, "p_value": None, "n": n}
    result = stats.spearmanr(x, y)
    return {"rho": float(result.statistic), "p_value": float(result.pvalue), "n": n}


def finished_report(run_dir: str, cfg: "train_lib.TrainConfig") -> Optional[dict]:
    """The report of a training run that finished `cfg`'s budget with `cfg`'s settings, or None.

    A run that stopped early, one of another configuration, or one without a final evaluation
    is not finished (training it again resumes it, or refuses naming the difference).
    """
    try:
        report = rundir.read_json(os.path.join(run_dir, "report.json"))
        saved = rundir.read_json(os.path.join(run_dir, _CONFIG))
    except ConfigError:
        return None
    if not report or not saved or not report.get("final"):
        return None
    if int(report.get("iterations", 0)) < cfg.max_iterations:
        return None
    if rundir.config_differences(saved, cfg.to_dict(), cfg.resume_ignored(),
                                 defaults=train_lib.TrainConfig(arch=cfg.arch).to_dict()):
        return None
    return report


def _study_config(cfg: ProxyConfig, train_cfg: "train_lib.TrainConfig", search_dir: str):
    train = train_cfg.to_dict()
    del train["arch"]  # each architecture has its own
    return {"proxy": dataclasses.asdict(cfg), "search_dir": os.path.abspath(search_dir),
            "train": train}


def _check_or_write_config(out_dir: str, config: dict, train_cfg) -> None:
    path = os.path.join(out_dir, _CONFIG)
    saved = rundir.read_json(path, ConfigError, "use another --output_dir")
    if saved is not None:
        ignore = {"search_dir"} | {f"train.{k}" for k in train_cfg.resume_ignored()}
        rundir.check_resume(saved, config, f"the proxy study in {out_dir}", ignore=ignore,
                            fix=", or use another --output_dir")
    rundir.write_json(path, config)


def _scores(report: dict) -> dict:
    final = report["final"]
    fid = final.get("fid")
    return {"is_mean": float(final["is_mean"]), "is_std": float(final["is_std"]),
            "fid": None if fid is None else float(fid), "iterations": int(report["iterations"])}


def run_proxy(search_run_dir: str, cfg: ProxyConfig, train_cfg: "train_lib.TrainConfig",
              output_dir: Optional[str] = None, classifier=None,
              report: Optional[Callable[[str], None]] = None,
              flags_text: Optional[str] = None) -> dict:
    """Runs (or resumes) a proxy-validity study of the search in `search_run_dir`.

    Args:
      search_run_dir: the search's run directory (its `search/` is read).
      cfg: how many architectures, and the seed of the choice.
      train_cfg: the from-scratch training of each (its `arch` is replaced).
      output_dir: where the study writes (default `<search_run_dir>/proxy`).
      classifier: an already-loaded classifier for the training runs' evaluations.
      report: where progress lines go (absl logging when None).
      flags_text: the binary's flags, recorded in the output directory (`flags.txt`).

    Returns:
      The contents of proxy.json: `search_dir`, `reward`, `score` (what the reward is compared
      with), `pool_size`, `architectures` (per architecture: `arch`, `reward`, `rewards`,
      `is_mean`, `is_std`, `fid`, `score`, `run_dir`, `status` 'trained' or 'diverged'),
      `spearman` ({'rho', 'p_value', 'n'} of reward against score), `spearman_is` and
      `spearman_fid` (reward against IS and against FID: a good proxy has a negative rho
      there), `train` (the budget), `plot` and `file`.

    Raises:
      SearchError: no scored full architecture in the search.
      ConfigError: the study there was started with other settings, or the training
        configuration is for another dataset than the search's.
      DatasetError, ClassifierError, StatsError, RunDirError: from the training runs' checks.
    """
    say = report or logging.info
    plots.require_matplotlib()
    search_dir = os.path.join(search_run_dir, "search")
    out_dir = output_dir or os.path.join(search_run_dir, "proxy")
    searched_on = search_dataset(search_dir)
    if searched_on is not None and searched_on != train_cfg.dataset:
        raise ConfigError(f"the search in {search_dir} ran on {searched_on!r} but the training "
                          f"configuration is for {train_cfg.dataset!r}; pass the training "
                          f"flags of {searched_on!r} (e.g. its configs/train_*.cfg)")
    scored, reward_name = load_scored_architectures(search_dir)
    classifier, _ = train_lib.check_inputs(train_cfg, classifier)
    with rundir.RunDirLock(out_dir, "proxy study"):
        resumed = os.path.exists(os.path.join(out_dir, _CONFIG))
        _check_or_write_config(out_dir, _study_config(cfg, train_cfg, search_dir), train_cfg)
        rundir.record_flags(out_dir, flags_text, resumed)
        sel_path = os.path.join(out_dir, _SELECTION)
        selection = rundir.read_json(sel_path, ConfigError, "use another --output_dir")
        if selection is None:
            chosen = select_architectures(scored, cfg.num_archs, cfg.seed)
            selection = {"pool_size": len(scored), "reward": reward_name,
                         "architectures": chosen}
            rundir.write_json(sel_path, selection)
        chosen = selection["architectures"]
        say(f"proxy study: {len(chosen)} of the {selection['pool_size']} full architectures "
            f"the search scored, each trained from scratch for {train_cfg.max_iterations} "
            f"generator iterations")
        rows = []
        for i, entry in enumerate(chosen):
            run_dir = os.path.join(out_dir, f"arch_{i}")
            arch_cfg = dataclasses.replace(train_cfg, arch=tuple(entry["arch"]))
            row = dict(entry, index=i, run_dir=run_dir)
            done = finished_report(run_dir, arch_cfg)
            tokens = " ".join(map(str, entry["arch"]))
            if done is not None:
                say(f"[{i + 1}/{len(chosen)}] {tokens}: finished before, skipped")
            else:
                say(f"[{i + 1}/{len(chosen)}] {tokens} (reward {entry['reward']:.3f}): "
                    "training from scratch")
                try:
                    done = train_lib.train(arch_cfg, run_dir, classifier=classifier)
                except NonFiniteError as e:
                    say(f"  diverged: {str(e).splitlines()[0]}")
                    rows.append(dict(row, status="diverged", is_mean=None, is_std=None,
                                     fid=None, score=None))
                    continue
            scores = _scores(done)
            say(f"  IS {scores['is_mean']:.3f}, FID "
                f"{'n/a' if scores['fid'] is None else format(scores['fid'], '.3f')}")
            rows.append(dict(row, status="trained", **scores))
        result = _result(rows, selection, reward_name, search_dir, train_cfg, out_dir)
    say(f"Spearman rho {result['spearman']['rho']} (p {result['spearman']['p_value']}) over "
        f"{result['spearman']['n']} architectures; {result['file']}, {result['plot']}")
    return result


def _score_of(row: dict, reward_name: str) -> Optional[float]:
    if row["status"] != "trained":
        return None
    if reward_name == REWARDS["fid"]:
        fid = row.get("fid")
        return None if fid is None else -math.log(max(fid, 1e-6))
    return row["is_mean"]


def _result(rows, selection, reward_name, search_dir, train_cfg, out_dir) -> dict:
    for row in rows:
        row["score"] = _score_of(row, reward_name)
    ok = [r for r in rows if r["score"] is not None]
    with_fid = [r for r in ok if r.get("fid") is not None]
    score_name = "-ln FID" if reward_name == REWARDS["fid"] else "IS"
    result = {
        "search_dir": os.path.abspath(search_dir),
        "reward": reward_name,
        "score": score_name,
        "pool_size": selection["pool_size"],
        "architectures": rows,
        "spearman": spearman([r["reward"] for r in ok], [r["score"] for r in ok]),
        "spearman_is": spearman([r["reward"] for r in ok], [r["is_mean"] for r in ok]),
        "spearman_fid": spearman([r["reward"] for r in with_fid], [r["fid"] for r in with_fid]),
        "train": {"max_iterations": train_cfg.max_iterations,
                  "eval_images": train_cfg.eval_images, "dataset": train_cfg.dataset,
                  "classifier": train_cfg.classifier, "seed": train_cfg.seed},
        "plot": os.path.join(out_dir, PROXY_PLOT),
        "file": os.path.join(out_dir, PROXY_FILE),
    }
    sp = result["spearman"]
    plots.proxy_scatter(result["plot"], [r["reward"] for r in ok], [r["score"] for r in ok],
                        sp["rho"], sp["p_value"],
                        xlabel=f"shared-weight reward ({reward_name})",
                        ylabel=f"{score_name} trained from scratch")
    rundir.write_json(result["file"], result)
    return result
