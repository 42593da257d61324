"""Runs are never lost or corrupted: locks, checked resumes, overwrite after checks, checkpoint
fallback, NaN guards, portable search state, bit-identical `--deterministic` runs."""

import dataclasses
import glob
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from autogan_tf import errors, rundir
from autogan_tf.search import search_lib
from autogan_tf.search.oracle import OracleConfig
from autogan_tf.search.tuner import SharedTrainingConfig
from autogan_tf.training import finite, train_lib
from autogan_tf.training.gan import GANConfig

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE_RUN = os.path.join(REPO_ROOT, "tests", "fixtures", "v0_1", "train_run")


def _env(**extra):
    return dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="3", **extra)


def _cfg(cache, **over):
    gan = dict(latent_dim=16, d_batch_size=8, g_batch_size=8, n_critic=1, ema_decay=0.9)
    gan.update(over.pop("gan", {}))
    kw = dict(dataset="digits", bottom_width=2, gf=8, df=8, gan=GANConfig(**gan),
              max_iterations=2, eval_every=1000, eval_images=100, real_num_images=200,
              classifier="digits", cache_dir=cache, checkpoint_every=1, progress=False)
    kw.update(over)
    return train_lib.TrainConfig(**kw)


def _search_cfgs(cache, oracle=None, **over):
    oracle_cfg = OracleConfig(**{**dict(iterations_per_stage=(1, 1, 1), controller_steps=2,
                                        num_candidates=2, top_k=1), **(oracle or {})})
    kw = dict(dataset="digits", bottom_width=2, gf=8, df=8,
              gan=GANConfig(latent_dim=16, d_batch_size=8, g_batch_size=8, n_critic=2),
              max_steps_per_iteration=6, reward_images=40, reward_splits=2,
              reward_batch_size=40, classifier="digits", cache_dir=cache, reset_window=4,
              progress=False)
    kw.update(over)
    return oracle_cfg, SharedTrainingConfig(**kw)


def _snapshot(directory):
    """{relative path: bytes} of every file under `directory`."""
    out = {}
    for root, _, files in os.walk(directory):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, directory)] = fh.read()
    return out


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, digits_cache):
    """A tiny training run (2 iterations, checkpoints ckpt-1 and ckpt-2) and its config."""
    cfg = _cfg(digits_cache)
    run_dir = str(tmp_path_factory.mktemp("trained") / "run")
    train_lib.train(cfg, run_dir, flags_text="--gf_dim=8\n")
    return run_dir, cfg


@pytest.fixture
def run_copy(trained_run, tmp_path):
    run_dir, cfg = trained_run
    dst = str(tmp_path / "run")
    shutil.copytree(run_dir, dst)
    return dst, cfg


# ----- locks -------------------------------------------------------------------------------------
_HOLD = r"""
import sys, time
from autogan_tf import rundir
lock = rundir.RunDirLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(120)
"""


def _hold_lock(directory):
    p = subprocess.Popen([sys.executable, "-c", _HOLD, directory], env=_env(), cwd=REPO_ROOT,
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


def test_a_run_dir_takes_one_process_and_a_dead_owner_is_taken_over(tmp_path, caplog):
    d = str(tmp_path / "run")
    holder = _hold_lock(d)
    try:
        owner = rundir.read_lock(d)
        assert owner["pid"] == holder.pid
        with pytest.raises(errors.RunDirError, match=f"in use by process {holder.pid} on "):
            rundir.RunDirLock(d).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with caplog.at_level(logging.WARNING):
        lock = rundir.RunDirLock(d).acquire()  # the owner died: its lock is stale
    assert f"process {holder.pid}" in caplog.text and "stale" in caplog.text
    assert rundir.read_lock(d)["pid"] == os.getpid()
    # a copy of a locked directory does not inherit the lock
    shutil.copytree(d, str(tmp_path / "copy"))
    with rundir.RunDirLock(str(tmp_path / "copy")):
        pass
    lock.release()
    assert rundir.read_lock(d) is None


def test_trainer_refuses_a_run_dir_another_process_holds(tmp_path, digits_cache):
    d = str(tmp_path / "run")
    holder = _hold_lock(d)
    try:
        with pytest.raises(errors.RunDirError, match=f"process {holder.pid}.*another --run_dir"):
            train_lib.Trainer(_cfg(digits_cache), d)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert os.listdir(d) == [rundir.LOCK_FILE]  # nothing of a run was written


@pytest.mark.slow
def test_two_train_processes_on_one_run_dir(tmp_path, digits_cache):
    cmd = [sys.executable, "-m", "autogan_tf.train", "--dataset=digits", "--bottom_width=2",
           "--gf_dim=8", "--df_dim=8", "--latent_dim=16", "--d_batch_size=8",
           "--g_batch_size=8", "--n_critic=1", "--max_iter=120", "--eval_every=120",
           "--eval_images=100", "--real_num_images=200", "--checkpoint_every=10",
           "--ema_decay=0.9", f"--cache_dir={digits_cache}", f"--run_dir={tmp_path / 'run'}",
           "--noprogress",
           # no restart to preload jemalloc (it delays the second process), and a run long
           # enough that the first still holds the lock when the second gets to it
           "--malloc=system"]
    first = subprocess.Popen(cmd, env=_env(), cwd=REPO_ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while rundir.read_lock(str(tmp_path / "run")) is None and time.time() < deadline:
        time.sleep(0.2)
    second = subprocess.run(cmd, env=_env(), cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=600)
    out, err = first.communicate(timeout=900)
    assert first.returncode == 0, err[-3000:]
    assert second.returncode == 1
    last = second.stderr.strip().splitlines()[-1]
    assert last.startswith("train: error: ") and f"in use by process {first.pid}" in last
    assert [json.loads(x)["iteration"] for x in
            (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()] == [120]


# ----- resumes are checked before anything is written ----------------------------------------------
def test_resume_with_other_settings_is_refused_and_changes_nothing(run_copy, digits_cache):
    d, cfg = run_copy
    before = _snapshot(d)
    with pytest.raises(errors.ConfigError, match=r"gf: saved 8, now 16; gan\.g_lr: saved "
                                                 r"0\.0002, now 0\.001\b"):
        train_lib.Trainer(dataclasses.replace(cfg, gf=16, gan=dataclasses.replace(
            cfg.gan, g_lr=1e-3)), d, flags_text="--gf_dim=16\n")
    with pytest.raises(errors.ConfigError, match=r"arch: saved \[1, 0, 1, 1"):
        train_lib.Trainer(dataclasses.replace(cfg, arch="autogan_cifar10_b"), d,
                          flags_text="other\n")
    # lr decay ties the schedule to max_iterations: then it may not change either
    with pytest.raises(errors.ConfigError, match="lr_decay: saved False, now True"):
        train_lib.Trainer(dataclasses.replace(cfg, lr_decay=True), d)
    assert _snapshot(d) == before
    # what does not change results may change; the flags of the start stay in flags.txt
    t = train_lib.Trainer(dataclasses.replace(cfg, max_iterations=3, eval_every=3,
                                              checkpoint_every=3, log_every=7), d,
                          flags_text="--max_iter=3\n")
    assert t.iteration == 2
    t.close()
    with open(os.path.join(d, "flags.txt")) as f:
        assert f.read() == "--gf_dim=8\n"
    resumed = glob.glob(os.path.join(d, "flags.resumed-*.txt"))
    assert len(resumed) == 1 and open(resumed[0]).read() == "--max_iter=3\n"
    assert json.load(open(os.path.join(d, "config.json")))["max_iterations"] == 3


def test_a_v0_1_run_without_new_fields_resumes(tmp_path, digits_cache):
    d = str(tmp_path / "run")
    shutil.copytree(FIXTURE_RUN, d)
    saved = json.load(open(os.path.join(d, "config.json")))
    assert "on_nonfinite" not in saved  # written before the field existed
    cfg = dataclasses.replace(train_lib.TrainConfig.from_dict(saved), cache_dir=digits_cache)
    t = train_lib.Trainer(cfg, d)
    assert t.iteration == 3
    t.close()


def test_overwrite_checks_first_then_moves_the_old_run_aside(run_copy, digits_cache, tmp_path):
    d, cfg = run_copy
    before = _snapshot(d)
    with pytest.raises(errors.ClassifierError, match="nonexistent"):
        train_lib.Trainer(dataclasses.replace(cfg, classifier=str(tmp_path / "nonexistent")), d,
                          overwrite=True)
    assert _snapshot(d) == before
    t = train_lib.Trainer(dataclasses.replace(cfg, gf=16), d, overwrite=True)
    assert t.iteration == 0
    t.close()
    moved = glob.glob(d + ".replaced-*")
    assert len(moved) == 1 and _snapshot(moved[0]) == before
    assert json.load(open(os.path.join(d, "config.json")))["gf"] == 16


def test_a_directory_of_something_else_is_refused(tmp_path, digits_cache):
    d = tmp_path / "notes"
    d.mkdir()
    (d / "thesis.tex").write_text("x")
    for overwrite in (False, True):
        with pytest.raises(errors.RunDirError, match="not empty.*holds no training run"):
            train_lib.Trainer(_cfg(digits_cache), str(d), overwrite=overwrite)
    assert sorted(os.listdir(d)) == ["thesis.tex"]


def test_bad_inputs_are_found_before_a_run_dir_is_made(tmp_path, digits_cache):
    from autogan_tf.eval import metrics
    from autogan_tf.images import write_png
    stats = str(tmp_path / "stats.npz")
    metrics.save_statistics(stats, metrics.Statistics(np.zeros(7), np.eye(7)))
    with pytest.raises(errors.StatsError, match="7-d features"):
        train_lib.Trainer(_cfg(digits_cache, real_stats=stats), str(tmp_path / "a"))
    folder = tmp_path / "images"
    write_png(str(folder / "good.png"), np.zeros([16, 16, 3], np.uint8))
    (folder / "bad.png").write_bytes(b"not a png")
    with pytest.raises(errors.DatasetError, match="bad.png: cannot decode"):
        train_lib.Trainer(_cfg(digits_cache, dataset=str(folder)), str(tmp_path / "b"))
    oracle_cfg, cfg = _search_cfgs(digits_cache, dataset=str(folder))
    with pytest.raises(errors.SearchError, match="bad.png: cannot decode"):
        search_lib.build_search(oracle_cfg, cfg, str(tmp_path / "c"))
    assert sorted(os.listdir(tmp_path)) == ["images", "stats.npz"]


# ----- checkpoint fallback -------------------------------------------------------------------------
def test_a_corrupt_or_missing_latest_checkpoint_falls_back_to_an_older_one(run_copy, caplog):
    d, cfg = run_copy
    ckpt = os.path.join(d, "ckpt")
    assert sorted(f for f in os.listdir(ckpt) if f.endswith(".index")) == ["ckpt-1.index",
                                                                          "ckpt-2.index"]
    data = os.path.join(ckpt, "ckpt-2.data-00000-of-00001")
    with open(data, "r+b") as f:
        f.truncate(64)
    with caplog.at_level(logging.WARNING):
        t = train_lib.Trainer(cfg, d)
    assert t.iteration == 1
    assert "Restored" in caplog.text and "ckpt-1" in caplog.text and "ckpt-2" in caplog.text
    t.close()
    # the files of the newest removed, while ckpt/checkpoint still names it
    for f in glob.glob(os.path.join(ckpt, "ckpt-2.*")):
        os.remove(f)
    t = train_lib.Trainer(cfg, d)
    assert t.iteration == 1
    t.close()
    # none intact: one message naming them, and nothing is changed or advised to be deleted
    with open(os.path.join(ckpt, "ckpt-1.data-00000-of-00001"), "r+b") as f:
        f.truncate(64)
    before = _snapshot(d)
    with pytest.raises(errors.CheckpointError, match=r"cannot restore any checkpoint.*ckpt-1:"
                                                     r".*nothing was changed") as e:
        train_lib.Trainer(cfg, d)
    assert "delete" not in str(e.value)
    assert _snapshot(d) == before


# ----- NaN/Inf guards -------------------------------------------------------------------------------
def _all_checkpoints_finite(directory):
    prefixes = [p[:-len(".index")] for p in glob.glob(os.path.join(directory, "**", "*.index"),
                                                      recursive=True)]
    assert prefixes
    for prefix in prefixes:
        reader = tf.train.load_checkpoint(prefix)
        for name, dtype in reader.get_variable_to_dtype_map().items():
            if dtype.is_floating and not name.startswith("best_fid"):  # inf before a score
                assert np.isfinite(reader.get_tensor(name)).all(), (prefix, name)


def test_a_diverging_run_never_saves_or_exports_a_nonfinite_model(tmp_path, digits_cache):
    d = str(tmp_path / "run")
    cfg = _cfg(digits_cache, max_iterations=6, eval_every=1, gan=dict(g_lr=1e38, d_lr=1e38))
    with pytest.raises(errors.NonFiniteError, match=f"again after {finite.MAX_RESTORES} "
                                                    "restores of .*ckpt-0"):
        train_lib.train(cfg, d)
    assert not os.path.exists(os.path.join(d, "best"))
    _all_checkpoints_finite(d)
    gen, info = train_lib.load_generator_from_checkpoint(d)  # what export takes
    assert info["checkpoint"].endswith("ckpt-0")
    assert all(np.isfinite(w.numpy()).all() for w in gen.weights)
    # stop at once
    with pytest.raises(errors.NonFiniteError, match="nan at generator iteration 1.*"
                                                    "--on_nonfinite=restore"):
        train_lib.train(dataclasses.replace(cfg, on_nonfinite="stop"), str(tmp_path / "stop"))
    assert not os.path.exists(os.path.join(tmp_path, "stop", "metrics.jsonl"))


def test_a_nonfinite_generator_is_refused_by_the_loader(run_copy):
    d, cfg = run_copy
    gen = train_lib.build_generator(cfg, "ema_generator")
    gen(tf.zeros([1, cfg.gan.latent_dim]))
    gen.weights[0].assign(gen.weights[0] * np.nan)
    tf.train.Checkpoint(ema_generator=gen).write(os.path.join(d, "best", "ema_generator"))
    with pytest.raises(errors.NonFiniteError, match="non-finite weights"):
        train_lib.load_generator_from_checkpoint(d)


@pytest.mark.parametrize("policy", ["stop", "restore"])
def test_search_training_restores_or_stops_on_nan(tmp_path, digits_cache, policy):
    oracle_cfg, cfg = _search_cfgs(digits_cache, on_nonfinite=policy, max_steps_per_iteration=12,
                                   dynamic_reset=False,
                                   gan=GANConfig(latent_dim=16, d_batch_size=8, g_batch_size=8,
                                                 n_critic=1, g_lr=1e38, d_lr=1e38))
    _, tuner = search_lib.build_search(oracle_cfg, cfg, str(tmp_path))
    try:
        start = [v.numpy() for v in tuner._gan_variables()]
        match = "--on_nonfinite=restore" if policy == "stop" else "again after 3 restores"
        with pytest.raises(errors.NonFiniteError, match=match):
            tuner.train_shared(0)
        assert tuner.guard.restores_in_a_row == (0 if policy == "stop" else 3)
        for a, v in zip(start, tuner._gan_variables()):  # back at the start of the iteration
            np.testing.assert_array_equal(a, v.numpy())
        assert not os.path.exists(os.path.join(tuner.project_dir, "shared_gan"))
    finally:
        tuner.close()


# ----- search state: checked, portable ---------------------------------------------------------------
def _saved_search(run_dir, cache, **over):
    """A search directory with oracle and tuner state and a shared-GAN checkpoint."""
    oracle_cfg, cfg = _search_cfgs(cache, **over)
    _, tuner = search_lib.build_search(oracle_cfg, cfg, run_dir)
    tuner._state["trained_iteration"] = 0
    tuner._state["checkpoint"] = tuner._save_gan()
    tuner.save()
    rundir.record_flags(tuner.project_dir, "--first\n", resumed=True)
    tuner.close()
    return os.path.join(run_dir, "search")


def test_search_resumed_with_other_settings_is_refused(tmp_path, digits_cache):
    project = _saved_search(str(tmp_path), digits_cache)
    before = _snapshot(project)
    cases = [({"reward_images": 80, "max_steps_per_iteration": 9},
              r"max_steps_per_iteration: saved 6, now 9; reward_images: saved 40, now 80"),
             ({"oracle": {"top_k": 2}}, r"top_k: saved 1, now 2"),
             ({"gf": 16}, r"gf: saved 8, now 16"),
             ({"gan": GANConfig(latent_dim=16, d_batch_size=8, g_batch_size=8, n_critic=3)},
              r"gan\.n_critic: saved 2, now 3")]
    for over, match in cases:
        oracle_cfg, cfg = _search_cfgs(digits_cache, **over)
        with pytest.raises(errors.ConfigError, match=match):
            search_lib.build_search(oracle_cfg, cfg, str(tmp_path))
    assert _snapshot(project) == before
    oracle_cfg, cfg = _search_cfgs(digits_cache, log_every=7, progress=True)
    _, tuner = search_lib.build_search(oracle_cfg, cfg, str(tmp_path))
    assert tuner.get_state()["trained_iteration"] == 0
    tuner.close()


def test_search_overwrite_with_a_bad_classifier_keeps_the_search(tmp_path, digits_cache):
    project = _saved_search(str(tmp_path), digits_cache)
    before = _snapshot(project)
    oracle_cfg, cfg = _search_cfgs(digits_cache, classifier=str(tmp_path / "nonexistent"))
    with pytest.raises(errors.SearchError, match="nonexistent"):
        search_lib.build_search(oracle_cfg, cfg, str(tmp_path), overwrite=True)
    assert _snapshot(project) == before
    oracle_cfg, cfg = _search_cfgs(digits_cache, gf=16)
    _, tuner = search_lib.build_search(oracle_cfg, cfg, str(tmp_path), overwrite=True)
    assert tuner.get_state()["trained_iteration"] == -1
    tuner.close()
    moved = glob.glob(project + ".replaced-*")
    assert len(moved) == 1 and _snapshot(moved[0]) == before


def test_a_moved_search_resumes_and_old_absolute_paths_still_load(tmp_path, digits_cache):
    first = str(tmp_path / "a")
    project = _saved_search(first, digits_cache)
    state = json.load(open(os.path.join(project, "tuner0.json")))
    assert state["checkpoint"] == "shared_gan/ckpt-0-0"
    second = str(tmp_path / "b")
    shutil.move(first, second)
    oracle_cfg, cfg = _search_cfgs(digits_cache)
    _, tuner = search_lib.build_search(oracle_cfg, cfg, second)
    tuner.close()
    # a state of an older version names an absolute path, here one that moved away
    path = os.path.join(second, "search", "tuner0.json")
    state["checkpoint"] = os.path.join(first, "search", "shared_gan", "ckpt-0-0")
    with open(path, "w") as f:
        json.dump(state, f)
    _, tuner = search_lib.build_search(oracle_cfg, cfg, second)
    tuner.close()
    for f in glob.glob(os.path.join(second, "search", "shared_gan", "*")):
        os.remove(f)
    with pytest.raises(errors.SearchError, match="ckpt-0-0, which is missing") as e:
        search_lib.build_search(oracle_cfg, cfg, second)
    assert "overwrite" not in str(e.value)


def test_a_trial_that_ended_just_before_a_kill_keeps_its_reward(tmp_path, digits_cache):
    from keras_tuner.engine.trial import TrialStatus
    project = _saved_search(str(tmp_path), digits_cache)
    oracle_cfg, cfg = _search_cfgs(digits_cache)
    oracle, tuner = search_lib.build_search(oracle_cfg, cfg, str(tmp_path))
    trial = oracle.create_trial("tuner0")
    oracle.update_trial(trial.trial_id, {"inception_score": 2.5})
    trial.status = TrialStatus.COMPLETED
    oracle.end_trial(trial)  # saved by the oracle; the kill comes before the tuner saves
    tuner.close()
    assert json.load(open(os.path.join(project, "tuner0.json")))["rewards"] == []
    _, tuner = search_lib.build_search(oracle_cfg, cfg, str(tmp_path))
    assert tuner.get_state()["rewards"] == [[0, "controller", 2.5]]
    tuner.close()


# ----- environment ------------------------------------------------------------------------------------
def test_tfds_can_locate_dataset_code_for_downloads():
    import tensorflow_datasets as tfds
    # Preparing a download reads the builder's code path, which needs importlib_resources.
    assert os.path.isfile(str(tfds.builder_cls("cifar10").code_path))


# ----- --deterministic ---------------------------------------------------------------------------------
def _search_cmd(run_dir, cache):
    return [sys.executable, "-m", "autogan_tf.search", "--dataset=digits", "--bottom_width=2",
            "--gf_dim=16", "--df_dim=16", "--latent_dim=16", "--d_batch_size=16",
            "--g_batch_size=16", "--n_critic=2", "--iterations_per_stage=2,1,1",
            "--controller_steps=2", "--num_candidates=2", "--top_k=1", "--max_shared_steps=8",
            "--reward_images=40", "--reward_splits=2", "--classifier=digits",
            f"--cache_dir={cache}", f"--run_dir={run_dir}", "--noprogress", "--seed=3",
            "--deterministic"]


def _completed_trials(run_dir):
    try:
        with open(os.path.join(run_dir, "search", "oracle.json")) as f:
            return len(json.load(f).get("end_order", []))
    except (OSError, ValueError):
        return 0


def _search_result(run_dir):
    top = json.load(open(os.path.join(run_dir, "search", "top_architectures.json")))
    state = json.load(open(os.path.join(run_dir, "search", "tuner0.json")))
    reader = tf.train.load_checkpoint(os.path.join(run_dir, "search", state["checkpoint"]))
    weights = {k: reader.get_tensor(k) for k in reader.get_variable_to_dtype_map()}
    return top, state["rewards"], weights


@pytest.mark.slow
def test_deterministic_searches_are_bit_identical_and_a_killed_one_resumes_exactly(
        tmp_path, digits_cache):
    runs = {}
    for name in ("a", "b"):
        p = subprocess.run(_search_cmd(str(tmp_path / name), digits_cache), env=_env(),
                           cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
        assert p.returncode == 0, p.stderr[-3000:]
        runs[name] = _search_result(str(tmp_path / name))
    killed = str(tmp_path / "killed")
    p = subprocess.Popen(_search_cmd(killed, digits_cache), env=_env(), cwd=REPO_ROOT,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 900
    while _completed_trials(killed) < 5 and p.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert p.poll() is None, "the search ended before it could be killed"
    p.send_signal(signal.SIGKILL)
    p.wait()
    p = subprocess.run(_search_cmd(killed, digits_cache), env=_env(), cwd=REPO_ROOT,
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    runs["killed"] = _search_result(killed)
    for name in ("b", "killed"):
        top, rewards, weights = runs[name]
        assert top == runs["a"][0]  # architectures, rewards, LSTM states: exactly
        assert rewards == runs["a"][1]
        assert weights.keys() == runs["a"][2].keys()
        for k, v in weights.items():
            np.testing.assert_array_equal(v, runs["a"][2][k], err_msg=f"{name}: {k}")
