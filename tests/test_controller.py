"""Tests of the per-stage LSTM controller and its REINFORCE update (golden numbers in numpy)."""

import keras
import numpy as np
import pytest

from autogan_tf import search_space
from autogan_tf.search.controller import (Controller, Reinforce, policy_statistics,
                                          reinforce_loss, to_seed, update_baseline)

# Logits of the stage-0 heads when the LSTM weights are zero (h stays 0, so logits = bias).
HAND_LOGITS = [
    np.array([0.3, -0.2]),  # conv
    np.array([1.0, 0.0, -1.0]),  # norm
    np.array([0.1, 0.2, 0.3]),  # up
    np.array([2.0, -1.0]),  # shortcut
]


def _np_log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _hand_logp_entropy(tokens):
    """log p(tokens) and the summed entropy, from HAND_LOGITS by hand."""
    logp = sum(_np_log_softmax(HAND_LOGITS[t])[a] for t, a in enumerate(tokens))
    ent = 0.0
    for z in HAND_LOGITS:
        lp = _np_log_softmax(z)
        ent -= float((np.exp(lp) * lp).sum())
    return float(logp), ent


def _hand_controller(hidden=3):
    """A stage-0 controller whose logits are HAND_LOGITS whatever the input."""
    ctrl = Controller(0, hidden_size=hidden, seed=0)
    for v in (ctrl.lstm_kernel, ctrl.lstm_recurrent_kernel, ctrl.lstm_bias):
        v.assign(np.zeros(v.shape, np.float32))
    for b, z in zip(ctrl.head_biases, HAND_LOGITS):
        b.assign(z.astype(np.float32))
    return ctrl


def _np_forward(ctrl, tokens, h, c):
    """Independent numpy LSTM: returns log p, entropy and the final (h, c) of one sequence."""
    sig = lambda x: 1.0 / (1.0 + np.exp(-x))  # noqa: E731
    k, r, b = (np.asarray(v, np.float64) for v in
               (ctrl.lstm_kernel, ctrl.lstm_recurrent_kernel, ctrl.lstm_bias))
    emb = np.asarray(ctrl.embeddings, np.float64)
    sizes = [t.size for t in search_space.stage_tokens(ctrl.stage)]
    x = np.zeros_like(h)
    logp = ent = 0.0
    for t, a in enumerate(tokens):
        i, f, g, o = np.split(x @ k + h @ r + b, 4)
        c = sig(f) * c + sig(i) * np.tanh(g)
        h = sig(o) * np.tanh(c)
        lp = _np_log_softmax(h @ np.asarray(ctrl.head_kernels[t]) + np.asarray(ctrl.head_biases[t]))
        logp += lp[a]
        ent -= (np.exp(lp) * lp).sum()
        x = emb[sum(sizes[:t]) + a]  # token t's option a
    return logp, ent, h, c


@pytest.mark.parametrize("stage", [0, 1, 2])
def test_layout_follows_search_space(stage):
    tokens = search_space.stage_tokens(stage)
    ctrl = Controller(stage, hidden_size=8, seed=1)
    sizes = [t.size for t in tokens]
    assert ctrl.num_tokens == len(tokens)
    assert ctrl.embeddings.shape == (sum(sizes), 8)
    assert [k.shape[1] for k in ctrl.head_kernels] == sizes
    sample = ctrl.sample(400, seed=3)
    toks = sample.tokens.numpy()
    assert toks.shape == (400, len(tokens)) and toks.dtype == np.int32
    for t, size in enumerate(sizes):  # every option of every token occurs, none out of range
        assert sorted(set(toks[:, t])) == list(range(size))
    assert sample.log_prob.shape == (400,) and sample.entropy.shape == (400,)
    assert sample.state[0].shape == (400, 8) and sample.state[1].shape == (400, 8)


def test_sample_is_deterministic_given_seed():
    ctrl = Controller(1, hidden_size=8, seed=1)
    a = ctrl.sample(64, seed=11).tokens.numpy()
    np.testing.assert_array_equal(a, ctrl.sample(64, seed=11).tokens.numpy())
    assert not np.array_equal(a, ctrl.sample(64, seed=12).tokens.numpy())
    g1, g2 = np.random.default_rng(5), np.random.default_rng(5)
    np.testing.assert_array_equal(ctrl.sample(8, seed=g1).tokens, ctrl.sample(8, seed=g2).tokens)
    assert g1.integers(1 << 30) == g2.integers(1 << 30)  # both advanced alike
    np.testing.assert_array_equal(to_seed(7).numpy(), [7, 0])


def test_log_prob_entropy_and_state_match_a_numpy_lstm():
    ctrl = Controller(2, hidden_size=6, seed=4)
    rng = np.random.default_rng(0)
    h0 = rng.normal(size=(5, 6)).astype(np.float32)
    c0 = rng.normal(size=(5, 6)).astype(np.float32)
    sample = ctrl.sample(5, initial_state=(h0, c0), seed=2)
    log_prob, entropy, (h, c) = ctrl.log_prob_and_entropy(sample.tokens, (h0, c0))
    for i in range(5):
        lp, ent, hn, cn = _np_forward(ctrl, sample.tokens.numpy()[i], h0[i].astype(np.float64),
                                      c0[i].astype(np.float64))
        np.testing.assert_allclose(log_prob[i], lp, rtol=1e-5)
        np.testing.assert_allclose(sample.log_prob[i], lp, rtol=1e-5)
        np.testing.assert_allclose(entropy[i], ent, rtol=1e-5)
        np.testing.assert_allclose(h[i], hn, atol=1e-5)
        np.testing.assert_allclose(c[i], cn, atol=1e-5)
        np.testing.assert_allclose(sample.state[0][i], hn, atol=1e-5)


def test_hand_logits_golden_log_prob_and_entropy():
    ctrl = _hand_controller()
    tokens = np.array([[1, 0, 2, 1], [0, 2, 0, 0]])
    log_prob, entropy, _ = ctrl.log_prob_and_entropy(tokens)
    for i in range(2):
        lp, ent = _hand_logp_entropy(tokens[i])
        np.testing.assert_allclose(log_prob[i], lp, rtol=1e-6)
        np.testing.assert_allclose(entropy[i], ent, rtol=1e-6)
    # The literal values, for the record: log p([1,0,2,1]) and the summed entropy.
    np.testing.assert_allclose(log_prob[0], -5.432213, atol=1e-5)
    np.testing.assert_allclose(entropy[0], 2.781395, atol=1e-5)


def test_baseline_ordering_and_loss_golden():
    """Reference ordering: b = R first, then b <- 0.9 b + 0.1 R *before* A = R - b."""
    assert update_baseline(None, 2.0, 0.9) == 2.0
    ctrl = _hand_controller()
    trainer = Reinforce(ctrl, learning_rate=0.0, entropy_coef=1e-3, baseline_decay=0.9)
    tokens = np.array([[1, 0, 2, 1]])
    lp, ent = _hand_logp_entropy(tokens[0])
    expected = [(2.0, 2.0, 0.0), (4.0, 2.2, 1.8), (1.0, 2.08, -1.08)]  # R, b, A
    for reward, b, adv in expected:
        m = trainer.update(tokens, [reward])
        assert set(m) >= {"loss", "baseline", "advantage", "entropy"}
        np.testing.assert_allclose(m["baseline"], b, rtol=1e-12)
        np.testing.assert_allclose(m["advantage"], adv, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(m["entropy"], ent, rtol=1e-6)
        np.testing.assert_allclose(m["loss"], -lp * adv - 1e-3 * ent, rtol=1e-5, atol=1e-7)
    trainer.reset_baseline()
    assert trainer.update(tokens, [9.0])["baseline"] == 9.0


def test_batch_loss_has_one_advantage_per_sample():
    ctrl = _hand_controller()
    trainer = Reinforce(ctrl, learning_rate=0.0, entropy_coef=0.01)
    tokens = np.array([[1, 0, 2, 1], [0, 2, 0, 0]])
    m = trainer.update(tokens, [3.0, 1.0])  # fresh baseline = batch mean 2.0 -> A = [1, -1]
    (lp0, ent), (lp1, _) = _hand_logp_entropy(tokens[0]), _hand_logp_entropy(tokens[1])
    expected = np.mean([-lp0 * 1.0 - 0.01 * ent, -lp1 * -1.0 - 0.01 * ent])
    np.testing.assert_allclose(m["loss"], expected, rtol=1e-5)
    # A [B, 1] x [B] broadcast would average all four products instead; make sure it differs.
    broadcast_bug = np.mean(-np.outer([lp0, lp1], [1.0, -1.0])) - 0.01 * ent
    assert abs(expected - broadcast_bug) > 0.1
    loss = reinforce_loss(*ctrl.log_prob_and_entropy(tokens)[:2], np.array([1.0, -1.0]), 0.01)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


@pytest.mark.parametrize("reward,sign", [(10.0, 1.0), (-10.0, -1.0)])
def test_update_moves_log_prob_with_the_advantage(reward, sign):
    ctrl = Controller(0, hidden_size=16, seed=2)
    trainer = Reinforce(ctrl, learning_rate=1e-2)
    tokens = np.array([[1, 2, 0, 1]])
    trainer.update(tokens, [0.0])  # sets the baseline (A = 0)
    before = float(ctrl.log_prob_and_entropy(tokens)[0][0])
    m = trainer.update(tokens, [reward])
    assert np.sign(m["advantage"]) == sign
    after = float(ctrl.log_prob_and_entropy(tokens)[0][0])
    assert sign * (after - before) > 0.05


def test_config_round_trip_and_seeded_init():
    ctrl = Controller(1, hidden_size=8, seed=9, name="ctl")
    clone = Controller.from_config(ctrl.get_config())
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(ctrl))
    for other in (clone, restored):
        assert isinstance(other, Controller)
        assert (other.stage, other.hidden_size, other.seed, other.name) == (1, 8, 9, "ctl")
        for a, b in zip(ctrl.weights, other.weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    other_seed = Controller(1, hidden_size=8, seed=10)
    assert not np.array_equal(ctrl.lstm_kernel.numpy(), other_seed.lstm_kernel.numpy())


# ----- spans of cells, policy statistics, a frozen controller ------------------------------------
def test_single_level_controller_spans_all_cells():
    ctrl = Controller(2, hidden_size=8, seed=1, first_stage=0)
    sizes = [t.size for c in range(3) for t in search_space.stage_tokens(c)]
    assert ctrl.num_tokens == search_space.ARCH_LENGTH == 14
    assert list(ctrl.token_sizes) == sizes and ctrl.num_sequences == 373_248
    assert ctrl.token_slice == slice(0, 14)
    toks = ctrl.sample(600, seed=4).tokens.numpy()
    assert toks.shape == (600, 14)
    for t, size in enumerate(sizes):  # every option of every token, the last skip's 4 included
        assert sorted(set(toks[:, t])) == list(range(size))
    clone = Controller.from_config(ctrl.get_config())
    assert (clone.first_stage, clone.stage, clone.name) == (0, 2, "controller_stages0-2")
    assert Controller(1, hidden_size=8).token_slice == search_space.stage_slice(1)
    with pytest.raises(ValueError, match="first_stage"):
        Controller(1, first_stage=2)


def test_policy_statistics_exact_and_monte_carlo():
    ctrl = _hand_controller()  # tokens independent: the joint entropy is the sum of the heads'
    _, ent = _hand_logp_entropy([0, 0, 0, 0])
    stats = policy_statistics(ctrl)
    assert stats["exact"]
    np.testing.assert_allclose(stats["entropy"], ent, rtol=1e-5)  # 2.781395 nats
    np.testing.assert_allclose(stats["max_entropy"], np.log(36), rtol=1e-12)
    np.testing.assert_allclose(stats["kl_uniform"], np.log(36) - ent, rtol=1e-4)
    # A zero-logit policy is uniform: KL 0.
    for b in ctrl.head_biases:
        b.assign(np.zeros(b.shape, np.float32))
    assert policy_statistics(ctrl)["kl_uniform"] == pytest.approx(0.0, abs=1e-5)
    # All 14 tokens at once (373,248 sequences): a Monte Carlo estimate, close to the exact sum.
    big = Controller(2, hidden_size=3, seed=0, first_stage=0)
    for v in (big.lstm_kernel, big.lstm_recurrent_kernel, big.lstm_bias):
        v.assign(np.zeros(v.shape, np.float32))
    exact = 0.0
    for k, b in zip(big.head_kernels, big.head_biases):
        logits = np.linspace(-1.0, 1.5, b.shape[0]).astype(np.float32)
        b.assign(logits)
        lp = _np_log_softmax(logits.astype(np.float64))
        exact -= float((np.exp(lp) * lp).sum())
    mc = policy_statistics(big, num_samples=4000, seed=1)
    assert not mc["exact"]
    assert mc["entropy"] == pytest.approx(exact, abs=0.05)
    # Averaged over several starting states (a beam's members), each weighted alike.
    ctrl1 = Controller(1, hidden_size=4, seed=3)
    rng = np.random.default_rng(0)
    h, c = rng.normal(size=(2, 4)).astype(np.float32), rng.normal(size=(2, 4)).astype(np.float32)
    both = policy_statistics(ctrl1, (h, c))["entropy"]
    each = [policy_statistics(ctrl1, (h[i:i + 1], c[i:i + 1]))["entropy"] for i in range(2)]
    assert both == pytest.approx(np.mean(each), rel=1e-6)


def test_frozen_controller_does_not_move_and_a_learning_one_does():
    target = np.array([[1, 2, 0, 1]])
    rewards = {True: 10.0, False: 0.0}
    moved = {}
    for lr in (0.0, 0.05):
        ctrl = Controller(0, hidden_size=16, seed=2)
        before = [v.numpy().copy() for v in ctrl.policy_variables]
        p0 = float(np.exp(ctrl.log_prob_and_entropy(target)[0][0]))
        trainer = Reinforce(ctrl, learning_rate=lr, beta_1=0.9)
        for k in range(20):  # a synthetic reward: 10 for the target, 0 for anything else
            sample = ctrl.sample(4, seed=k).tokens.numpy()
            sample[0] = target[0]
            trainer.update(sample, [rewards[bool((s == target[0]).all())] for s in sample])
        after = [v.numpy() for v in ctrl.policy_variables]
        moved[lr] = (max(float(np.abs(a - b).max()) for a, b in zip(after, before)),
                     float(np.exp(ctrl.log_prob_and_entropy(target)[0][0])) / p0)
    assert moved[0.0] == (0.0, 1.0)  # not one weight, not one logit
    assert moved[0.05][0] > 0.1 and moved[0.05][1] > 5.0  # p(target) up more than 5x
