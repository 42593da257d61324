"""AutoGANTuner: dynamic reset, re-initialisation, a tiny search end to end, resume after kill."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from autogan_tf.search import search_lib
from autogan_tf.training.gan import GANConfig
from autogan_tf.search.oracle import OracleConfig
from autogan_tf.search.tuner import DynamicReset, SharedTrainingConfig

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----- dynamic reset ---------------------------------------------------------------------------
def test_dynamic_reset_fires_on_flat_window_only():
    rng = np.random.default_rng(0)
    flat = DynamicReset(window=50, threshold=1e-3)
    fired = [flat.update(d_loss=1.0 + 0.01 * rng.standard_normal(),
                         g_loss=0.5 + 0.01 * rng.standard_normal()) for _ in range(50)]
    assert not any(fired[:49]) and fired[49]  # only once the window is full

    noisy = DynamicReset(window=50, threshold=1e-3)
    assert not any(noisy.update(d_loss=1.0 + 0.5 * rng.standard_normal(),
                                g_loss=0.2 * rng.standard_normal()) for _ in range(200))

    g_flat = DynamicReset(window=20, threshold=1e-3)
    for i in range(19):
        assert not g_flat.update(d_loss=float(i), g_loss=0.5)  # D noisy, G window not full
    assert g_flat.update(d_loss=100.0, g_loss=0.5)  # a flat G window alone fires

    state = g_flat.get_state()
    other = DynamicReset(window=20, threshold=1e-3)
    other.set_state(json.loads(json.dumps(state)))
    assert other.fired() and list(other.g_losses) == list(g_flat.g_losses)
    other.clear()
    assert not other.fired() and len(other.d_losses) == 0


def test_dynamic_reset_waits_for_a_full_g_window_as_the_reference():
    """With n_critic D steps per G step the D window fills first; a flat D window must not
    fire before the G window is full (reference: the check runs once the G history is full)."""
    rng = np.random.default_rng(1)
    det = DynamicReset(window=20, threshold=1e-3)
    fired_at = None
    for step in range(200):  # n_critic = 5: a G loss every fifth D step; D flat, G noisy
        g = float(rng.standard_normal()) if step % 5 == 4 else None
        if det.update(d_loss=1.0, g_loss=g) and fired_at is None:
            fired_at = step
    assert len(det.d_losses) == 20
    assert fired_at == 20 * 5 - 1  # the 20th G loss, not the 20th D loss


# ----- a tiny search -----------------------------------------------------------------------------
def _tiny(run_dir, cache, seed=0, **over):
    oracle_cfg = OracleConfig(iterations_per_stage=(1, 1, 1), controller_steps=2,
                              num_candidates=2, top_k=1, seed=seed)
    kw = dict(dataset="digits", bottom_width=2, gf=8, df=8,
              gan=GANConfig(latent_dim=16, d_batch_size=8, g_batch_size=8, n_critic=2),
              max_steps_per_iteration=6, reward_images=40, reward_splits=2,
              reward_batch_size=40, classifier="digits", cache_dir=cache, reset_window=4,
              seed=seed, progress=False, log_every=2)
    kw.update(over)
    return oracle_cfg, SharedTrainingConfig(**kw)


def test_reinitialise_resets_gan_and_optimisers_but_not_controller(tmp_path, digits_cache):
    oracle_cfg, cfg = _tiny(str(tmp_path), digits_cache)
    oracle, tuner = search_lib.build_search(oracle_cfg, cfg, str(tmp_path))
    tuner.train_shared(0)
    t = tuner.trainer
    assert int(t.d_opt.iterations) == 6 and int(t.g_opt.iterations) == 3
    traces = t.d_step_fn.experimental_get_tracing_count()
    g_before = [w.numpy() for w in t.generator.trainable_weights]
    ctrl_before = [w.numpy() for w in oracle.controller.weights]
    tuner._reinitialise()
    assert int(t.d_opt.iterations) == 0 and int(t.g_opt.iterations) == 0
    assert float(t.g_opt.learning_rate) == pytest.approx(2e-4)
    assert all(np.all(v.numpy() == 0) for v in t.d_opt.variables
               if "learning_rate" not in v.path)
    assert not np.allclose(g_before[0], t.generator.trainable_weights[0].numpy())
    for a, b in zip(ctrl_before, oracle.controller.weights):
        np.testing.assert_array_equal(a, b.numpy())
    assert tuner.get_state()["resets"] == 1 and not tuner.get_state()["reset_pending"]
    tuner.train_shared(1)
    assert t.d_step_fn.experimental_get_tracing_count() == traces  # no retrace


def test_fid_reward_ranks_a_better_generator_higher(tmp_path, digits_cache):
    from autogan_tf import data as data_lib
    from autogan_tf.search.tuner import fid_reward

    oracle_cfg, cfg = _tiny(str(tmp_path), digits_cache, reward="fid", reward_images=200,
                            reward_batch_size=100)
    oracle, tuner = search_lib.build_search(oracle_cfg, cfg, str(tmp_path))
    assert oracle.objective.name == "fid_reward"
    real = data_lib.load_images("digits", cfg.resolution(0)).astype(np.float32) / 127.5 - 1.0
    rng = np.random.default_rng(0)

    def sampler(images):
        return lambda arch, seed: (lambda n: images[rng.integers(0, len(images), n)])

    scores = {}
    for name, images in (("real", real),
                         ("noisy", np.clip(real + 0.6 * rng.standard_normal(real.shape), -1, 1)
                          .astype(np.float32)),
                         ("noise", rng.uniform(-1, 1, real.shape).astype(np.float32))):
        tuner.child_sampler = sampler(images)
        scores[name] = tuner.score(np.zeros(14, np.int32), seed=0)
    assert scores["real"]["reward"] > scores["noisy"]["reward"] > scores["noise"]["reward"]
    for s in scores.values():
        assert s["reward"] == pytest.approx(fid_reward(s["fid"]))
    assert fid_reward(10.0) - fid_reward(20.0) == pytest.approx(np.log(2.0))
    with pytest.raises(ValueError, match="reward must be one of"):
        SharedTrainingConfig(reward="kid")


def test_policy_evaluation_scores_both_sets_with_the_same_latents(tmp_path, digits_cache):
    oracle_cfg, cfg = _tiny(str(tmp_path), digits_cache)
    oracle_cfg = OracleConfig(**dict(oracle_cfg.to_dict(), sampler="uniform",
                                     policy_eval_archs=10))
    oracle, tuner = search_lib.build_search(oracle_cfg, cfg, str(tmp_path))
    tuner.train_shared(0)
    out = tuner.evaluate_policy(0)
    pairs = {}
    for archs, rewards in ((out["archs_policy"], out["rewards_policy"]),
                           (out["archs_uniform"], out["rewards_uniform"])):
        for a, r in zip(archs, rewards):
            pairs.setdefault(tuple(a), set()).add(r)
    assert any(len(r) == 1 for r in pairs.values())  # some stage-0 cell drawn more than once
    assert all(len(r) == 1 for r in pairs.values())  # ... and scored identically each time
    assert len(pairs) > 3  # yet different cells score differently
    assert out["expected_reward_policy"] == pytest.approx(np.mean(out["rewards_policy"]),
                                                          abs=1e-4)


@pytest.mark.slow  # traces the full-size supernet step
def test_without_weight_sharing_each_trial_trains_its_own_architecture(tmp_path, digits_cache):
    oracle_cfg, cfg = _tiny(str(tmp_path), digits_cache)
    oracle_cfg = OracleConfig(**dict(oracle_cfg.to_dict(), sampler="uniform",
                                     weight_sharing=False))
    oracle, tuner = search_lib.build_search(oracle_cfg, cfg, str(tmp_path))
    seen = []
    step = tuner.trainer.d_step
    tuner.trainer.d_step = lambda real, arch: (seen.append(tuple(np.asarray(arch))),
                                               step(real, arch))[1]
    trial = oracle.create_trial("tuner0")
    arch = [int(t) for t in trial.hyperparameters.values["arch"].split()]
    assert trial.hyperparameters.values["stage"] == 2 and len(arch) == 14
    tuner._grow(2)
    tuner._load_fresh_weights(7)
    fresh = [w.numpy() for w in tuner.trainer.generator.weights]
    out = tuner.run_trial(trial)
    assert set(seen) == {tuple(arch)} and len(seen) == 6  # one architecture, the full budget
    assert out["inception_score"] > 0
    tuner._load_fresh_weights(7)  # the same seed gives the same fresh weights
    for a, b in zip(fresh, tuner.trainer.generator.weights):
        np.testing.assert_array_equal(a, b.numpy())


@pytest.mark.slow
def test_tiny_search_end_to_end(tmp_path, digits_cache):
    oracle_cfg, cfg = _tiny(str(tmp_path), digits_cache)
    result = search_lib.run_search(oracle_cfg, cfg, str(tmp_path))
    top = json.loads((tmp_path / "search" / "top_architectures.json").read_text())
    assert len(top["architectures"]) == 1 and len(top["architectures"][0]["arch"]) == 14
    assert [len(b[0]["arch"]) for b in top["beams"]] == [4, 9, 14]
    assert result["architectures"][0]["arch"] == top["architectures"][0]["arch"]
    # The reported reward is the one its beam trial scored, read back from keras-tuner's trials.
    trials = [json.load(open(tmp_path / "search" / d / "trial.json"))
              for d in os.listdir(tmp_path / "search") if d.startswith("trial_")]
    beam_scores = {t["hyperparameters"]["values"]["arch"]: t["score"] for t in trials
                   if t["hyperparameters"]["values"].get("kind") == "beam"}
    best = result["architectures"][0]
    assert best["reward"] == pytest.approx(beam_scores[" ".join(map(str, best["arch"]))])
    assert os.listdir(tmp_path / "search" / "tb")
    pngs = sorted(os.listdir(tmp_path / "search" / "samples"))
    assert "best.png" in pngs and len(pngs) == 4  # one grid per iteration + the best
    # the reported top architecture is a full one from the last stage's beam
    assert top["beams"][2][0]["arch"] == top["architectures"][0]["arch"]


def _search_cmd(run_dir, cache):
    return [sys.executable, "-m", "autogan_tf.search", "--dataset=digits", "--bottom_width=2",
            "--gf_dim=8", "--df_dim=8", "--latent_dim=16", "--d_batch_size=8",
            "--g_batch_size=8", "--n_critic=2", "--iterations_per_stage=2,1,1",
            "--controller_steps=2", "--num_candidates=2", "--top_k=1", "--max_shared_steps=6",
            "--reward_images=40", "--reward_splits=2", "--classifier=digits",
            f"--cache_dir={cache}", f"--run_dir={run_dir}", "--noprogress", "--seed=3"]


def _run(cmd, **kw):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


def _completed_trials(run_dir):
    path = os.path.join(run_dir, "search", "oracle.json")
    try:
        with open(path) as f:
            return len(json.load(f).get("end_order", []))
    except (OSError, ValueError):
        return 0


@pytest.mark.slow
def test_search_killed_and_restarted_gives_the_uninterrupted_result(tmp_path, digits_cache):
    full, killed = str(tmp_path / "full"), str(tmp_path / "killed")
    p = _run(_search_cmd(full, digits_cache))
    out, _ = p.communicate(timeout=600)
    assert p.returncode == 0, out[-3000:]

    p = _run(_search_cmd(killed, digits_cache))
    deadline = time.time() + 600
    while _completed_trials(killed) < 5 and p.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert p.poll() is None, "the search ended before it could be killed"
    p.send_signal(signal.SIGKILL)
    p.wait()
    p = _run(_search_cmd(killed, digits_cache))
    out, _ = p.communicate(timeout=600)
    assert p.returncode == 0, out[-3000:]
    assert "Reloading" in out

    a = json.loads(open(os.path.join(full, "search", "top_architectures.json")).read())
    b = json.loads(open(os.path.join(killed, "search", "top_architectures.json")).read())
    assert a["architectures"] == b["architectures"] and a["beams"] == b["beams"]


def test_bad_dataset_is_a_clear_error(tmp_path, digits_cache):
    oracle_cfg, cfg = _tiny(str(tmp_path), digits_cache, dataset=str(tmp_path / "none.npz"))
    with pytest.raises(search_lib.SearchError, match="none.npz"):
        search_lib.build_search(oracle_cfg, cfg, str(tmp_path))


