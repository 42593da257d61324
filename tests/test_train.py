"""Training a derived architecture: learning, resume, errors, data parallelism, derivation."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from autogan_tf import errors
from autogan_tf import search_space as ss
from autogan_tf.search import derive_lib
from autogan_tf.training import train_lib
from autogan_tf.training.gan import GANConfig

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cfg(cache, **over):
    kw = dict(dataset="digits", bottom_width=2, gf=16, df=16,
              gan=GANConfig(latent_dim=16, d_batch_size=16, g_batch_size=16, n_critic=2,
                            ema_decay=0.9),
              max_iterations=10, eval_every=1000, eval_images=300, real_num_images=500,
              classifier="digits", cache_dir=cache, checkpoint_every=5, progress=False)
    kw.update(over)
    return train_lib.TrainConfig(**kw)


def test_training_improves_fid_over_its_initial_value(tmp_path, digits_cache):
    t = train_lib.Trainer(_cfg(digits_cache, max_iterations=40), str(tmp_path))
    before = t.evaluate()
    report = t.train()
    after = report["final"]
    assert report["iterations"] == 40 and after["iteration"] == 40
    assert after["fid"] < 0.85 * before["fid"], (before, after)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["iteration"] for x in lines] == [0, 40]
    assert report["best_fid"] == pytest.approx(min(before["fid"], after["fid"]))
    gen, info = train_lib.load_generator_from_checkpoint(str(tmp_path))
    assert info["kind"] == "best"
    z = tf.random.normal([3, 16])
    np.testing.assert_allclose(gen(z), t.trainer.ema_generator(z), atol=1e-6)


def test_resume_continues_iteration_count_ema_and_optimiser(tmp_path, digits_cache):
    a = train_lib.Trainer(_cfg(digits_cache, max_iterations=10), str(tmp_path))
    a.train()
    ema = [w.numpy() for w in a.trainer.ema_generator.weights]
    adam = [v.numpy() for v in a.trainer.g_opt.variables]
    # a new process-like start on the same directory (the kill loses nothing saved)
    b = train_lib.Trainer(_cfg(digits_cache, max_iterations=15), str(tmp_path))
    assert b.iteration == 10
    for x, w in zip(ema, b.trainer.ema_generator.weights):
        np.testing.assert_array_equal(x, w.numpy())
    for x, v in zip(adam, b.trainer.g_opt.variables):
        np.testing.assert_array_equal(x, v.numpy())
    report = b.train()
    assert report["started_at_iteration"] == 10 and report["iterations"] == 15
    assert int(b.trainer.d_opt.iterations) == 30  # n_critic 2 x 15


def test_run_dir_of_another_architecture_is_refused(tmp_path, digits_cache):
    train_lib.Trainer(_cfg(digits_cache), str(tmp_path), flags_text="first").save()
    before = (tmp_path / "config.json").read_text()
    with pytest.raises(errors.ConfigError, match=r"arch: saved \[1, 0, 1, 1, 1, 0, 0, 1, 1, 1, "
                                                 r"0, 1, 0, 3\], now \[1, 0, 1, 1, 1, 0, 1"):
        train_lib.Trainer(_cfg(digits_cache, arch="autogan_cifar10_b"), str(tmp_path),
                          flags_text="second")
    assert (tmp_path / "config.json").read_text() == before
    assert (tmp_path / "flags.txt").read_text() == "first"


def test_corrupt_or_missing_checkpoint_is_a_clear_error(tmp_path, digits_cache):
    t = train_lib.Trainer(_cfg(digits_cache), str(tmp_path))
    prefix = t.save()
    data = [f for f in os.listdir(tmp_path / "ckpt") if ".data-" in f][0]
    with open(tmp_path / "ckpt" / data, "r+b") as f:
        f.truncate(100)
    with pytest.raises(train_lib.CheckpointError, match="corrupt"):
        train_lib.load_generator_from_checkpoint(prefix)
    with pytest.raises(train_lib.CheckpointError, match="cannot restore any checkpoint .*"
                                                        "ckpt-0: .*corrupt"):
        train_lib.Trainer(_cfg(digits_cache), str(tmp_path))
    with pytest.raises(train_lib.CheckpointError, match="neither a training run directory"):
        train_lib.load_generator_from_checkpoint(str(tmp_path / "nothing"))


_MIRRORED = r"""
import sys, json
import tensorflow as tf, keras
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from autogan_tf.nn.generators import DerivedGenerator
from autogan_tf.nn.discriminator import Discriminator
from autogan_tf.training.gan import GANConfig, GANTrainer

def run(strategy):
    keras.utils.set_random_seed(0)
    s = strategy or tf.distribute.get_strategy()
    with s.scope():
        g = DerivedGenerator("autogan_cifar10_c", latent_dim=8, channels=8, bottom_width=2)
        d = Discriminator(8, input_resolution=16)
    t = GANTrainer(g, d, GANConfig(latent_dim=8, d_batch_size=8, g_batch_size=8, n_critic=1),
                   seed=1, strategy=strategy)
    real = tf.random.stateless_uniform([8, 16, 16, 3], [1, 2], -1, 1)
    out = []
    for _ in range(3):
        out += [float(t.d_step(real)), float(t.g_step())]
    return out, s.num_replicas_in_sync

devices = [d.name for d in tf.config.list_logical_devices("CPU")]
single, n1 = run(None)
mirrored, n2 = run(tf.distribute.MirroredStrategy(devices))
print(json.dumps({"single": single, "mirrored": mirrored, "replicas": [n1, n2]}))
"""


def test_mirrored_strategy_losses_match_single_device():
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", _MIRRORED], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["replicas"] == [1, 2]
    # same global batch: identical up to float reassociation (BN is synchronised)
    np.testing.assert_allclose(res["mirrored"], res["single"], rtol=1e-4, atol=1e-4)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_distributed_derive_with_chief_and_two_workers(tmp_path, digits_cache):
    port = str(_free_port())
    cmd = [sys.executable, "-m", "autogan_tf.derive",
           "--candidates=autogan_cifar10_a;autogan_cifar10_b;autogan_cifar10_c",
           "--dataset=digits", "--bottom_width=2", "--gf_dim=8", "--df_dim=8",
           "--latent_dim=16", "--d_batch_size=8", "--g_batch_size=8", "--n_critic=1",
           "--max_iter=3", "--eval_every=3", "--eval_images=100", "--real_num_images=200",
           "--classifier=digits", f"--cache_dir={digits_cache}", f"--run_dir={tmp_path}",
           "--noprogress"]
    procs = {}
    for tid in ("chief", "tuner0", "tuner1"):
        env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="3",
                   KERASTUNER_TUNER_ID=tid, KERASTUNER_ORACLE_IP="127.0.0.1",
                   KERASTUNER_ORACLE_PORT=port)
        procs[tid] = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True)
    outs = {tid: p.communicate(timeout=900)[0] for tid, p in procs.items()}
    for tid, p in procs.items():
        assert p.returncode == 0, f"{tid}:\n{outs[tid][-3000:]}"
    summary = json.loads((tmp_path / "derive" / "summary.json").read_text())
    assert sorted(r["candidate"] for r in summary["candidates"]) == [0, 1, 2]
    fids = [r["fid"] for r in summary["candidates"]]
    assert fids == sorted(fids) and summary["best"]["fid"] == fids[0]
    for r in summary["candidates"]:  # ranked by the generator each keeps: best/
        best = json.loads((tmp_path / "derive" / f"candidate_{r['candidate']}" / "best" /
                           "scores.json").read_text())
        assert (r["fid"], r["inception_score"]) == (best["fid"], best["is_mean"])
    # both workers trained candidates; the chief only handed them out
    worker_trials = [outs[t].count("Deriving candidate") for t in ("tuner0", "tuner1")]
    assert sum(worker_trials) == 3 and min(worker_trials) >= 1
    assert "Deriving candidate" not in outs["chief"]
    best = json.loads((tmp_path / "derive" / "best.json").read_text())
    assert best["arch"] == summary["best"]["arch"]
    for i in range(3):
        assert (tmp_path / "derive" / f"candidate_{i}" / "report.json").exists()


def test_checkpoint_of_another_architecture_is_refused(tmp_path, digits_cache):
    t = train_lib.Trainer(_cfg(digits_cache), str(tmp_path))
    prefix = t.save()
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["arch"] = [0, 2, 2, 1, 0, 2, 2, 1, 1, 0, 1, 2, 1, 2]  # deconvs and norms it never had
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(train_lib.CheckpointError, match="of another architecture"):
        train_lib.load_generator_from_checkpoint(prefix)


# ----- derivation helpers --------------------------------------------------------------------------
def test_load_candidates_from_a_search_file_or_specs(tmp_path):
    a, b = (list(ss.REFERENCE_ARCHS[n]) for n in ("autogan_cifar10_a",
                                                            "autogan_cifar10_b"))
    path = tmp_path / "top.json"
    path.write_text(json.dumps({"architectures": [{"arch": a, "reward": 3.0},
                                                  {"arch": b, "reward": 2.0}]}))
    assert [list(x.tokens) for x in derive_lib.load_candidates(str(path))] == [a, b]
    assert [list(x.tokens) for x in derive_lib.load_candidates(str(path), 1)] == [a]
    spec = "autogan_cifar10_b; " + " ".join(map(str, a))
    assert [list(x.tokens) for x in derive_lib.load_candidates(spec)] == [b, a]
    for content, match in [("{", "malformed candidates file"),
                           (json.dumps({"architectures": []}), "lists no architectures"),
                           (json.dumps({"architectures": [{"reward": 1}]}), "entry 0 has no"),
                           (json.dumps({"architectures": [{"arch": a[:-1] + [3.5]}]}),
                            "token 13 is 3.5")]:
        path.write_text(content)
        with pytest.raises(errors.ArchitectureError, match=match):
            derive_lib.load_candidates(str(path))


def _trial(tid, candidate, arch, status, **metrics):
    import keras_tuner
    from keras_tuner.engine.trial import Trial
    hp = keras_tuner.HyperParameters()
    hp.Fixed("arch", " ".join(map(str, arch)))
    hp.Fixed("candidate", candidate)
    t = Trial(hp, trial_id=tid, status=status)
    for k, v in metrics.items():
        t.metrics.register(k, direction="min")
        t.metrics.update(k, v)
    if status == "FAILED":
        t.message = "Traceback ...\nFailedTrialError: training run x: d_loss nan"
    return t


class _Oracle:
    def __init__(self, trials):
        self.trials = {t.trial_id: t for t in trials}


def test_summarise_ranks_by_best_fid_then_is_and_lists_failures():
    a = list(ss.REFERENCE_ARCHS["autogan_cifar10_a"])
    oracle = _Oracle([
        _trial("0", 0, a, "COMPLETED", fid=30.0, inception_score=5.0, final_fid=31.0,
               final_inception_score=5.0, best_iteration=100.0),
        _trial("1", 1, a, "COMPLETED", fid=20.0, inception_score=4.0, final_fid=45.0,
               final_inception_score=4.5, best_iteration=50.0),
        _trial("2", 2, a, "COMPLETED", fid=20.0, inception_score=6.0, final_fid=21.0,
               final_inception_score=6.0, best_iteration=100.0),
        _trial("3", 3, a, "FAILED"),
        _trial("4", 4, a, "RUNNING"),
    ])
    summary = derive_lib.summarise(oracle)
    # candidate 1's last evaluation (FID 45) was worse than candidate 0's, but the generator
    # it keeps (FID 20) is better: it ranks by that, and on a tie by the higher IS
    assert [r["candidate"] for r in summary["candidates"]] == [2, 1, 0]
    assert summary["best"]["candidate"] == 2 and summary["best"]["final_fid"] == 21.0
    assert summary["failed"] == [{"candidate": 3, "arch": a,
                                  "message": ["FailedTrialError: training run x: d_loss nan"]}]
    table = derive_lib.format_table(summary).splitlines()
    arch = " ".join(map(str, a))
    assert table == [
        "rank  cand   best FID       IS  architecture",
        f"   1     2     20.000    6.000  {arch}",
        f"   2     1     20.000    4.000  {arch}",
        f"   3     0     30.000    5.000  {arch}",
        f"   -     3     failed           {arch}",
    ]


def test_rank_puts_nonfinite_fids_last():
    rows = [{"candidate": 0, "fid": float("nan"), "inception_score": 9.0},
            {"candidate": 1, "fid": 50.0, "inception_score": 1.0},
            {"candidate": 2, "fid": float("inf"), "inception_score": 9.0}]
    assert [r["candidate"] for r in derive_lib.rank(rows)] == [1, 0, 2]


def test_derive_tuner_reports_the_best_generator_of_a_candidate(tmp_path, digits_cache):
    cfg = _cfg(digits_cache, max_iterations=4, eval_every=2, checkpoint_every=2)
    oracle = derive_lib.DeriveOracle(["autogan_cifar10_a"])
    tuner = derive_lib.build_derive(["autogan_cifar10_a"], cfg, str(tmp_path))
    derive_lib.run(tuner)
    summary = derive_lib.summarise(tuner.oracle)
    lines = [json.loads(x) for x in
             (tmp_path / "derive" / "candidate_0" / "metrics.jsonl").read_text().splitlines()]
    best = min(lines, key=lambda r: r["fid"])
    row = summary["best"]
    assert (row["fid"], row["inception_score"]) == (best["fid"], best["is_mean"])
    assert row["best_iteration"] == best["iteration"]
    assert (row["final_fid"], row["final_inception_score"]) == (lines[-1]["fid"],
                                                                lines[-1]["is_mean"])
    assert oracle.max_consecutive_failed_trials == 2
