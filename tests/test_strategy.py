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

from autogan_tf.training import distribute

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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

for choice in ([0, 1, 2, 1, 0], [1, 1, 1, 0, 0], [0, 2, 0, 1, 0]):
    key = "".join(map(str, choice[:3]))
    choice = tf.constant(choice, tf.int32)
    y, grads = single_step(choice)
    my, mgrads = mirrored_step(choice)
    out["cell_out_err_" + key] = float(np.abs(my.numpy() - y.numpy()).max())
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
