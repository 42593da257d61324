"""Proxy validity (paper 4.3.1): train architectures a search scored from scratch and correlate.

    python -m autogan_tf.proxy --flagfile=configs/proxy_digits.cfg --run_dir=runs/digits
    python -m autogan_tf.proxy --run_dir=runs/digits --flagfile=configs/train_digits.cfg \\
        --max_iter=1000 --num_archs=8

Reads the full architectures the search in `<run_dir>/search/` scored (keras-tuner's
`trial_*/trial.json`, with their shared-weight rewards), chooses `--num_archs` of them spread
over the reward range (seeded by `--seed`), trains each from scratch with the training flags
(a training flagfile and `--max_iter` set the budget), and writes `<output_dir>/proxy.json`
(per architecture its reward and from-scratch IS and FID; Spearman's rank correlation between
reward and score with its p-value) and `proxy.png` (the scatter plot). Each architecture is
its own training run in `<output_dir>/arch_<i>/`: killed and started again with the same
command, the study keeps its choice, skips the finished architectures and resumes the one in
training. `<output_dir>` defaults to `<run_dir>/proxy`. Prints one line per architecture, then
the result as JSON.
"""

from __future__ import annotations

import json
import os

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from autogan_tf.cli import common, model_flags, runner, train_flags  # noqa: E402
from autogan_tf.experiments import proxy_lib  # noqa: E402

__all__ = ["main"]

_RUN_DIR = common.define_run_dir("runs/digits", "The search's run directory (its search/ "
                                 "holds the trials).")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where the study writes (default "
                                  "<run_dir>/proxy).")
_NUM_ARCHS = flags.DEFINE_integer("num_archs", proxy_lib.ProxyConfig.num_archs,
                                  "Architectures trained from scratch, spread over the reward "
                                  "range.", lower_bound=2)
flags.DEFINE_string("arch", None, "Unused by proxy (the search gives the architectures); "
                    "accepted so training flagfiles can be shared.")
for _module in (model_flags, common, train_flags):  # --help lists them, not only --helpfull
    flags.adopt_module_key_flags(_module)


def main(argv):
    del argv  # no positional arguments (the runner refuses them)
    common.setup()
    try:
        cfg = proxy_lib.ProxyConfig(num_archs=_NUM_ARCHS.value, seed=common.SEED.value)
        train_cfg = train_flags.train_config("autogan_cifar10_a")  # each arch replaces it
    except ValueError as e:  # ConfigError and the dataclasses' checks
        raise app.UsageError(str(e)) from e
    result = proxy_lib.run_proxy(_RUN_DIR.value, cfg, train_cfg, output_dir=_OUTPUT_DIR.value,
                                 report=lambda line: print(line, flush=True),
                                 flags_text=flags.FLAGS.flags_into_string())
    print(json.dumps(result))


if __name__ == "__main__":
    runner.run(main, "proxy")
