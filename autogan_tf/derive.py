"""Derive the final architecture: train each of the search's top-K from scratch, keep the best.

    python -m autogan_tf.derive --candidates=runs/digits/search/top_architectures.json \\
        --flagfile=configs/train_digits.cfg --run_dir=runs/digits

Each candidate is a keras-tuner trial trained in `<run_dir>/derive/candidate_<i>/` (the layout
of `train`); the result is a table of all candidates by FID and `<run_dir>/derive/best.json`
(the best architecture with its scores, ready for `train --arch` or `export`). To spread the
candidates over processes or machines, start one chief and any number of workers with the same
command and keras-tuner's variables::

    KERASTUNER_TUNER_ID=chief   KERASTUNER_ORACLE_IP=10.0.0.1 KERASTUNER_ORACLE_PORT=8000 python -m autogan_tf.derive ...
    KERASTUNER_TUNER_ID=tuner0  KERASTUNER_ORACLE_IP=10.0.0.1 KERASTUNER_ORACLE_PORT=8000 python -m autogan_tf.derive ...
"""

from __future__ import annotations

import json
import os

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from autogan_tf.cli import common as flag_defs  # noqa: E402
from autogan_tf.cli import train_flags  # noqa: E402
from autogan_tf import errors  # noqa: E402
from autogan_tf import search_space as ss  # noqa: E402
from autogan_tf.cli import runner  # noqa: E402

_CANDIDATES = flags.DEFINE_string("candidates", None, "The search's top_architectures.json, or "
                                  "architectures separated by ';'.", required=True)
_NUM = flags.DEFINE_integer("num_candidates", 0, "Derive only the first N (0: all).",
                            lower_bound=0)
_RUN_DIR = flags.DEFINE_string("run_dir", "runs/digits", "Run directory (derive/ is created).")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Start the derivation afresh.")
flags.DEFINE_string("arch", None, "Unused by derive (the candidates give the architectures); "
                    "accepted so training flagfiles can be shared.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    flag_defs.quiet_info_logs()
    from autogan_tf.search import derive_lib
    try:
        archs = derive_lib.load_candidates(_CANDIDATES.value, _NUM.value or None)
        base = train_flags.train_config(archs[0].tokens)
    except (ss.ArchitectureError, ValueError) as e:
        raise app.UsageError(str(e)) from e
    oracle = derive_lib.DeriveOracle(archs)
    tuner = derive_lib.DeriveTuner(oracle, base, _RUN_DIR.value, overwrite=_OVERWRITE.value,
                                   strategy=flag_defs.make_strategy())
    tuner.search()
    if os.environ.get("KERASTUNER_TUNER_ID", "chief") not in ("chief",) and \
            os.environ.get("KERASTUNER_ORACLE_IP"):
        return  # a worker: the chief reports
    summary = derive_lib.summarise(tuner.oracle)
    print(derive_lib.format_table(summary))
    if summary["best"] is None:
        raise errors.TrainError("no candidate finished training; see the messages above")
    path = os.path.join(tuner.project_dir, "best.json")
    best = ss.Architecture.parse(summary["best"]["arch"])
    best.write_json(path, fid=summary["best"]["fid"],
                    inception_score=summary["best"]["inception_score"],
                    run_dir=tuner.candidate_dir(summary["best"]["candidate"]))
    with open(os.path.join(tuner.project_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps({"best": path, **summary["best"]}))


if __name__ == "__main__":
    runner.run(main, "derive")
