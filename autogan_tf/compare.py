"""Compare AutoGAN with its baselines over seeds: searches, derivations and trainings as cells.

    python -m autogan_tf.compare --flagfile=configs/compare_digits.cfg

For each seed (`--seeds`) and method (`--methods`): `autogan` (search with the controller, then
derive), `random` (random search with weight sharing, then derive), `sngan` (SN-GAN's
generator), `autogan_cifar10_a` (the paper's architecture) and `uniform` (one architecture
drawn uniformly with the seed), each final generator trained with the same training flags.
The searches take `--search_flagfile` and the `--search_arg` flags after it; every training
(derive's and train's) takes `--train_flagfile` and the `--train_arg` flags after it. Each
cell is a directory `<output_dir>/<method>/seed_<s>/` of run directories, the steps run as
subprocesses of the `search`, `derive` and `train` binaries with their logs in
`<cell>/logs/`. Writes `<output_dir>/results.json`, `results.md` (IS and FID mean and
standard deviation per method, search and training wall times, the budgets in the header),
`search_rewards.png` and `final_scores.png`. Killed and started again with the same command,
it skips every finished cell and step and resumes the step that was running; a cell that ran
with other settings is refused before anything runs.
"""

from __future__ import annotations

import json
import os

from absl import app, flags

from autogan_tf.cli import runner
from autogan_tf.experiments import compare_lib

__all__ = ["main"]

_C = compare_lib.CompareConfig

_OUTPUT_DIR = flags.DEFINE_string("output_dir", "runs/compare", "Where the cells and the "
                                  "results go.")
_SEARCH_FLAGFILE = flags.DEFINE_string("search_flagfile", None, "Flagfile of both searches.")
_SEARCH_ARGS = flags.DEFINE_multi_string("search_arg", [], "A flag for both searches, after "
                                         "the search flagfile (repeat: --search_arg=--x=1 "
                                         "--search_arg=--y=2).")
_TRAIN_FLAGFILE = flags.DEFINE_string("train_flagfile", None, "Flagfile of every final "
                                      "generator's training (derive and train).")
_TRAIN_ARGS = flags.DEFINE_multi_string("train_arg", [], "A flag for every training, after "
                                        "the training flagfile (repeatable).")
_SEEDS = flags.DEFINE_list("seeds", [str(s) for s in _C.seeds], "One cell per seed and method.")
_METHODS = flags.DEFINE_list("methods", list(_C.methods), "Methods, in table order: "
                             f"{', '.join(compare_lib.METHODS)}.")
_DERIVE = flags.DEFINE_integer("derive_candidates", _C.derive_candidates, "How many of a "
                               "search's top architectures derive trains (the best by FID "
                               "is the method's).", lower_bound=1)


def main(argv):
    del argv  # no positional arguments (the runner refuses them)
    try:
        seeds = tuple(int(s) for s in _SEEDS.value)
    except ValueError as e:
        raise app.UsageError(f"--seeds takes integers: {_SEEDS.value}") from e
    try:
        cfg = compare_lib.CompareConfig(
            search_args=compare_lib.expand_flags(_SEARCH_FLAGFILE.value, _SEARCH_ARGS.value),
            train_args=compare_lib.expand_flags(_TRAIN_FLAGFILE.value, _TRAIN_ARGS.value),
            seeds=seeds, methods=tuple(_METHODS.value), derive_candidates=_DERIVE.value)
    except ValueError as e:  # ConfigError
        raise app.UsageError(str(e)) from e
    results = compare_lib.run_compare(cfg, _OUTPUT_DIR.value,
                                      report=lambda line: print(line, flush=True))
    print(open(results["table"]).read())
    print(json.dumps({"results": os.path.join(_OUTPUT_DIR.value, compare_lib.RESULTS_FILE),
                      "table": results["table"], "plots": results["plots"],
                      "finished": results["finished"]}))


if __name__ == "__main__":
    runner.run(main, "compare")
