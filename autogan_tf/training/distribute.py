"""The `tf.distribute` strategies of `train`, `search` and `derive`, and where each task writes.

* ``default``: one device.
* ``mirrored``: `tf.distribute.MirroredStrategy` over all local GPUs; on a host without GPUs,
  ``num_cpu_replicas`` > 0 splits the CPU into that many logical devices (one replica each).
* ``multi_worker``: `tf.distribute.MultiWorkerMirroredStrategy` over the tasks of `TF_CONFIG`
  (one worker on its local devices without it).

The GAN steps (`training.gan`) are data parallel under any of them: every replica takes its
slice of the global batch, gradients and batch-norm statistics are all-reduced, so a step equals
a single-device step on the same global batch. Every task of a multi-worker run runs the same
program on the same data and keeps identical weights; the chief (`is_chief`) writes the run
directory it was given, every other task a copy of its own (`task_dir`), so tasks never share a
directory (each can resume from its own checkpoints).

Logical CPU devices can only be configured before TensorFlow initialises its runtime, and
`MultiWorkerMirroredStrategy` must be created before any op runs: make the strategy first.
"""

from __future__ import annotations

from typing import Optional

import tensorflow as tf
from absl import logging

from autogan_tf.errors import ConfigError

__all__ = ["STRATEGIES", "make_strategy", "is_chief", "task_dir", "barrier"]

STRATEGIES = ("default", "mirrored", "multi_worker")


def _split_cpu(num_replicas: int) -> list:
    """Names of `num_replicas` logical CPU devices (configured now if TF has not started)."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    want = [tf.config.LogicalDeviceConfiguration() for _ in range(num_replicas)]
    try:
        tf.config.set_logical_device_configuration(cpu, want)
    except RuntimeError as e:  # the runtime has started: fine if it is already split so
        have = tf.config.get_logical_device_configuration(cpu) or []
        if len(have) != num_replicas:
            raise ConfigError(
                f"cannot split the CPU into {num_replicas} devices: TensorFlow has already "
                f"started with {max(1, len(have))} ({e}); make the strategy before anything "
                "else runs") from e
    return [d.name for d in tf.config.list_logical_devices("CPU")][:num_replicas]


def make_strategy(kind: str, num_cpu_replicas: int = 0) -> Optional[tf.distribute.Strategy]:
    """The strategy named `kind` (one of `STRATEGIES`); None for ``default``.

    Args:
      kind: ``default``, ``mirrored`` or ``multi_worker``.
      num_cpu_replicas: with ``mirrored`` on a host without GPUs, split the CPU into this many
        logical devices (0: one replica on the CPU). Ignored where there are GPUs.

    Raises:
      ConfigError: an unknown kind, `num_cpu_replicas` without ``mirrored``, or a CPU that can
        no longer be split.
    """
    if kind not in STRATEGIES:
        raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}, got {kind!r}")
    if num_cpu_replicas < 0:
        raise ConfigError(f"num_cpu_replicas must be >= 0, got {num_cpu_replicas}")
    if num_cpu_replicas and kind != "mirrored":
        raise ConfigError(f"--num_cpu_replicas={num_cpu_replicas} needs --strategy=mirrored "
                          f"(got --strategy={kind})")
    if kind == "default":
        return None
    if kind == "mirrored":
        if num_cpu_replicas and not tf.config.list_physical_devices("GPU"):
            strategy = tf.distribute.MirroredStrategy(_split_cpu(num_cpu_replicas))
        else:
            strategy = tf.distribute.MirroredStrategy()
    else:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    task_type, task_id = _task(strategy)
    logging.info("--strategy=%s: %d replicas%s", kind, strategy.num_replicas_in_sync,
                 f", this task {task_type} {task_id}" if task_type else "")
    return strategy


def _task(strategy) -> tuple:
    resolver = getattr(strategy, "cluster_resolver", None) if strategy is not None else None
    if resolver is None or not resolver.task_type:
        return None, None
    return resolver.task_type, int(resolver.task_id or 0)


def is_chief(strategy: Optional[tf.distribute.Strategy]) -> bool:
    """True for a single-process strategy and for the chief of a multi-worker cluster (the
    ``chief`` task, else ``worker`` 0)."""
    return strategy is None or bool(strategy.extended.should_checkpoint)


def task_dir(path: str, strategy: Optional[tf.distribute.Strategy]) -> str:
    """Where this task writes what the chief writes to `path`: `path` itself on the chief,
    `<path>-<task type>-<task index>` on every other task (e.g. ``runs/x-worker-0``)."""
    if is_chief(strategy):
        return path
    task_type, task_id = _task(strategy)
    return f"{path.rstrip('/')}-{task_type}-{task_id}"


def barrier(strategy: Optional[tf.distribute.Strategy]) -> None:
    """Waits until every task of a multi-worker cluster gets here (a no-op otherwise), so that
    no task leaves while the others still run: a task whose peers have gone cannot finish."""
    if _task(strategy)[0] is None:
        return
    strategy.reduce(tf.distribute.ReduceOp.SUM,
                    strategy.run(tf.function(lambda: tf.constant(1.0))), axis=None)
