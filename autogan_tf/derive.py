"""Derive the final architecture: train each of the search's top-K from scratch, keep the best.

    python -m autogan_tf.derive --candidates=runs/digits/search/top_architectures.json \\
        --flagfile=configs/train_digits.cfg --run_dir=runs/digits

Each candidate is a keras-tuner trial trained in `<run_dir>/derive/candidate_<i>/` (the layout
of `train`, locked while it trains); candidates are ranked by the best FID of the generator each
keeps in `best/` (ties: higher IS). The result is a table of all candidates and
`<run_dir>/derive/best.json` (the best architecture with its scores, ready for `train --arch` or
`export`). To spread the candidates over processes or machines, start one chief and any number
of workers with the same command and keras-tuner's variables::

    KERASTUNER_TUNER_ID=chief   KERASTUNER_ORACLE_IP=10.0.0.1 KERASTUNER_ORACLE_PORT=8000 python -m autogan_tf.derive ...
    KERASTUNER_TUNER_ID=tuner0  KERASTUNER_ORACLE_IP=10.0.0.1 KERASTUNER_ORACLE_PORT=8000 python -m autogan_tf.derive ...

`--strategy` trains each candidate data parallel instead, as `train` does (with
`--strategy=multi_worker` every task runs the same command and the chief writes `--run_dir`).
"""

from __future__ import annotations

import json
import os

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from autogan_tf import errors  # noqa: E402
from autogan_tf import rundir  # noqa: E402
from autogan_tf import search_space as ss  # noqa: E402
from autogan_tf.cli import common, model_flags, runner, train_flags  # noqa: E402
from autogan_tf.search import derive_lib  # noqa: E402

__all__ = ["main"]

_CANDIDATES = flags.DEFINE_string("candidates", None, "The search's top_architectures.json, or "
                                  "architectures separated by ';'.", required=True)
_NUM = flags.DEFINE_integer("num_candidates", 0, "Derive only the first N (0: all).",
                            lower_bound=0)
_RUN_DIR = common.define_run_dir("runs/cifar10", "Run directory (derive/ is created in it).")
flags.DEFINE_string("arch", None, "Unused by derive (the candidates give the architectures); "
                    "accepted so training flagfiles can be shared.")
for _module in (model_flags, common, train_flags):  # --help lists them, not only --helpfull
    flags.adopt_module_key_flags(_module)


def _is_worker() -> bool:
    return (os.environ.get("KERASTUNER_TUNER_ID", "chief") != "chief"
            and bool(os.environ.get("KERASTUNER_ORACLE_IP")))


def main(argv):
    del argv  # no positional arguments (the runner refuses them)
    common.setup()
    try:
        archs = derive_lib.load_candidates(_CANDIDATES.value, _NUM.value or None)
        base = train_flags.train_config(archs[0].tokens)
    except ValueError as e:  # ArchitectureError, ConfigError and the dataclasses' checks
        raise app.UsageError(str(e)) from e
    strategy = common.make_strategy()  # before anything runs TensorFlow
    tuner = derive_lib.build_derive(archs, base, common.task_run_dir(_RUN_DIR.value, strategy),
                                    overwrite=common.OVERWRITE.value, strategy=strategy)
    derive_lib.run(tuner)
    if _is_worker():
        return  # the chief reports
    summary = derive_lib.summarise(tuner.oracle)
    print(derive_lib.format_table(summary))
    if summary["best"] is None:
        raise errors.TrainError("no candidate finished training; see the messages above")
    path = os.path.join(tuner.project_dir, "best.json")
    best = ss.Architecture.parse(summary["best"]["arch"])
    best.write_json(path, fid=summary["best"]["fid"],
                    inception_score=summary["best"]["inception_score"],
                    run_dir=tuner.candidate_dir(summary["best"]["candidate"]))
    rundir.write_json(os.path.join(tuner.project_dir, "summary.json"), summary)
    print(json.dumps({"best": path, **summary["best"]}))


if __name__ == "__main__":
    runner.run(main, "derive")
