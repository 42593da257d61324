"""The search summary (summary.json, plots, terminal lines) and the search binary's flags.

The summary is built from an oracle driven with synthetic rewards (no GAN), so its figures can
be checked exactly; the binary's baseline and ablation flags run at tiny sizes (slow).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from keras_tuner.engine.trial import TrialStatus

from autogan_tf.search import summary as summary_lib
from autogan_tf.search.oracle import AutoGANOracle, OracleConfig
from autogan_tf.search.tuner import SharedTrainingConfig

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _driven_oracle(directory, **overrides):
    cfg = dict(iterations_per_stage=(2, 1, 1), controller_steps=2, num_candidates=2, top_k=1,
               hidden_size=8, seed=1)
    oracle = AutoGANOracle(OracleConfig(**{**cfg, **overrides}))
    oracle._set_project_dir(str(directory), "search")
    oracle.verbose = 0
    rows = []
    while True:
        trial = oracle.create_trial("tuner0")
        if trial.status == TrialStatus.STOPPED:
            break
        v = trial.hyperparameters.values
        reward = float(len(rows) % 5)
        rows.append([v["iteration"], v["kind"], reward])
        oracle.update_trial(trial.trial_id, {"inception_score": reward})
        trial.status = TrialStatus.COMPLETED
        oracle.end_trial(trial)
    return oracle, rows


def test_summary_figures_and_files(tmp_path):
    oracle, rows = _driven_oracle(tmp_path)
    state = {"rewards": rows, "d_steps": 40, "g_steps": 20, "resets": 1, "seconds": 12.34,
             "policy_eval": {"1": {"expected_reward_policy": 2.5, "expected_reward_uniform": 2.0,
                                   "stderr_policy": 0.1, "stderr_uniform": 0.2,
                                   "rewards_policy": [2.4, 2.6], "rewards_uniform": [1.8, 2.2]}}}
    summary = summary_lib.build_summary(oracle, state, SharedTrainingConfig())
    # Controller trials only (stage 0 has iterations 0 and 1, two trials each), no beam trials.
    kinds = [(r[0], r[1]) for r in rows]
    assert kinds[:4] == [(0, "controller")] * 2 + [(1, "controller")] * 2
    assert summary["reward_by_iteration"] == [
        {"iteration": 0, "stage": 0, "mean": 0.5, "n": 2},
        {"iteration": 1, "stage": 0, "mean": 2.5, "n": 2},
        {"iteration": 2, "stage": 1, "mean": np.mean([rows[6][2], rows[7][2]]), "n": 2},
        {"iteration": 3, "stage": 2, "mean": np.mean([rows[10][2], rows[11][2]]), "n": 2}]
    assert [p["stage"] for p in summary["policy"]] == [0, 1, 2]
    p1 = summary["policy"][1]
    assert (p1["expected_reward_policy"], p1["expected_reward_uniform"],
            p1["expected_reward_gain"]) == (2.5, 2.0, 0.5)
    assert summary["policy"][0]["expected_reward_policy"] is None  # not measured here
    assert p1["kl_uniform_end"] == pytest.approx(np.log(72) - p1["entropy_end"], abs=1e-4)
    assert summary["top_architectures"] == [
        {"arch": oracle.top_architectures()[0]["arch"],
         "reward": oracle.top_architectures()[0]["reward"]}]
    assert (summary["seconds"], summary["d_steps"], summary["g_steps"], summary["resets"]) == (
        12.3, 40, 20, 1)
    assert (summary["sampler"], summary["reward"], summary["mlas"],
            summary["weight_sharing"]) == ("controller", "is", True, True)
    path = summary_lib.write_summary(str(tmp_path), summary)
    assert json.load(open(path)) == json.loads(json.dumps(summary))
    from PIL import Image
    for plot in summary["plots"].values():
        with Image.open(os.path.join(tmp_path, plot)) as img:
            assert img.size == (640, 400)
            assert len(np.unique(np.asarray(img).reshape(-1, 3), axis=0)) > 3  # not blank
    text = summary_lib.format_summary(summary, str(tmp_path))
    assert "stage 1 policy: entropy" in text and "expected reward 2.500" in text
    assert str(tmp_path / "plots" / "rewards.png") in text


def _search_cmd(run_dir, cache, *extra):
    return [sys.executable, "-m", "autogan_tf.search", "--dataset=digits", "--bottom_width=2",
            "--gf_dim=8", "--df_dim=8", "--latent_dim=16", "--d_batch_size=8",
            "--g_batch_size=8", "--n_critic=2", "--iterations_per_stage=1,1,1",
            "--controller_steps=2", "--num_candidates=2", "--top_k=1", "--max_shared_steps=4",
            "--reward_images=40", "--reward_splits=2", "--policy_eval_archs=2",
            "--classifier=digits", f"--cache_dir={cache}", f"--run_dir={run_dir}",
            "--noprogress", "--seed=3", *extra]


def _run(cmd):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    return subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=900)


def test_no_weight_sharing_needs_the_uniform_sampler(tmp_path):
    p = _run(_search_cmd(tmp_path, tmp_path, "--noweight_sharing"))
    assert p.returncode == 2
    assert "usage error" in p.stderr and "--sampler=uniform" in p.stderr
    assert not os.path.exists(tmp_path / "search")


@pytest.mark.slow
@pytest.mark.parametrize("flags,want", [
    ((), dict(sampler="controller", mlas=True, weight_sharing=True, reward="is", stages=[0, 1, 2],
              trials=3 * 2 + 3 * 2)),
    (("--sampler=uniform", "--nomlas", "--reward=fid", "--ctrl_batch=2", "--nodynamic_reset"),
     dict(sampler="uniform", mlas=False, weight_sharing=True, reward="fid", stages=[2],
          trials=3 * 4 + 2)),
    (("--sampler=uniform", "--noweight_sharing"),
     dict(sampler="uniform", mlas=True, weight_sharing=False, reward="is", stages=[2],
          trials=3)),
])
def test_search_binary_flags(tmp_path, digits_cache, flags, want):
    p = _run(_search_cmd(tmp_path, digits_cache, *flags))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    summary = json.load(open(tmp_path / "search" / "summary.json"))
    for key in ("sampler", "mlas", "weight_sharing", "reward"):
        assert summary[key] == want[key], key
    assert [r["stage"] for r in summary["policy"]] == want["stages"]
    trials = [json.load(open(os.path.join(tmp_path, "search", d, "trial.json")))
              for d in os.listdir(tmp_path / "search") if d.startswith("trial_")]
    assert len(trials) == want["trials"]
    stages = {t["hyperparameters"]["values"]["stage"] for t in trials}
    assert stages == set(want["stages"])
    if want["reward"] == "fid":
        assert all("fid_reward" in t["metrics"]["metrics"] for t in trials)
    # The same budget in D steps whatever the sampler and sharing: 3 iterations of at most 4
    # (the reset window, 500, is never full here); without sharing each iteration's budget
    # goes to one architecture trained from scratch.
    assert summary["d_steps"] == 3 * 4
    # Wall time and resets are reported with dynamic reset on and off (paper 4.3.3).
    assert summary["dynamic_reset"] is ("--nodynamic_reset" not in flags)
    assert summary["seconds"] > 0 and summary["resets"] == 0
    if not want["weight_sharing"]:
        assert summary["policy"][0]["expected_reward_policy"] is None
    else:
        assert summary["policy"][-1]["policy_eval_archs"] == 2
    # One line per trial, no keras-tuner tables, then the summary lines.
    lines = p.stdout.splitlines()
    assert sum(line.startswith("[") for line in lines) == want["trials"]
    assert "Search: Running Trial" not in p.stdout and "remapper" not in p.stderr
    assert any(line.startswith("plots: ") for line in lines)
    assert len(json.loads(lines[-1])["top_architectures"][0]["arch"]) == 14
