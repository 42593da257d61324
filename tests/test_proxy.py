"""Proxy validity (experiments/proxy_lib and `python -m autogan_tf.proxy`): which trials count,
the seeded spread of the choice, Spearman's rho against scipy, a tiny study end to end with its
JSON and PNG, and a restart that skips the finished architectures."""

import json
import os
import subprocess
import sys

import keras_tuner
import numpy as np
import pytest
from keras_tuner.engine import trial as trial_lib
from scipy import stats

from autogan_tf import errors
from autogan_tf.experiments import proxy_lib
from autogan_tf.training import train_lib
from autogan_tf.training.gan import GANConfig

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
A = [1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 0, 1, 0, 3]
B = [1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0]
C = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]


def _fake_search(run_dir, entries, reward="is", dataset="digits"):
    """A search directory holding keras-tuner trials of (tokens, score, status), as a search
    writes them (through keras-tuner's own Trial state)."""
    search = os.path.join(str(run_dir), "search")
    name = "inception_score" if reward == "is" else "fid_reward"
    for i, (arch, score, status) in enumerate(entries):
        hps = keras_tuner.HyperParameters()
        for key, value in (("arch", " ".join(map(str, arch))), ("stage", 2), ("iteration", i),
                           ("kind", "controller"), ("step", 0)):
            hps.Fixed(key, value)
        t = trial_lib.Trial(hps, trial_id=str(i), status=status)
        if score is not None:
            t.metrics.register(name, direction="max")
            t.metrics.update(name, score)
            t.score = score
        os.makedirs(os.path.join(search, f"trial_{i:03d}"))
        with open(os.path.join(search, f"trial_{i:03d}", "trial.json"), "w") as f:
            json.dump(t.get_state(), f)
    with open(os.path.join(search, "tuner0.json"), "w") as f:
        json.dump({"config": {"reward": reward, "dataset": dataset}}, f)
    return search


def test_scored_architectures_are_full_completed_trials_with_mean_rewards(tmp_path):
    search = _fake_search(tmp_path, [
        (A, 2.0, "COMPLETED"), (A, 3.0, "COMPLETED"),  # scored twice: the mean
        (B, 1.5, "COMPLETED"),
        (A[:4], 9.0, "COMPLETED"),  # a stage-0 cell: not a full architecture
        (C, None, "RUNNING"),  # in flight
        (C, 7.0, "FAILED"),
    ])
    archs, reward = proxy_lib.load_scored_architectures(search)
    assert reward == "inception_score"
    assert [(e["arch"], e["reward"], e["rewards"]) for e in archs] == [
        (A, 2.5, [2.0, 3.0]), (B, 1.5, [1.5])]
    assert proxy_lib.search_dataset(search) == "digits"
    with pytest.raises(errors.SearchError, match="holds no keras-tuner trials"):
        proxy_lib.load_scored_architectures(str(tmp_path / "nowhere"))
    only_partial = _fake_search(tmp_path / "p", [(A[:9], 1.0, "COMPLETED")], reward="fid")
    with pytest.raises(errors.SearchError, match="no completed trial scored a full"):
        proxy_lib.load_scored_architectures(only_partial)


def test_selection_spreads_over_the_reward_range_and_is_seeded():
    pool = [{"arch": [i], "reward": float(r)} for i, r in enumerate(range(100, 0, -1))]
    chosen = proxy_lib.select_architectures(pool, 5, seed=0)
    rewards = [e["reward"] for e in chosen]
    # One from each fifth of the sorted rewards (1-20, 21-40, ...), lowest first.
    assert [int((r - 1) // 20) for r in rewards] == [0, 1, 2, 3, 4]
    assert chosen == proxy_lib.select_architectures(pool, 5, seed=0)
    assert chosen != proxy_lib.select_architectures(pool, 5, seed=1)
    assert len(proxy_lib.select_architectures(pool[:3], 5, seed=0)) == 3  # fewer: all
    with pytest.raises(errors.ConfigError, match="num_archs must be >= 2"):
        proxy_lib.ProxyConfig(num_archs=1)


def test_spearman_is_scipys_and_the_textbook_formula():
    x = [0.3, 1.2, 0.8, 2.5, 1.9, 0.1]
    y = [5.0, 6.1, 4.2, 7.7, 8.0, 1.0]
    out = proxy_lib.spearman(x, y)
    ref = stats.spearmanr(x, y)
    assert out["rho"] == pytest.approx(ref.statistic) and out["p_value"] == pytest.approx(
        ref.pvalue) and out["n"] == 6
    d = stats.rankdata(x) - stats.rankdata(y)  # no ties: 1 - 6 sum d^2 / (n (n^2 - 1))
    assert out["rho"] == pytest.approx(1 - 6 * np.sum(d ** 2) / (6 * 35))
    assert proxy_lib.spearman([1, 2, 3], [3, 2, 1])["rho"] == pytest.approx(-1.0)
    assert proxy_lib.spearman([1, 2], [1, 2]) == {"rho": None, "p_value": None, "n": 2}
    assert proxy_lib.spearman([1, 1, 1], [1, 2, 3])["rho"] is None


def _tiny_train(cache, **over):
    kw = dict(dataset="digits", bottom_width=2, gf=8, df=8,
              gan=GANConfig(latent_dim=16, d_batch_size=8, g_batch_size=8, n_critic=1,
                            ema_decay=0.9),
              max_iterations=2, eval_every=1000, eval_images=60, eval_splits=2,
              real_num_images=200, classifier="digits", cache_dir=cache, checkpoint_every=1,
              progress=False)
    kw.update(over)
    return train_lib.TrainConfig(**kw)


@pytest.mark.slow  # trains three tiny generators
def test_tiny_study_correlates_writes_json_and_png_and_skips_finished_archs(tmp_path,
                                                                           digits_cache):
    entries = [(A, 1.1, "COMPLETED"), (B, 1.7, "COMPLETED"), (C, 1.4, "COMPLETED"),
               (A[:4], 3.0, "COMPLETED")]
    _fake_search(tmp_path, entries)
    cfg = proxy_lib.ProxyConfig(num_archs=3, seed=0)
    lines = []
    result = proxy_lib.run_proxy(str(tmp_path), cfg, _tiny_train(digits_cache),
                                 report=lines.append)
    out = tmp_path / "proxy"
    assert json.loads((out / "proxy.json").read_text()) == json.loads(json.dumps(result))
    rows = result["architectures"]
    assert [r["arch"] for r in rows] == [A, C, B]  # all three, lowest reward first
    assert [r["reward"] for r in rows] == [1.1, 1.4, 1.7]
    assert all(r["status"] == "trained" and r["iterations"] == 2 for r in rows)
    assert [r["score"] for r in rows] == [r["is_mean"] for r in rows]
    ref = stats.spearmanr([r["reward"] for r in rows], [r["is_mean"] for r in rows])
    assert result["spearman"]["rho"] == pytest.approx(ref.statistic)
    assert result["spearman"]["p_value"] == pytest.approx(ref.pvalue)
    ref_fid = stats.spearmanr([r["reward"] for r in rows], [r["fid"] for r in rows])
    assert result["spearman_fid"]["rho"] == pytest.approx(ref_fid.statistic)
    assert result["pool_size"] == 3 and result["train"]["max_iterations"] == 2
    for i, r in enumerate(rows):  # each architecture is its own training run
        saved = json.loads((out / f"arch_{i}" / "config.json").read_text())
        assert saved["arch"] == r["arch"]
    from PIL import Image
    with Image.open(out / "proxy.png") as img:
        assert img.size[0] > 200 and len(np.unique(np.asarray(img.convert("RGB")).reshape(
            -1, 3), axis=0)) > 10
    # Started again: the choice is kept and no architecture trains again.
    stamps = {i: os.path.getmtime(out / f"arch_{i}" / "report.json") for i in range(3)}
    lines.clear()
    again = proxy_lib.run_proxy(str(tmp_path), cfg, _tiny_train(digits_cache),
                                report=lines.append)
    assert sum("finished before, skipped" in line for line in lines) == 3
    assert {i: os.path.getmtime(out / f"arch_{i}" / "report.json") for i in range(3)} == stamps
    assert again["spearman"] == result["spearman"]
    # Other settings that change results are refused, naming them.
    with pytest.raises(errors.ConfigError, match=r"train\.gf: saved 8, now 16"):
        proxy_lib.run_proxy(str(tmp_path), cfg, _tiny_train(digits_cache, gf=16))
    with pytest.raises(errors.ConfigError, match="ran on 'digits'"):
        proxy_lib.run_proxy(str(tmp_path), cfg, _tiny_train(digits_cache, dataset="cifar10"))


def _proxy_binary(args, cache):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", AUTOGAN_TF_CACHE=cache,
               PYTHONPATH=os.pathsep.join([REPO_ROOT, os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "autogan_tf.proxy", *args], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=600)


_TINY_FLAGS = ["--dataset=digits", "--bottom_width=2", "--gf_dim=8", "--df_dim=8",
               "--latent_dim=16", "--d_batch_size=8", "--g_batch_size=8", "--n_critic=1",
               "--ema_decay=0.9", "--max_iter=1", "--eval_images=40", "--real_num_images=100",
               "--classifier=digits", "--noprogress"]


@pytest.mark.slow  # two tiny trainings in a subprocess
def test_binary_runs_a_tiny_study(tmp_path, digits_cache):
    _fake_search(tmp_path, [(A, 2.0, "COMPLETED"), (B, 1.0, "COMPLETED"),
                            (C, 1.5, "COMPLETED")])
    p = _proxy_binary([f"--run_dir={tmp_path}", f"--output_dir={tmp_path / 'study'}",
                       "--num_archs=2", "--seed=4", f"--cache_dir={digits_cache}",
                       *_TINY_FLAGS], digits_cache)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    result = json.loads(p.stdout.strip().splitlines()[-1])
    pool = [{"arch": a, "reward": r} for a, r in ((A, 2.0), (B, 1.0), (C, 1.5))]
    picked = proxy_lib.select_architectures(pool, 2, seed=4)
    assert [r["arch"] for r in result["architectures"]] == [e["arch"] for e in picked]
    assert result["spearman"]["n"] == 2 and result["spearman"]["rho"] is None  # undefined
    assert os.path.isfile(tmp_path / "study" / "proxy.png")
    assert sum(line.startswith("[") for line in p.stdout.splitlines()) == 2


def test_binary_errors_are_one_line(tmp_path, digits_cache):
    p = _proxy_binary([f"--run_dir={tmp_path}", *_TINY_FLAGS], digits_cache)
    assert p.returncode == 1
    assert p.stderr.strip().splitlines()[-1].startswith(
        f"proxy: error: {tmp_path / 'search'} holds no keras-tuner trials")
    assert "Traceback" not in p.stderr and not (tmp_path / "proxy").exists()
