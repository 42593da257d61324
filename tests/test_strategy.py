"""Data parallelism: synchronised batch norm (also inside the supernet's branches), and
`train` and `search` under `--strategy` through the binaries, against single-device runs.

The binaries record their losses in TensorBoard (`train/d_loss`, `train/g_loss` per generator
iteration in training, `shared/d_loss`, `shared/g_loss` per D step in the search); the tests
read them back and compare a run under a strategy with a single-device run of the same global
batch. Two replicas on a CPU host are two logical CPU devices (`--num_cpu_replicas=2`).
"""

import glob
import json
import os
import socket
import subprocess
import sys
import types

import numpy as np
import pytest
import tensorflow as tf

from autogan_tf.errors import ConfigError
from autogan_tf.training import distribute, gan
from autogan_tf.training.gan import GANConfig

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = ["-m", "autogan_tf.train", "--flagfile=configs/train_tiny.cfg"]
SEARCH = ["-m", "autogan_tf.search", "--flagfile=configs/search_tiny.cfg"]
MIRRORED = ["--strategy=mirrored", "--num_cpu_replicas=2"]
TRAIN_STEPS = [1, 2, 3, 4]  # generator iterations of configs/train_tiny.cfg


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _run(args, timeout=900, **extra_env):
    return subprocess.run([sys.executable] + args, cwd=REPO_ROOT, env=_env(**extra_env),
                          capture_output=True, text=True, timeout=timeout)


def _ok(p):
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def tb_losses(tb_dir: str) -> dict:
    """{tag: {step: value}} of the loss scalars TensorBoard holds under `tb_dir`."""
    out = {}
    for path in sorted(glob.glob(os.path.join(tb_dir, "**", "events.out.tfevents.*"),
                                 recursive=True)):
        for event in tf.compat.v1.train.summary_iterator(path):
            for v in event.summary.value:
                if v.tag.endswith("_loss"):
                    out.setdefault(v.tag, {})[event.step] = float(tf.make_ndarray(v.tensor))
    return out


def _series(losses, tag, steps):
    return np.array([losses[tag][s] for s in steps])


# ----- synchronised batch norm, in process (two logical CPUs) ----------------------------------
_SYNC_BN = r"""
import json
import numpy as np
import tensorflow as tf, keras
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from autogan_tf.nn import layers as L
from autogan_tf.nn.cells import SearchCell

strategy = tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
x = tf.random.stateless_normal([8, 2, 2, 4], [3, 4]) * 2.0 + 0.5
w = tf.random.stateless_normal([8, 4, 4, 4], [5, 6])
out = {}

def replica_slice(t):
    rid = tf.distribute.get_replica_context().replica_id_in_sync_group
    return t[rid * 4:(rid + 1) * 4]

# 1. moments of the global batch and their gradient
def moments_loss(xs):
    mean, var = L.cross_replica_moments(xs)
    return tf.reduce_sum(mean * tf.range(4.0)) + tf.reduce_sum(var * (1.0 + tf.range(4.0)))

@tf.function
def mirrored_moments():
    def fn():
        xs = replica_slice(x)
        with tf.GradientTape() as tape:
            tape.watch(xs)
            loss = moments_loss(xs) / 2.0  # per-replica losses sum to the global one
        return tf.concat([[loss], tf.reshape(tape.gradient(loss, xs), [-1])], 0)
    return strategy.experimental_local_results(strategy.run(fn))

with tf.GradientTape() as tape:
    tape.watch(x)
    mean, var = tf.nn.moments(x, [0, 1, 2])
    loss = tf.reduce_sum(mean * tf.range(4.0)) + tf.reduce_sum(var * (1.0 + tf.range(4.0)))
grad = tape.gradient(loss, x)
per_replica = [r.numpy() for r in mirrored_moments()]
out["moments_loss"] = [float(loss)] + [float(r[0]) for r in per_replica]
out["moments_grad_err"] = float(np.abs(np.concatenate(
    [r[1:].reshape(4, 2, 2, 4) for r in per_replica]) - grad.numpy()).max())

# 2. one supernet cell: batch norm inside the switch_case branches, pre- and post-activation
def make_cell():
    keras.utils.set_random_seed(7)
    cell = SearchCell(4, 0)
    cell.build((None, 2, 2, 4))
    return cell

with strategy.scope():
    m_cell = make_cell()
s_cell = make_cell()
stats = lambda cell: [v.numpy() for v in cell.non_trainable_variables if "moving" in v.path]
initial = stats(s_cell)

@tf.function
def mirrored_step(choice):
    def fn():
        xs, ws = replica_slice(x), replica_slice(w)
        with tf.GradientTape() as tape:
            _, y = m_cell(xs, choice=choice, training=True)
            loss = tf.reduce_sum(y * ws)
        grads = tape.gradient(loss, m_cell.trainable_variables)
        ctx = tf.distribute.get_replica_context()
        return y, ctx.all_reduce("sum", [g if g is not None else tf.zeros_like(v)
                                         for g, v in zip(grads, m_cell.trainable_variables)])
    ys, grads = strategy.run(fn)
    return (tf.concat(strategy.experimental_local_results(ys), 0),
            [strategy.experimental_local_results(g)[0] for g in grads])

@tf.function
def single_step(choice):
    with tf.GradientTape() as tape:
        _, y = s_cell(x, choice=choice, training=True)
        loss = tf.reduce_sum(y * w)
    return y, [g if g is not None else tf.zeros_like(v)
               for g, v in zip(tape.gradient(loss, s_cell.trainable_variables),
                               s_cell.trainable_variables)]

h_cell = make_cell()

@tf.function
def half_batches(choice):  # what unsynchronised replicas would compute
    return tf.concat([h_cell(x[:4], choice=choice, training=True)[1],
                      h_cell(x[4:], choice=choice, training=True)[1]], 0)

for choice in ([0, 1, 2, 1, 0], [1, 1, 1, 0, 0], [0, 2, 0, 1, 0]):
    key = "".join(map(str, choice[:3]))
    choice = tf.constant(choice, tf.int32)
    y, grads = single_step(choice)
    my, mgrads = mirrored_step(choice)
    out["cell_out_err_" + key] = float(np.abs(my.numpy() - y.numpy()).max())
    out["half_batch_err_" + key] = float(np.abs(half_batches(choice).numpy() - y.numpy()).max())
    out["cell_grad_err_" + key] = max(float(np.abs(a.numpy() - b.numpy()).max())
                                      for a, b in zip(mgrads, grads))
    out["cell_grad_max_" + key] = max(float(np.abs(b.numpy()).max()) for b in grads)
out["moving_stats_err"] = max(float(np.abs(a - b).max())
                              for a, b in zip(stats(m_cell), stats(s_cell)))
out["moving_stats_changed"] = max(float(np.abs(a - b).max())
                                  for a, b in zip(initial, stats(s_cell)))
out["first_replica"] = strategy.experimental_local_results(strategy.run(
    tf.function(lambda: L.from_first_replica(tf.cast(
        tf.distribute.get_replica_context().replica_id_in_sync_group + 3, tf.int32)))))
out["first_replica"] = [int(v) for v in out["first_replica"]]
print(json.dumps(out))
"""


def test_batch_norm_statistics_and_gradients_are_those_of_the_global_batch():
    res = _ok(_run(["-c", _SYNC_BN], timeout=600))
    loss, *replica_losses = res["moments_loss"]
    assert replica_losses == pytest.approx([loss / 2, loss / 2], rel=1e-6)
    assert res["moments_grad_err"] < 1e-5
    # The supernet cell under two replicas equals one device on the global batch: outputs,
    # weight gradients (batch norm of post- and pre-activation blocks inside the branches;
    # instance norm) and the moving statistics of batch norm.
    for key in ("012", "111", "020"):
        assert res[f"cell_out_err_{key}"] < 1e-5, key
        if key != "020":  # batch norm of each half batch alone would differ by far more
            assert res[f"half_batch_err_{key}"] > 0.1, key
        assert res[f"cell_grad_err_{key}"] < 1e-4 * max(1.0, res[f"cell_grad_max_{key}"]), key
    assert res["moving_stats_changed"] > 1e-2  # the statistics did move...
    assert res["moving_stats_err"] < 1e-5  # ...identically
    assert res["first_replica"] == [3, 3]  # every replica gets replica 0's value


# ----- where each task writes; flag errors -------------------------------------------------------
def _fake_strategy(task_type, task_id, chief):
    resolver = types.SimpleNamespace(task_type=task_type, task_id=task_id)
    return types.SimpleNamespace(cluster_resolver=resolver,
                                 extended=types.SimpleNamespace(should_checkpoint=chief))


def test_non_chief_tasks_write_a_directory_of_their_own():
    assert distribute.task_dir("runs/x", None) == "runs/x"
    assert distribute.task_dir("runs/x", _fake_strategy("chief", 0, True)) == "runs/x"
    assert distribute.task_dir("runs/x/", _fake_strategy("worker", 1, False)) == "runs/x-worker-1"
    assert not distribute.is_chief(_fake_strategy("worker", 0, False))


def test_num_cpu_replicas_needs_the_mirrored_strategy(tmp_path):
    p = _run(["-m", "autogan_tf.train", "--dataset=digits", "--strategy=multi_worker",
              "--num_cpu_replicas=2", f"--run_dir={tmp_path / 'r'}"], timeout=300)
    assert p.returncode == 2
    assert ("train: usage error: --num_cpu_replicas=2 needs --strategy=mirrored "
            "(got --strategy=multi_worker)") in p.stderr
    assert not os.path.exists(tmp_path / "r")


def test_gan_settings_must_fit_the_replicas(tmp_path, digits_cache):
    p = _run(["-m", "autogan_tf.train", "--flagfile=configs/train_tiny.cfg", "--d_batch_size=15",
              f"--cache_dir={digits_cache}", f"--run_dir={tmp_path / 'r'}", *MIRRORED],
             timeout=300)
    assert p.returncode == 1
    assert ("train: error: d_batch_size 15 is the global batch and must split evenly over the "
            "2 replicas; choose a multiple of 2") in p.stderr
    assert not os.path.exists(tmp_path / "r")
    gan.check_replicas(GANConfig(d_batch_size=16, g_batch_size=32, jit_compile=True), 1)
    with pytest.raises(ConfigError, match="XLA .--xla. compiles each step for one device and "
                                          "cannot run on 2 replicas"):
        gan.check_replicas(GANConfig(d_batch_size=16, g_batch_size=32, jit_compile=True), 2)


# ----- the binaries under a strategy -------------------------------------------------------------


def _assert_same_losses(got, want, tags, steps, rtol=1e-3, atol=1e-4):
    """Losses of the same global batches agree. Two runs that add in another order agree to
    about 1e-7 at first; then Adam (beta_1 = 0) turns rounding noise in gradients near zero
    into steps of the learning rate, and by the fourth step they differ by up to 1e-4.
    Batch norm over each replica's half batch changes a supernet cell's outputs by more than
    0.1 (the test above)."""
    for tag in tags:
        a, b = _series(got, tag, steps), _series(want, tag, steps)
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=tag)
        assert np.ptp(b) > 1e-3, (tag, b)  # the losses move: the comparison means something


@pytest.mark.slow
def test_mirrored_train_and_derive_match_single_device_resume_and_export(tmp_path, digits_cache):
    single, mirrored = tmp_path / "single", tmp_path / "mirrored"
    cache = f"--cache_dir={digits_cache}"
    report = _ok(_run(TRAIN + [f"--run_dir={single}", cache]))
    assert report["iterations"] == 4
    # Two replicas: 2 iterations, resumed under the strategy to 3, then without one to 4.
    parts = [_ok(_run(TRAIN + [f"--run_dir={mirrored}", cache, *flags]))
             for flags in ([*MIRRORED, "--max_iter=2"], [*MIRRORED, "--max_iter=3"],
                           ["--max_iter=4"])]
    assert [(r["started_at_iteration"], r["iterations"]) for r in parts] == [(0, 2), (2, 3),
                                                                             (3, 4)]
    # Same global batch, batch norm synchronised: the losses of every iteration match, also
    # those after restoring the strategy's checkpoints (in a run with and without one).
    _assert_same_losses(tb_losses(str(mirrored / "tb")), tb_losses(str(single / "tb")),
                        ("train/d_loss", "train/g_loss"), TRAIN_STEPS)
    assert parts[-1]["final"]["fid"] == pytest.approx(report["final"]["fid"], rel=1e-3)
    # derive trains its candidate (the flagfile's architecture) as train does, here mirrored.
    derived = tmp_path / "derived"
    _ok(_run(["-m", "autogan_tf.derive", "--candidates=autogan_cifar10_c",
              "--flagfile=configs/train_tiny.cfg", f"--run_dir={derived}", cache, *MIRRORED]))
    _assert_same_losses(tb_losses(str(derived / "derive" / "candidate_0" / "tb")),
                        tb_losses(str(single / "tb")), ("train/d_loss", "train/g_loss"),
                        TRAIN_STEPS)

    # The strategy-trained run exports, and its SavedModel scores as its checkpoint does.
    p = _run(["-m", "autogan_tf.export", f"--checkpoint={mirrored}",
              f"--export_dir={tmp_path / 'export'}"])
    assert p.returncode == 0, p.stderr[-3000:]
    saved_model = p.stdout.split("Exported SavedModel: ")[1].split()[0]
    scores = {}
    for name, source in (("checkpoint", f"--checkpoint={mirrored}"),
                         ("saved_model", f"--saved_model={saved_model}")):
        out = tmp_path / f"eval_{name}.json"
        p = _run(["-m", "autogan_tf.evaluate", source, "--dataset=digits", "--classifier=digits",
                  cache, "--num_images=100", "--splits=2", f"--output={out}"])
        assert p.returncode == 0, p.stderr[-3000:]
        scores[name] = json.loads(out.read_text())
    assert 1.0 < scores["checkpoint"]["is_mean"] < 10.0
    for key in ("is_mean", "fid"):
        assert scores["saved_model"][key] == pytest.approx(scores["checkpoint"][key], rel=1e-5)


@pytest.mark.slow
def test_mirrored_search_matches_single_device(tmp_path, digits_cache):
    runs = {}
    for name, flags in (("single", []), ("mirrored", MIRRORED)):
        result = _ok(_run(SEARCH + [f"--run_dir={tmp_path / name}",
                                    f"--cache_dir={digits_cache}", *flags]))
        assert (result["d_steps"], result["g_steps"]) == (12, 6)
        assert os.path.exists(tmp_path / name / "search" / "top_architectures.json")
        runs[name] = tb_losses(str(tmp_path / name / "search" / "tb"))
    # The first iteration (4 D steps, 2 G steps; a G loss is logged at every D step) trains
    # the same architectures from the same initial controller: the losses match.
    _assert_same_losses(runs["mirrored"], runs["single"], ("shared/d_loss",), [1, 2, 3, 4])
    _assert_same_losses(runs["mirrored"], runs["single"], ("shared/g_loss",), [2, 4])


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _checkpoint_values(run_dir):
    prefix = tf.train.latest_checkpoint(os.path.join(run_dir, "ckpt"))
    reader = tf.train.load_checkpoint(prefix)
    return os.path.basename(prefix), {
        name: reader.get_tensor(name) for name, _ in tf.train.list_variables(prefix)
        if not name.startswith("_CHECKPOINTABLE_OBJECT_GRAPH")}


@pytest.mark.slow
def test_multi_worker_train_chief_and_worker_agree(tmp_path, digits_cache):
    chief_port, worker_port = _free_ports(2)
    cluster = {"chief": [f"127.0.0.1:{chief_port}"], "worker": [f"127.0.0.1:{worker_port}"]}
    cmd = [sys.executable] + TRAIN + [f"--run_dir={tmp_path / 'run'}",
                                      f"--cache_dir={digits_cache}", "--strategy=multi_worker"]
    procs = {}
    for task in ("chief", "worker"):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": task, "index": 0}})
        procs[task] = subprocess.Popen(cmd, cwd=REPO_ROOT, env=_env(TF_CONFIG=tf_config),
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outs = {}
    try:
        for task, p in procs.items():
            outs[task] = p.communicate(timeout=900)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
    for task, p in procs.items():
        assert p.returncode == 0, f"{task}:\n{outs[task][1][-4000:]}"
        assert json.loads(outs[task][0].strip().splitlines()[-1])["iterations"] == 4
    # The chief writes --run_dir, the worker its own copy; both hold the same weights.
    chief_dir, worker_dir = tmp_path / "run", tmp_path / "run-worker-0"
    assert sorted(os.listdir(tmp_path)) == ["run", "run-worker-0"]
    chief_name, chief = _checkpoint_values(str(chief_dir))
    worker_name, worker = _checkpoint_values(str(worker_dir))
    assert chief_name == worker_name == "ckpt-4" and chief.keys() == worker.keys()
    assert len(chief) > 50
    for name, value in chief.items():
        np.testing.assert_allclose(worker[name], value, rtol=1e-6, atol=1e-7, err_msg=name)
    # One worker without TF_CONFIG (one replica) sees the same global batches: same losses.
    _ok(_run(TRAIN + [f"--run_dir={tmp_path / 'one'}", f"--cache_dir={digits_cache}",
                      "--strategy=multi_worker"]))
    _assert_same_losses(tb_losses(str(chief_dir / "tb")), tb_losses(str(tmp_path / "one" / "tb")),
                        ("train/d_loss", "train/g_loss"), TRAIN_STEPS)
