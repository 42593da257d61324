"""Training a derived architecture: learning, resume, errors, data parallelism, derivation."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

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
    train_lib.Trainer(_cfg(digits_cache), str(tmp_path)).save()
    before = (tmp_path / "config.json").read_text()
    with pytest.raises(train_lib.CheckpointError, match="holds a training run of architecture"):
        train_lib.Trainer(_cfg(digits_cache, arch="autogan_cifar10_b"), str(tmp_path))
    assert (tmp_path / "config.json").read_text() == before


def test_corrupt_or_missing_checkpoint_is_a_clear_error(tmp_path, digits_cache):
    t = train_lib.Trainer(_cfg(digits_cache), str(tmp_path))
    prefix = t.save()
    data = [f for f in os.listdir(tmp_path / "ckpt") if ".data-" in f][0]
    with open(tmp_path / "ckpt" / data, "r+b") as f:
        f.truncate(100)
    with pytest.raises(train_lib.CheckpointError, match="corrupt"):
        train_lib.load_generator_from_checkpoint(prefix)
    with pytest.raises(train_lib.CheckpointError, match="corrupt"):
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
