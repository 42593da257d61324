"""Tests of AutoGANOracle: schedule, beam, learning, STOPPED, state and checkpoint resume.

The oracle is driven directly through keras-tuner's create_trial / update_trial / end_trial
with synthetic rewards (no GAN), as a Tuner would drive it.
"""

import json
import math

import keras_tuner
import numpy as np
import pytest
from keras_tuner.engine.trial import TrialStatus

from autogan_tf import search_space
from autogan_tf.search.controller import Controller
from autogan_tf.search.oracle import AutoGANOracle, OracleConfig, trial_architecture

TINY = dict(iterations_per_stage=(2, 2, 2), controller_steps=3, num_candidates=4, top_k=2,
            hidden_size=16, seed=3)
TOTAL = 6 * 3 + 3 * 4
WEIGHTS = [math.sqrt(i + 2) for i in range(search_space.ARCH_LENGTH)]


def distinct_reward(arch):
    """A reward with (almost surely) no ties between different architectures."""
    return float(sum(w * (t + 1) for w, t in zip(WEIGHTS, arch)))


def make_oracle(directory, project="search", **overrides):
    oracle = AutoGANOracle(OracleConfig(**{**TINY, **overrides}))
    oracle._set_project_dir(str(directory), project)  # what keras-tuner's BaseTuner does
    oracle.verbose = 0
    return oracle


def arch_of(trial):
    return [int(t) for t in trial.hyperparameters.values["arch"].split()]


def finish(oracle, trial, reward_fn=distinct_reward):
    oracle.update_trial(trial.trial_id, {"inception_score": reward_fn(arch_of(trial))})
    trial.status = TrialStatus.COMPLETED
    oracle.end_trial(trial)


def drive(oracle, n, log, reward_fn=distinct_reward):
    """Runs up to n trials to completion; appends (trial_id, values) to log."""
    for _ in range(n):
        trial = oracle.create_trial("tuner0")
        if trial.status == TrialStatus.STOPPED:
            return trial
        assert trial.status == TrialStatus.RUNNING
        log.append((trial.trial_id, dict(trial.hyperparameters.values)))
        finish(oracle, trial, reward_fn)
    return None


def snapshot(oracle):
    return {
        "weights": [v.numpy() for v in oracle.controller.weights],
        "adam": [v.numpy() for v in oracle.reinforce.optimizer.variables],
        "baseline": oracle.reinforce.baseline,
        "top": oracle.top_architectures(),
    }


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """One uninterrupted tiny search; records every trial and each controller's start state."""
    directory = tmp_path_factory.mktemp("full")
    oracle = make_oracle(directory)
    starts, controllers = [], {}
    original = Controller.sample

    def spy(self, batch, initial_state=None, seed=None):
        starts.append((self.stage, batch, None if initial_state is None else
                       (np.array(initial_state[0]), np.array(initial_state[1]))))
        controllers[self.stage] = self
        return original(self, batch, initial_state, seed)

    Controller.sample = spy
    try:
        log = []
        last = drive(oracle, TOTAL + 1, log)
    finally:
        Controller.sample = original
    return dict(oracle=oracle, log=log, last=last, starts=starts, controllers=controllers,
                directory=directory, snapshot=snapshot(oracle))


def test_schedule_order_and_stop(full_run):
    expected, iteration = [], 0
    for stage in range(3):
        length = search_space.stage_slice(stage).stop
        for _ in range(2):
            expected += [("controller", stage, iteration, k, length) for k in range(3)]
            iteration += 1
        expected += [("beam", stage, iteration - 1, k, length) for k in range(4)]
    got = [(v["kind"], v["stage"], v["iteration"], v["step"], len(v["arch"].split()))
           for _, v in full_run["log"]]
    assert got == expected
    assert [tid for tid, _ in full_run["log"]] == [f"{i:02d}" for i in range(TOTAL)]
    for _, v in full_run["log"]:
        search_space.Architecture.parse(v["arch"], allow_partial=True)  # valid tokens
    oracle = full_run["oracle"]
    assert full_run["last"].status == TrialStatus.STOPPED and oracle.is_finished
    assert oracle.completed_stages == 3
    assert oracle.create_trial("tuner0").status == TrialStatus.STOPPED
    top = oracle.top_architectures()
    assert len(top) == 2 and all(len(m["arch"]) == 14 for m in top)
    assert top[0]["reward"] >= top[1]["reward"]


def test_beam_keeps_top_k_and_seeds_next_stage(full_run):
    oracle, log = full_run["oracle"], full_run["log"]
    for stage in range(3):
        scored = [(distinct_reward([int(t) for t in v["arch"].split()]), v["arch"])
                  for _, v in log if v["kind"] == "beam" and v["stage"] == stage]
        want = []
        for reward, arch in sorted(scored, reverse=True):
            if arch not in [a for _, a in want]:
                want.append((reward, arch))
        beam = oracle.beam(stage)
        assert [(m["reward"], " ".join(map(str, m["arch"]))) for m in beam] == want[:2]
        # Each member's stored state is the controller's final state on its own tokens.
        ctrl = full_run["controllers"][stage]
        for m in beam:
            prefix_len = search_space.stage_slice(stage).start
            state = None
            if stage:
                parent = next(p for p in oracle.beam(stage - 1)
                              if p["arch"] == m["arch"][:prefix_len])
                state = (np.array([parent["h"]], np.float32), np.array([parent["c"]], np.float32))
            _, _, (h, c) = ctrl.log_prob_and_entropy(
                np.array([m["arch"][search_space.stage_slice(stage)]]), state)
            np.testing.assert_allclose(h[0], m["h"], atol=1e-6)
            np.testing.assert_allclose(c[0], m["c"], atol=1e-6)
    # Stage >= 1 children: prefix is a beam member, and the controller started from its state.
    single = [s for s in full_run["starts"] if s[1] == 1]
    children = [v for _, v in log if v["kind"] == "controller"]
    assert len(single) == len(children)
    prefixes_used = set()
    for (stage, _, start), v in zip(single, children):
        assert stage == v["stage"]
        arch = [int(t) for t in v["arch"].split()]
        if stage == 0:
            assert start is None
            continue
        assert start is not None, "a stage >= 1 child must start from a beam member's state"
        prefix = arch[:search_space.stage_slice(stage).start]
        member = next(m for m in oracle.beam(stage - 1) if m["arch"] == prefix)
        np.testing.assert_array_equal(start[0][0], np.float32(member["h"]))
        np.testing.assert_array_equal(start[1][0], np.float32(member["c"]))
        prefixes_used.add((stage, tuple(prefix)))
    assert len(prefixes_used) >= 3  # both members of a beam get drawn


def test_resume_after_kills_continues_identically(full_run, tmp_path):
    reference = full_run["log"]
    log = []
    # Run 1: seven trials, then trial 7 (a stage-0 beam trial) is handed out and killed.
    first = make_oracle(tmp_path)
    drive(first, 7, log)
    killed = first.create_trial("tuner0")
    assert killed.hyperparameters.values["kind"] == "beam"
    # Trials go strictly one at a time: a second worker waits, without using up randomness.
    assert first.create_trial("tuner1").status == TrialStatus.IDLE
    del first

    # Run 2: keras-tuner re-runs the killed trial first, with the same id and values.
    second = make_oracle(tmp_path)
    second.reload()
    assert (second.current_stage, second.current_kind, second.current_step) == (0, "beam", 1)
    retried = second.create_trial("tuner0")
    assert (retried.trial_id, retried.hyperparameters.values) == (killed.trial_id,
                                                                 killed.hyperparameters.values)
    log.append((retried.trial_id, dict(retried.hyperparameters.values)))
    finish(second, retried)
    drive(second, 5, log)  # trials 8-12; trial 13 is a stage-1 controller trial
    # Crash inside end_trial: keras-tuner recorded the result, the oracle had not learnt yet.
    trial = second.create_trial("tuner0")
    log.append((trial.trial_id, dict(trial.hyperparameters.values)))
    second.update_trial(trial.trial_id, {"inception_score": distinct_reward(arch_of(trial))})
    trial.status = TrialStatus.COMPLETED
    keras_tuner.Oracle.end_trial(second, trial)
    del second

    # Run 3: the ended trial is learnt from on reload, then the search goes on.
    third = make_oracle(tmp_path)
    third.reload()
    assert third.last_update_metrics["trial_id"] == trial.trial_id
    drive(third, TOTAL, log)
    assert third.is_finished
    assert log == reference
    got, want = snapshot(third), full_run["snapshot"]
    assert got["top"] == want["top"] and got["baseline"] == want["baseline"]
    for key in ("weights", "adam"):
        assert len(got[key]) == len(want[key])
        for a, b in zip(got[key], want[key]):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_state_is_json_and_config_is_checked(full_run):
    oracle = full_run["oracle"]
    state = json.loads(json.dumps(oracle.get_state()))
    other = AutoGANOracle(OracleConfig(**TINY))  # no project directory: JSON state only
    other.set_state(state)
    restored = json.loads(json.dumps(other.get_state()))["autogan"]
    # Only a project directory's checkpoint can restore weights; a bare oracle names none.
    assert restored.pop("controller_checkpoint") is None
    assert restored == {k: v for k, v in state["autogan"].items() if k != "controller_checkpoint"}
    assert other.is_finished and other.top_architectures() == oracle.top_architectures()
    mismatched = make_oracle(full_run["directory"], controller_steps=4)
    with pytest.raises(ValueError, match="same configuration"):
        mismatched.reload()


def test_sample_architectures_shapes_prefixes_and_seeds(full_run, tmp_path):
    oracle = full_run["oracle"]  # finished: stage 2 controller, stage-1 beam as prefixes
    archs = oracle.sample_architectures(64, seed=0)
    assert archs.shape == (64, 14) and archs.dtype == np.int32
    np.testing.assert_array_equal(archs, oracle.sample_architectures(64, seed=0))
    beam1 = [m["arch"] for m in oracle.beam(1)]
    assert all(list(a[:9]) in beam1 for a in archs)
    for a in archs:
        search_space.Architecture.parse(list(a))
    fresh, twin, other = (make_oracle(tmp_path / str(i), seed=s) for i, s in enumerate((5, 5, 6)))
    first = fresh.sample_architectures(32, seed=1)
    assert (first[:, 4:] == 0).all()  # stage 0: one cell, zero padding
    np.testing.assert_array_equal(first, twin.sample_architectures(32, seed=1))
    assert not np.array_equal(first, other.sample_architectures(32, seed=1))
    # The default stream is the oracle's own and moves on between calls.
    assert not np.array_equal(fresh.sample_architectures(32), fresh.sample_architectures(32))


def learn_target(directory, seed, steps=100, lr=0.01, entropy_coef=0.3):
    """Drives stage 0 with a reward that favours one cell.

    Returns:
      p(target) before and after each update, and per controller trial whether it was the target.
    """
    target = [1, 2, 0, 1]  # one of 36 stage-0 cells
    # A large learning rate keeps the test short; the large entropy bonus keeps it from settling
    # on 3 of 4 tokens (8 of 8 seeds reached p > 0.5 within 60 updates). Adam betas (0, 0.9).
    oracle = make_oracle(directory, iterations_per_stage=(1, 1, 1), controller_steps=steps,
                         controller_lr=lr, entropy_coef=entropy_coef, hidden_size=100, seed=seed)

    def reward(arch):  # squared number of matching tokens: 16 for the target
        return float(sum(a == b for a, b in zip(arch, target))) ** 2

    def p_target():  # exact probability, no sampling noise
        return float(np.exp(oracle.controller.log_prob_and_entropy([target])[0][0]))

    probs, archs = [p_target()], []
    for _ in range(steps):
        trial = oracle.create_trial("tuner0")
        archs.append(arch_of(trial))
        finish(oracle, trial, reward)
        probs.append(p_target())
    assert oracle.current_kind == "beam" and oracle.current_stage == 0
    return np.array(probs), [a == target for a in archs]


def test_controller_learns_target_architecture(tmp_path):
    probs, hits = learn_target(tmp_path, seed=0)
    assert probs[0] < 0.1  # about chance, 1/36
    assert probs.max() > 0.5 and np.argmax(probs > 0.5) <= 80  # within 80 updates
    assert np.mean(hits[-50:]) > 0.2  # the sampled children hit it 7x more often than chance


def test_failed_and_retried_trials_keep_the_order(tmp_path):
    oracle = AutoGANOracle(OracleConfig(**TINY), max_retries_per_trial=1,
                           max_consecutive_failed_trials=5)
    oracle._set_project_dir(str(tmp_path), "search")
    oracle.verbose = 0
    failed = oracle.create_trial("tuner0")
    failed.status = TrialStatus.FAILED
    oracle.end_trial(failed)
    # A failed controller trial is skipped: no update, the schedule moves on.
    assert oracle.current_step == 1 and oracle.reinforce.baseline is None
    crashed = oracle.create_trial("tuner0")
    assert crashed.hyperparameters.values["step"] == 1
    crashed.status = TrialStatus.INVALID
    oracle.end_trial(crashed)
    # A crashed trial is retried first, with the same values; the schedule waits for it.
    assert oracle.current_step == 1
    again = oracle.create_trial("tuner0")
    assert (again.trial_id, again.hyperparameters.values) == (crashed.trial_id,
                                                             crashed.hyperparameters.values)
    finish(oracle, again)
    assert oracle.current_step == 2 and oracle.reinforce.baseline is not None
    assert oracle.last_update_metrics["trial_id"] == crashed.trial_id
    assert trial_architecture(again.hyperparameters).tokens == tuple(arch_of(again))


# ----- controller batches, baselines and ablations ----------------------------------------------
def _chi_square_p(counts):
    from scipy import stats
    return float(stats.chisquare(counts).pvalue)


def test_uniform_sampler_draws_each_token_uniformly_and_never_trains(tmp_path):
    oracle = make_oracle(tmp_path / "u", sampler="uniform", iterations_per_stage=(1, 1, 1))
    # Make the controller strongly biased: the uniform sampler must ignore it.
    for b in oracle.controller.head_biases:
        b.assign(np.linspace(0.0, 3.0, b.shape[0]).astype(np.float32))
    archs = oracle.sample_architectures(20_000, seed=0)
    biased = make_oracle(tmp_path / "c", iterations_per_stage=(1, 1, 1))
    for b in biased.controller.head_biases:
        b.assign(np.linspace(0.0, 3.0, b.shape[0]).astype(np.float32))
    from_controller = biased.sample_architectures(20_000, seed=0)
    for t, token in enumerate(search_space.stage_tokens(0)):
        counts = np.bincount(archs[:, t], minlength=token.size)
        assert _chi_square_p(counts) > 1e-3, (token.name, counts)
        assert _chi_square_p(np.bincount(from_controller[:, t], minlength=token.size)) < 1e-9
    ctrl0 = oracle.controller
    weights = [v.numpy().copy() for v in ctrl0.weights]
    log = []
    drive(oracle, 3 + 4, log)  # a stage's controller and beam trials
    assert [v["kind"] for _, v in log] == ["controller"] * 3 + ["beam"] * 4
    assert oracle.reinforce.baseline is None and oracle.last_update_metrics is None
    for a, b in zip(weights, ctrl0.weights):
        np.testing.assert_array_equal(a, b.numpy())
    rec = oracle.policy_record()[0]  # the sampling policy is uniform: exactly log(36) nats
    assert rec["entropy_start"] == rec["entropy_end"] == pytest.approx(np.log(36))
    assert rec["kl_uniform_end"] == 0.0
    # Stage 1's uniform draws keep the prefixes from stage 0's beam.
    archs = oracle.sample_architectures(4000, seed=1)
    beam0 = [m["arch"] for m in oracle.beam(0)]
    assert all(list(a[:4]) in beam0 for a in archs[:50])
    assert _chi_square_p(np.bincount(archs[:, 8], minlength=2)) > 1e-3  # skip token of cell 1


def test_single_level_search_samples_all_14_tokens_in_one_stage(tmp_path):
    oracle = make_oracle(tmp_path, mlas=False)  # TINY: (2, 2, 2) iterations -> 6 at once
    assert oracle.config.stages == ((2, 0, 6),)
    assert oracle.config.total_trials == 6 * 3 + 4
    archs = oracle.sample_architectures(3000, seed=0)
    sizes = [t.size for c in range(3) for t in search_space.stage_tokens(c)]
    for t, size in enumerate(sizes):  # all 14 tokens vary from the first iteration on
        assert sorted(set(archs[:, t])) == list(range(size))
    log = []
    last = drive(oracle, 6 * 3 + 4 + 1, log)
    assert last is not None and last.status == TrialStatus.STOPPED
    assert {v["stage"] for _, v in log} == {2}
    assert all(len(v["arch"].split()) == 14 for _, v in log)
    assert [v["iteration"] for _, v in log] == [i for i in range(6) for _ in range(3)] + [5] * 4
    assert oracle.completed_stages == 1 and len(oracle.top_architectures()) == 2
    rec = oracle.policy_record()
    assert len(rec) == 1 and rec[0]["cells"] == [0, 1, 2] and not rec[0]["exact"]
    assert rec[0]["updates"] == 18


def test_search_without_weight_sharing_scores_one_architecture_per_iteration(tmp_path):
    with pytest.raises(ValueError, match="sampler='uniform'"):
        OracleConfig(weight_sharing=False)
    oracle = make_oracle(tmp_path, sampler="uniform", weight_sharing=False)
    assert oracle.config.total_trials == 6 and oracle.config.stages == ((2, 0, 6),)
    log = []
    last = drive(oracle, 7, log)
    assert last.status == TrialStatus.STOPPED
    assert [(v["kind"], v["iteration"], v["step"], v["stage"]) for _, v in log] == [
        ("controller", i, 0, 2) for i in range(6)]
    scored = sorted(((distinct_reward(arch_of_values(v)), arch_of_values(v)) for _, v in log),
                    reverse=True)
    assert [(m["reward"], m["arch"]) for m in oracle.top_architectures()] == [
        (r, a) for r, a in scored[:2]]


def arch_of_values(values):
    return [int(t) for t in values["arch"].split()]


def test_controller_batch_updates_once_per_batch_with_batch_mean_baseline(tmp_path):
    oracle = make_oracle(tmp_path, controller_steps=2, controller_batch=3)
    assert oracle.config.trials_per_iteration == 6
    rewards = []
    for k in range(6):
        trial = oracle.create_trial("tuner0")
        assert trial.hyperparameters.values["step"] == k
        finish(oracle, trial)
        rewards.append(distinct_reward(arch_of(trial)))
        updates = oracle._updates
        assert updates == (k + 1) // 3
        if k == 2:  # a fresh baseline is the first batch's mean reward
            assert oracle.reinforce.baseline == pytest.approx(np.mean(rewards[:3]))
            assert oracle.last_update_metrics["batch"] == 3
    assert oracle.current_iteration == 1 and oracle.reinforce.baseline is None  # reset


def test_policy_record_and_evaluation_sets(tmp_path):
    oracle = make_oracle(tmp_path, policy_eval_archs=7)
    log = []
    drive(oracle, 6 + 4, log)  # stage 0 done
    rec = oracle.policy_record()
    assert [r["stage"] for r in rec] == [0, 1] and rec[0]["updates"] == 6
    assert rec[0]["entropy_end"] is not None and rec[1]["entropy_end"] is None
    assert rec[0]["kl_uniform_start"] == pytest.approx(np.log(36) - rec[0]["entropy_start"])
    policy, uniform = oracle.policy_eval_architectures()
    assert policy.shape == uniform.shape == (7, 14)
    np.testing.assert_array_equal(policy[:, :4], uniform[:, :4])  # paired prefixes
    assert all(list(p[:4]) in [m["arch"] for m in oracle.beam(0)] for p in policy)
    again = oracle.policy_eval_architectures()  # a fixed set per stage
    np.testing.assert_array_equal(again[0], policy)


def test_frozen_controller_keeps_its_policy_and_a_learning_one_moves(tmp_path):
    target = [1, 2, 0, 1]

    def reward(arch):
        return 10.0 if arch[:4] == target else 0.0

    kl = {}
    for lr in (0.0, 0.05):
        oracle = make_oracle(tmp_path / str(lr), iterations_per_stage=(4, 1, 1),
                             controller_steps=5, controller_batch=4, controller_lr=lr,
                             controller_beta_1=0.9)
        ctrl0 = oracle.controller
        start = [v.numpy().copy() for v in ctrl0.weights]
        drive(oracle, 4 * 20, [], reward)
        rec = oracle.policy_record()[0]
        kl[lr] = (rec["kl_uniform_start"], rec["kl_uniform_end"])
        if lr == 0.0:
            for a, b in zip(start, ctrl0.weights):
                np.testing.assert_array_equal(a, b.numpy())
    assert kl[0.0][0] == kl[0.0][1]
    assert kl[0.05][1] > kl[0.05][0] + 0.3
