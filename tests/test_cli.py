"""The binaries' flags: flags -> config (defaults only in the dataclasses), one-line errors and
exit codes, and each new option through its binary at tiny sizes."""

import dataclasses
import errno
import json
import os
import re
import subprocess
import sys

import pytest
from absl import app, flags
from absl.testing import flagsaver

from autogan_tf import errors
from autogan_tf import search_space as ss
from autogan_tf.cli import common, model_flags, runner, search_flags, train_flags
from autogan_tf.search.oracle import OracleConfig
from autogan_tf.search.tuner import SharedTrainingConfig
from autogan_tf.training import precision
from autogan_tf.training.gan import GANConfig
from autogan_tf.training.train_lib import TrainConfig

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = flags.FLAGS


@pytest.fixture(autouse=True)
def parsed_flags():
    if not FLAGS.is_parsed():
        FLAGS.mark_as_parsed()


def _run(args, timeout=600, env_extra=None, **kw):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="3", **(env_extra or {}))
    return subprocess.run([sys.executable] + args, cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout, **kw)


_TF_NOISE = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages|To enable the following)")


def _err_lines(p):
    """stderr without the lines TensorFlow's C++ runtime logs when it is imported."""
    return [line for line in p.stderr.strip().splitlines() if not _TF_NOISE.match(line)]


def _last_err(p):
    return _err_lines(p)[-1]


# ----- flags -> config ----------------------------------------------------------------------------
def test_unset_flags_give_the_dataclass_defaults():
    arch = TrainConfig.arch
    with flagsaver.flagsaver(precision="fp32", xla="off"):
        assert train_flags.train_config(arch) == TrainConfig()
        assert search_flags.shared_training_config() == SharedTrainingConfig()
    assert search_flags.oracle_config() == OracleConfig()
    # --precision=auto and --xla=auto (the defaults) differ from them only in what this
    # machine resolves them to.
    for cfg, workload in ((train_flags.train_config(arch), precision.DERIVED),
                          (search_flags.shared_training_config(), precision.SUPERNET)):
        choice = common.compute_choice(workload)
        assert cfg.mixed_precision == choice.mixed_precision
        assert cfg.gan.jit_compile == choice.xla
        default = TrainConfig() if workload == precision.DERIVED else SharedTrainingConfig()
        assert cfg == dataclasses.replace(
            default, mixed_precision=choice.mixed_precision,
            gan=dataclasses.replace(default.gan, jit_compile=choice.xla))


def test_precision_flags_and_their_aliases():
    with flagsaver.flagsaver(mixed_precision=True):
        assert common.requested_precision() == "bf16"
        assert train_flags.train_config(TrainConfig.arch).mixed_precision
    with flagsaver.flagsaver(mixed_precision=False):
        assert common.requested_precision() == "fp32"
    with flagsaver.flagsaver(precision="bf16", mixed_precision=False):
        with pytest.raises(app.UsageError, match="contradicts --precision=bf16"):
            common.requested_precision()
    for value, expected in ((True, True), (False, False), ("on", True), ("off", False)):
        with flagsaver.flagsaver(xla=value, precision="fp32"):
            assert search_flags.shared_training_config().gan.jit_compile is expected
    with flagsaver.flagsaver(precision="bf16", xla="auto"):
        assert not search_flags.shared_training_config().gan.jit_compile  # never the supernet


def test_xla_flag_parses_boolean_and_three_valued_forms():
    fv = flags.FlagValues()
    common.define_xla_flag(fv)
    for argv, expected in ((["--xla"], "on"), (["--noxla"], "off"), (["--xla=auto"], "auto"),
                           (["--xla=off"], "off"), (["--xla=true"], "on"), ([], "auto")):
        fv.unparse_flags()
        fv(["prog"] + argv)
        assert fv.xla == expected
        assert fv["xla"].serialize() == f"--xla={expected}"
    fv.unparse_flags()
    with pytest.raises(flags.IllegalFlagValueError):
        fv(["prog", "--xla=sometimes"])


def test_binary_dependent_sizes_follow_the_config_and_the_dataset():
    with flagsaver.flagsaver(dataset="digits"):
        t = train_flags.train_config(TrainConfig.arch)
        s = search_flags.shared_training_config()
    assert (t.bottom_width, t.gf, t.df, t.classifier) == (2, 256, 128, "digits")
    assert (s.bottom_width, s.gf, s.df, s.classifier) == (2, 128, 64, "digits")
    assert t.gan.ema_decay == 0.999 and s.gan.ema_decay is None
    with flagsaver.flagsaver(dataset="stl10", gf_dim=32, df_dim=16, bottom_width=3):
        t = train_flags.train_config(TrainConfig.arch)
    assert (t.bottom_width, t.gf, t.df, t.classifier) == (3, 32, 16, "inception")
    with flagsaver.flagsaver(dataset="stl10"):
        assert train_flags.train_config(TrainConfig.arch).bottom_width == 6  # 48 px


def test_every_train_flag_reaches_the_config():
    values = dict(dataset="digits", data_dir="/d", bottom_width=2, gf_dim=8, df_dim=4,
                  latent_dim=16, d_batch_size=8, g_batch_size=4, n_critic=3, g_lr=1e-3,
                  d_lr=3e-4, beta1=0.5, beta2=0.99, classifier="/c", cache_dir="/k",
                  xla=True, precision="bf16", seed=7, progress=False, log_every=9, on_nonfinite="stop",
                  max_iter=11, lr_decay=True, ema_decay=0.5, eval_every=5, eval_images=50,
                  real_num_images=30, real_stats="/s.npz", checkpoint_every=2)
    with flagsaver.flagsaver(**values):
        cfg = train_flags.train_config("autogan_cifar10_b")
    assert cfg == TrainConfig(
        arch=ss.REFERENCE_ARCHS["autogan_cifar10_b"], dataset="digits", data_dir="/d",
        bottom_width=2, gf=8, df=4,
        gan=GANConfig(latent_dim=16, d_batch_size=8, g_batch_size=4, n_critic=3, g_lr=1e-3,
                      d_lr=3e-4, beta_1=0.5, beta_2=0.99, ema_decay=0.5, jit_compile=True),
        max_iterations=11, lr_decay=True, eval_every=5, eval_images=50, real_num_images=30,
        classifier="/c", cache_dir="/k", real_stats="/s.npz", checkpoint_every=2,
        mixed_precision=True, seed=7, log_every=9, progress=False, on_nonfinite="stop")


def test_every_search_flag_reaches_the_configs():
    values = dict(iterations_per_stage=["1", "2", "3"], controller_steps=4, num_candidates=6,
                  top_k=2, ctrl_lr=1e-3, entropy_coef=1e-4, baseline_decay=0.5,
                  hidden_size=32, seed=5, shared_epochs=2, max_shared_steps=10,
                  reward_images=100, reward_splits=4, dynamic_reset=False, reset_window=20,
                  reset_threshold=0.5, mixed_precision=True, dataset="digits", gf_dim=16)
    with flagsaver.flagsaver(**values):
        o = search_flags.oracle_config()
        s = search_flags.shared_training_config()
    assert o == OracleConfig(iterations_per_stage=(1, 2, 3), controller_steps=4,
                             num_candidates=6, top_k=2, controller_lr=1e-3, entropy_coef=1e-4,
                             baseline_decay=0.5, hidden_size=32, seed=5)
    assert s == SharedTrainingConfig(
        dataset="digits", bottom_width=2, gf=16, df=64, max_epochs_per_iteration=2,
        max_steps_per_iteration=10, reward_images=100, reward_splits=4, dynamic_reset=False,
        reset_window=20, reset_threshold=0.5, mixed_precision=True, seed=5,
        classifier="digits")


def test_configs_refuse_values_that_do_not_fit_together():
    with flagsaver.flagsaver(top_k=7, num_candidates=6):
        with pytest.raises(ValueError, match="top_k <= num_candidates"):
            search_flags.oracle_config()
    with flagsaver.flagsaver(iterations_per_stage=["1", "x", "3"]):
        with pytest.raises(errors.ConfigError, match="takes integers"):
            search_flags.oracle_config()
    with flagsaver.flagsaver(eval_images=5):
        with pytest.raises(errors.ConfigError, match="eval_images .5. must be >= eval_splits"):
            train_flags.train_config(TrainConfig.arch)


def test_model_flags_resolve_against_the_given_config():
    with flagsaver.flagsaver(gf_dim=None, df_dim=None, bottom_width=None):
        assert model_flags.sizes(TrainConfig) == (4, 256, 128)
        assert model_flags.sizes(SharedTrainingConfig, 6) == (6, 128, 64)
    assert common.default_bottom_width("no/such/dataset") is None


# ----- runner: one line, exit codes ------------------------------------------------------------------
_FAIL = r"""
import errno, sys
from autogan_tf.cli import runner
from autogan_tf import errors
kind = sys.argv.pop(1)
def main(argv):
    if kind == "error":
        raise errors.ConfigError("gf: saved 8, now 16")
    if kind == "disk":
        raise OSError(errno.ENOSPC, "No space left on device", "/r/metrics.jsonl")
    if kind == "tf_disk":
        import tensorflow as tf
        raise tf.errors.ResourceExhaustedError(None, None, "/r/ckpt/x.tmp; No space left on device")
    if kind == "bug":
        raise KeyError("a bug")
runner.run(main, "prog")
"""


@pytest.mark.parametrize("kind,args,status,line", [
    ("error", [], 1, "prog: error: gf: saved 8, now 16"),
    ("disk", [], 1, "prog: error: /r/metrics.jsonl: No space left on device (the disk is full; "
                    "free some space and run the same command again to resume)"),
    ("tf_disk", [], 1, "prog: error: /r/ckpt/x.tmp; No space left on device (the disk is full; "
                       "free some space and run the same command again to resume)"),
    ("error", ["extra"], 2, "prog: usage error: unexpected arguments: extra (see --help)"),
    ("error", ["--nosuch=1"], 2, "prog: usage error: Unknown command line flag 'nosuch' "
                                 "(see --help)"),
])
def test_runner_ends_in_one_line_and_a_status(kind, args, status, line):
    p = _run(["-c", _FAIL, kind] + args)
    assert p.returncode == status, p.stderr
    assert _err_lines(p) == [line]


def test_runner_keeps_the_traceback_of_a_bug():
    p = _run(["-c", _FAIL, "bug"])
    assert p.returncode == 1 and "Traceback" in p.stderr and "KeyError: 'a bug'" in p.stderr


def test_os_and_tf_errors_are_described_with_their_fix():
    e = OSError(errno.EROFS, "Read-only file system", "/ro/run")
    assert runner.describe_os_error(e) == ("/ro/run: Read-only file system (the file system is "
                                           "read-only; choose a writable directory)")
    e = OSError(errno.EEXIST, "File exists", "runs/x")
    assert "a file stands where a directory is needed" in runner.describe_os_error(e)
    assert runner.describe_tf_io_error(KeyError("No space left on device")) is None


# ----- arch ------------------------------------------------------------------------------------------
def test_arch_binary_sizes_and_usage_errors(tmp_path):
    p = _run(["-m", "autogan_tf.arch", "--arch=autogan_cifar10_a"])
    assert p.returncode == 0, p.stderr
    stats = json.loads(p.stdout.strip().splitlines()[-1])
    assert (stats["generator_params"], stats["discriminator_params"]) == (4_405_251, 1_053_824)
    p = _run(["-m", "autogan_tf.arch", "--arch=autogan_cifar10_a", "--bottom_width=6",
              "--gf_dim=256", "--df_dim=64", "--latent_dim=128"])
    stats = json.loads(p.stdout.strip().splitlines()[-1])
    assert stats["resolution"] == 48 and stats["generator_params"] == 5_065_731
    assert stats["discriminator_params"] == 264_768
    p = _run(["-m", "autogan_tf.arch", "--gf=64"])  # the old name is gone
    assert p.returncode == 2 and _last_err(p) == ("arch: usage error: Unknown command line flag "
                                                  "'gf' (see --help)")
    p = _run(["-m", "autogan_tf.arch", "--gf_dim=0"])
    assert p.returncode == 2 and len(_err_lines(p)) == 1
    assert _last_err(p).startswith("arch: usage error: flag --gf_dim=0:")
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"arch": [1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 0, 1, 0, 3.7]}))
    p = _run(["-m", "autogan_tf.arch", f"--arch={path}"])
    assert p.returncode == 2
    assert _last_err(p) == (f"arch: usage error: {path}: 'arch' token 13 is 3.7; tokens are "
                            "integers (see --help)")


def test_architecture_json_takes_integers_only(tmp_path):
    for bad in (3.7, 3.0, True):
        with pytest.raises(ss.ArchitectureError, match=f"token 13 is {bad!r}; tokens are int"):
            ss.Architecture.from_json(json.dumps({"arch": [1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 0, 1, 0,
                                                           bad]}))
    with pytest.raises(ss.ArchitectureError, match="token 0 is 1.0"):
        ss.Architecture.parse([1.0] + [0] * 13)
    assert ss.Architecture.parse(list(ss.REFERENCE_ARCHS["autogan_cifar10_a"])).tokens == \
        ss.REFERENCE_ARCHS["autogan_cifar10_a"]


# ----- train and search binaries ---------------------------------------------------------------------
def _train_cmd(run_dir, cache, *extra):
    return ["-m", "autogan_tf.train", "--dataset=digits", "--bottom_width=2", "--gf_dim=8",
            "--df_dim=8", "--latent_dim=16", "--d_batch_size=8", "--g_batch_size=8",
            "--n_critic=1", "--max_iter=2", "--eval_every=2", "--eval_images=100",
            "--real_num_images=200", "--checkpoint_every=1", "--ema_decay=0.9",
            f"--cache_dir={cache}", f"--run_dir={run_dir}", "--noprogress", *extra]


def test_train_binary_refuses_a_file_as_run_dir_and_a_bad_classifier(tmp_path, digits_cache):
    afile = tmp_path / "afile"
    afile.write_text("x")
    p = _run(_train_cmd(afile, digits_cache))
    assert p.returncode == 1
    assert _last_err(p).startswith(f"train: error: {afile}: File exists (a file stands where a "
                                   "directory is needed")
    p = _run(_train_cmd(tmp_path / "run", digits_cache, f"--classifier={tmp_path / 'nope'}"))
    assert p.returncode == 1 and _last_err(p).startswith("train: error: ")
    assert "nope" in _last_err(p) and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_train_binary_resume_overwrite_and_on_nonfinite(tmp_path, digits_cache):
    run = tmp_path / "run"
    p = _run(_train_cmd(run, digits_cache))
    assert p.returncode == 0, p.stderr[-3000:]
    report = json.loads(p.stdout.strip().splitlines()[-1])
    assert report["iterations"] == 2
    config, flags_txt = (run / "config.json").read_bytes(), (run / "flags.txt").read_bytes()
    # the damaged-config case: a refused resume leaves config.json and flags.txt as
    # they were, so the run can still be exported and evaluated
    p = _run(_train_cmd(run, digits_cache, "--gf_dim=16"))
    assert p.returncode == 1
    assert "gf: saved 8, now 16" in _last_err(p) and len(_err_lines(p)) == 1
    p = _run(_train_cmd(run, digits_cache, "--arch=autogan_cifar10_b"))
    assert p.returncode == 1 and "arch: saved [1, 0, 1, 1, 1, 0, 0" in _last_err(p)
    assert (run / "config.json").read_bytes() == config
    assert (run / "flags.txt").read_bytes() == flags_txt
    # --overwrite moves it aside and starts afresh
    p = _run(_train_cmd(run, digits_cache, "--gf_dim=16", "--overwrite", "--max_iter=1"))
    assert p.returncode == 0, p.stderr[-3000:]
    assert json.loads((run / "config.json").read_text())["gf"] == 16
    moved = [d for d in os.listdir(tmp_path) if d.startswith("run.replaced-")]
    assert len(moved) == 1 and (tmp_path / moved[0] / "config.json").read_bytes() == config
    # --on_nonfinite=stop ends a diverging run at once, in one line, with nothing non-finite
    p = _run(_train_cmd(tmp_path / "nan", digits_cache, "--g_lr=1e38", "--d_lr=1e38",
                        "--on_nonfinite=stop"))
    assert p.returncode == 1
    assert _last_err(p).startswith("train: error: training run ")
    assert "at generator iteration 1" in _last_err(p)
    assert not (tmp_path / "nan" / "best").exists()


def _search_args(run_dir, cache, *extra):
    return ["-m", "autogan_tf.search", "--dataset=digits", "--bottom_width=2", "--gf_dim=8",
            "--df_dim=8", "--latent_dim=16", "--d_batch_size=8", "--g_batch_size=8",
            "--n_critic=2", "--iterations_per_stage=1,1,1", "--controller_steps=2",
            "--num_candidates=2", "--top_k=1", "--max_shared_steps=6", "--reward_images=40",
            "--reward_splits=2", "--classifier=digits", f"--cache_dir={cache}",
            f"--run_dir={run_dir}", "--noprogress", *extra]


def test_search_binary_checks_before_it_overwrites_or_resumes(tmp_path, digits_cache):
    from test_robustness import _saved_search, _snapshot
    project = _saved_search(str(tmp_path), digits_cache)
    before = _snapshot(project)
    p = _run(_search_args(tmp_path, digits_cache, "--overwrite",
                          f"--classifier={tmp_path / 'nonexistent'}"))
    assert p.returncode == 1 and _last_err(p).startswith("search: error: ")
    assert "nonexistent" in _last_err(p)
    p = _run(_search_args(tmp_path, digits_cache, "--top_k=2"))
    assert p.returncode == 1 and len(_err_lines(p)) == 1
    assert "top_k: saved 1, now 2" in _last_err(p)
    assert _snapshot(project) == before


def test_search_usage_errors_are_one_line():
    p = _run(["-m", "autogan_tf.search", "--top_k=7", "--num_candidates=6"])
    assert p.returncode == 2
    assert _err_lines(p) == [
        "search: usage error: need 1 <= top_k <= num_candidates, got top_k=7, "
        "num_candidates=6 (see --help)"]


def _check_config_flags(kind, args):
    """`args` are known flags with values in range that give a valid config of `kind`."""
    binary_only = ("--arch=", "--run_dir=", "--num_archs=", "--output_dir=")  # the binaries'
    args = [a for a in args if not a.startswith(binary_only)]
    with flagsaver.flagsaver():
        FLAGS(["prog"] + args)  # every flag known, every value in range
        if kind == "search":
            assert search_flags.oracle_config().seed == 0
            assert search_flags.shared_training_config().dataset == FLAGS.dataset
        else:
            assert train_flags.train_config(TrainConfig.arch).dataset == FLAGS.dataset


@pytest.mark.parametrize("name", sorted(os.listdir(os.path.join(REPO_ROOT, "configs"))))
def test_config_flagfiles_give_valid_configs(name):
    path = os.path.join(REPO_ROOT, "configs", name)
    args = FLAGS.read_flags_from_files([f"--flagfile={path}"], force_gnu=False)
    if not name.startswith("compare"):
        _check_config_flags("search" if name.startswith("search") else "train", args)
        return
    # A comparison: its own flags, then the searches' and the trainings' flags it expands.
    from autogan_tf import compare  # noqa: F401  (defines the comparison binary's flags)
    from autogan_tf.experiments import compare_lib
    with flagsaver.flagsaver():
        FLAGS(["prog"] + args)
        search = compare_lib.expand_flags(FLAGS.search_flagfile, FLAGS.search_arg)
        train = compare_lib.expand_flags(FLAGS.train_flagfile, FLAGS.train_arg)
        compare_lib.CompareConfig(search_args=search, train_args=train,
                                  seeds=tuple(int(s) for s in FLAGS.seeds),
                                  methods=tuple(FLAGS.methods))
    _check_config_flags("search", search)
    _check_config_flags("train", train)


def test_flag_help_shows_the_config_defaults():
    assert FLAGS["gf_dim"].help.endswith(f"default {SharedTrainingConfig.gf} in search, "
                                         f"{TrainConfig.gf} in training.")
    assert FLAGS["max_iter"].default == TrainConfig.max_iterations == 50_000
    assert FLAGS["top_k"].default == OracleConfig.top_k
    assert FLAGS["reward_images"].default == SharedTrainingConfig.reward_images


# ----- --malloc ----------------------------------------------------------------------------------
def test_malloc_choice_preloads_jemalloc_once_and_says_why(tmp_path):
    lib = tmp_path / "libjemalloc.so.2"
    lib.write_bytes(b"")
    found = lambda env: str(lib)  # noqa: E731
    changes, line = common.malloc_restart_env("auto", {}, found)
    assert changes == {"LD_PRELOAD": str(lib), "MALLOC_CONF": common.JEMALLOC_CONF}
    assert "restarting with jemalloc preloaded" in line and str(lib) in line
    # the user's own preloads and jemalloc settings stay
    changes, _ = common.malloc_restart_env(
        "jemalloc", {"LD_PRELOAD": "/x/libfoo.so", "MALLOC_CONF": "narenas:1"}, found)
    assert changes == {"LD_PRELOAD": f"{lib}:/x/libfoo.so"}
    # after the restart (or preloaded by the user): nothing to do, whatever the flag
    for choice in ("auto", "jemalloc", "system"):
        changes, line = common.malloc_restart_env(choice, {"LD_PRELOAD": str(lib)}, found)
        assert changes == {} and line.startswith("malloc: jemalloc (preloaded")
    assert common.malloc_restart_env("system", {}, found)[0] == {}
    # none installed: auto keeps the system's malloc and says how to get jemalloc ...
    changes, line = common.malloc_restart_env("auto", {}, lambda env: None)
    assert changes == {} and "libjemalloc2" in line
    # ... and --malloc=jemalloc is refused, naming what was looked at and the fixes
    with pytest.raises(app.UsageError, match="not in the loader's cache.*apt-get install "
                                             "libjemalloc2.*--malloc=system"):
        common.malloc_restart_env("jemalloc", {}, lambda env: None)
    missing = str(tmp_path / "nope.so")
    with pytest.raises(app.UsageError, match=f"AUTOGAN_TF_JEMALLOC={missing} does not exist"):
        common.malloc_restart_env("jemalloc", {"AUTOGAN_TF_JEMALLOC": missing})
    assert common.find_jemalloc({"AUTOGAN_TF_JEMALLOC": missing}) == missing


_MALLOC_PROBE = """
import os
from absl import app
from autogan_tf.cli import common
def main(argv):
    common.setup()
    print("LD_PRELOAD=" + os.environ.get("LD_PRELOAD", ""), flush=True)
app.run(main)
"""


def test_binaries_restart_with_jemalloc_preloaded(tmp_path):
    lib = common.find_jemalloc({})  # the installed one, else a stand-in the loader skips
    if lib is None:
        lib = str(tmp_path / "libjemalloc.so.2")
        open(lib, "wb").close()
    env = {"AUTOGAN_TF_JEMALLOC": lib, "LD_PRELOAD": "", "MALLOC_CONF": ""}
    p = _run(["-c", _MALLOC_PROBE, "--malloc=auto", "--logtostderr"], env_extra=env)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.splitlines() == [f"LD_PRELOAD={lib}"]  # one process printed, after restart
    assert "malloc: restarting with jemalloc preloaded" in p.stderr
    assert "malloc: jemalloc (preloaded" in p.stderr
    p = _run(["-c", _MALLOC_PROBE, "--malloc=system"], env_extra=env)
    assert p.returncode == 0 and p.stdout.splitlines() == ["LD_PRELOAD="], p.stderr[-2000:]
    # a real binary refuses a missing library before it does any work
    run_dir = tmp_path / "run"
    p = _run(["-m", "autogan_tf.train", "--malloc=jemalloc", f"--run_dir={run_dir}"],
             env_extra={"AUTOGAN_TF_JEMALLOC": str(tmp_path / "missing.so")})
    assert p.returncode != 0
    assert "AUTOGAN_TF_JEMALLOC" in p.stderr and "--malloc=system" in p.stderr
    assert not run_dir.exists()
