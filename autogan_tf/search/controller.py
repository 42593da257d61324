"""The per-stage LSTM controller of AutoGAN and its REINFORCE update (SPEC section 4).

A `Controller` samples the tokens of one generator cell (one search stage) autoregressively:
an LSTM cell whose first input is a zero vector and whose later inputs embed the previous
action, with one softmax head per token of the stage. (Single-level search gives one
controller all three cells.) `Reinforce` trains it with the textbook REINFORCE estimator, a
moving-average baseline and an entropy bonus. `policy_statistics` measures how far a policy has
moved from the uniform one: its entropy and its KL divergence from uniform.

Token vocabularies come from `autogan_tf.search_space`; nothing here hard-codes them.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence, Tuple, Union

import keras
import numpy as np
import tensorflow as tf

from autogan_tf import search_space
from autogan_tf import seeds

__all__ = [
    "Controller",
    "ControllerSample",
    "Reinforce",
    "reinforce_loss",
    "update_baseline",
    "to_seed",
    "policy_statistics",
]

SeedLike = Union[int, Sequence[int], np.ndarray, np.random.Generator, tf.Tensor, None]
LSTMState = Tuple[tf.Tensor, tf.Tensor]


class ControllerSample(NamedTuple):
    """What `Controller.sample` returns.

    Attributes:
      tokens: int32 [B, T], the sampled option of each of the stage's T tokens.
      log_prob: float32 [B], sum over tokens of log p(a_t).
      entropy: float32 [B], sum over tokens of the entropy of each token's distribution.
      state: the final LSTM state (h, c), each float32 [B, hidden_size].
    """

    tokens: tf.Tensor
    log_prob: tf.Tensor
    entropy: tf.Tensor
    state: LSTMState


def to_seed(seed: SeedLike) -> tf.Tensor:
    """Turns a seed into the int64 [2] tensor that TF's stateless random ops take.

    Args:
      seed: an int, a pair of ints, a `np.random.Generator` (two integers are drawn from it,
        advancing it), or None for a fresh non-deterministic seed.

    Returns:
      An int64 tensor of shape [2].
    """
    if seed is None:
        seed = np.random.default_rng()
    if isinstance(seed, np.random.Generator):
        seed = seed.integers(0, 2**31 - 1, size=2)
    if isinstance(seed, (int, np.integer)):
        seed = [int(seed), 0]
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    if seed.shape != (2,):
        raise ValueError(f"a seed must be an int or a pair of ints, got shape {seed.shape}")
    return seed


def _unroll(weights, offsets, h, c, actions=None, seed=None):
    """Runs a controller's LSTM over its stage's tokens, as a pure function of its weights.

    Either teacher-forced (`actions` int32 [B, T]) or sampling with stateless ops from `seed`.
    Written with plain TF ops on explicit weight tensors so that one traced graph serves every
    controller of the same shape (tracing through Keras layer calls took twice as long, and
    a new controller starts each stage).

    Args:
      weights: `Controller.policy_weights()`: embeddings, LSTM kernel, recurrent kernel, bias,
        then (kernel, bias) of each token's head. LSTM gates are in the order (input, forget,
        cell candidate, output).
      offsets: embedding index of option 0 of each token.
      h, c: initial LSTM state, [B, H] each.
      actions: optional int32 [B, T] to teacher-force.
      seed: int64 [2] stateless seed when sampling; token t uses fold_in(seed, t).

    Returns:
      (tokens [B, T] int32, log_prob [B], entropy [B], final (h, c)).
    """
    embeddings, kernel, recurrent, bias = weights[:4]
    heads = weights[4:]
    x = tf.zeros_like(h)
    chosen, log_probs, entropies = [], [], []
    for t in range(len(offsets)):
        gates = tf.matmul(x, kernel) + tf.matmul(h, recurrent) + bias
        i, f, g, o = tf.split(gates, 4, axis=1)
        c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        h = tf.sigmoid(o) * tf.tanh(c)
        logits = tf.matmul(h, heads[2 * t]) + heads[2 * t + 1]
        log_p = tf.nn.log_softmax(logits, axis=-1)
        entropies.append(-tf.reduce_sum(tf.exp(log_p) * log_p, axis=-1))
        if actions is None:
            step_seed = tf.random.experimental.stateless_fold_in(seed, t)
            a = tf.random.stateless_categorical(logits, 1, seed=step_seed, dtype=tf.int32)[:, 0]
        else:
            a = actions[:, t]
        chosen.append(a)
        log_probs.append(tf.gather(log_p, a, axis=1, batch_dims=1))
        if t + 1 < len(offsets):
            x = tf.gather(embeddings, a + offsets[t])
    return tf.stack(chosen, axis=1), tf.add_n(log_probs), tf.add_n(entropies), (h, c)


@tf.function(reduce_retracing=True)
def _sample_graph(weights, offsets, h, c, seed):
    return _unroll(weights, offsets, h, c, seed=seed)


@tf.function(reduce_retracing=True)
def _policy_gradient(weights, offsets, tokens, h, c, advantage, entropy_coef):
    with tf.GradientTape() as tape:
        tape.watch(weights)
        _, log_prob, entropy, _ = _unroll(weights, offsets, h, c, actions=tokens)
        loss = reinforce_loss(log_prob, entropy, advantage, entropy_coef)
    grads = [tf.convert_to_tensor(g) for g in tape.gradient(loss, weights)]
    return loss, tf.reduce_mean(log_prob), tf.reduce_mean(entropy), grads


@keras.saving.register_keras_serializable(package="autogan_tf")
class Controller(keras.Model):
    """LSTM policy over the tokens of one search stage.

    Token t's option k is embedded at index ``sum(sizes[:t]) + k`` of one embedding table over
    all the stage's token options. Step 0 reads a zero vector; step t > 0 reads the embedding of
    the action taken at step t - 1. The initial LSTM state is zeros (stage 0) or a given state,
    the final state of a previous stage's top architecture (stages >= 1).

    Weights are initialised like the reference's PyTorch defaults: LSTM and heads uniform in
    +-1/sqrt(hidden_size), embedding N(0, 1). With `seed` set, initialisation is deterministic.

    Args:
      stage: search stage (= index of the last cell whose tokens this controller samples).
      hidden_size: LSTM and embedding width.
      seed: optional integer seed for the weight initialisers.
      first_stage: the first cell it samples (default `stage`: one cell). Single-level search
        uses `Controller(2, first_stage=0)`, one controller for all 14 tokens.
      **kwargs: passed to `keras.Model` (e.g. `name`).
    """

    def __init__(self, stage: int, hidden_size: int = 100, seed: Optional[int] = None,
                 first_stage: Optional[int] = None, **kwargs):
        first = int(stage) if first_stage is None else int(first_stage)
        if not 0 <= first <= int(stage):
            raise ValueError(f"first_stage must be in [0, {int(stage)}], got {first}")
        kwargs.setdefault("name", f"controller_stage{int(stage)}" if first == int(stage)
                          else f"controller_stages{first}-{int(stage)}")
        super().__init__(**kwargs)
        self.stage = int(stage)
        self.first_stage = first
        self.hidden_size = int(hidden_size)
        self.seed = None if seed is None else int(seed)
        tokens = tuple(t for c in range(first, self.stage + 1)
                       for t in search_space.stage_tokens(c))
        self.token_names = tuple(t.name for t in tokens)
        self.token_sizes = tuple(t.size for t in tokens)
        self.token_offsets = tuple(int(o) for o in np.cumsum((0,) + self.token_sizes[:-1]))
        self.num_tokens = len(self.token_sizes)

        def sub_seed(i):  # one distinct seed per initialiser
            return None if self.seed is None else seeds.derive(self.seed, "controller_init", i)

        def init_uniform(i):
            limit = 1.0 / np.sqrt(self.hidden_size)
            return keras.initializers.RandomUniform(-limit, limit, seed=sub_seed(i))

        hid = self.hidden_size
        seed0 = sub_seed(0)
        self.embeddings = self.add_weight(
            shape=(sum(self.token_sizes), hid), name="embeddings",
            initializer=keras.initializers.RandomNormal(0.0, 1.0, seed=seed0))
        # LSTM gates in the order (input, forget, cell candidate, output).
        self.lstm_kernel = self.add_weight(shape=(hid, 4 * hid), name="lstm_kernel",
                                           initializer=init_uniform(1))
        self.lstm_recurrent_kernel = self.add_weight(
            shape=(hid, 4 * hid), name="lstm_recurrent_kernel", initializer=init_uniform(2))
        self.lstm_bias = self.add_weight(shape=(4 * hid,), name="lstm_bias",
                                         initializer=init_uniform(3))
        self.head_kernels = []
        self.head_biases = []
        for t, (name, size) in enumerate(zip(self.token_names, self.token_sizes)):
            self.head_kernels.append(self.add_weight(
                shape=(hid, size), name=f"head_{t}_{name}_kernel",
                initializer=init_uniform(10 + 2 * t)))
            self.head_biases.append(self.add_weight(
                shape=(size,), name=f"head_{t}_{name}_bias", initializer=init_uniform(11 + 2 * t)))
        self.built = True

    # ----- core ---------------------------------------------------------------------------
    def zero_state(self, batch: int) -> LSTMState:
        """An all-zeros LSTM state for `batch` rows."""
        z = tf.zeros([batch, self.hidden_size], tf.float32)
        return z, z

    def _check_state(self, initial_state, batch) -> LSTMState:
        if initial_state is None:
            return self.zero_state(batch)
        h, c = initial_state
        h = tf.convert_to_tensor(h, tf.float32)
        c = tf.convert_to_tensor(c, tf.float32)
        if h.shape.rank != 2 or h.shape[-1] != self.hidden_size or h.shape != c.shape:
            raise ValueError(f"initial_state must be (h, c), each [batch, {self.hidden_size}]; "
                             f"got shapes {h.shape} and {c.shape}")
        if isinstance(batch, int) and h.shape[0] != batch:
            raise ValueError(f"initial_state has {h.shape[0]} rows for a batch of {batch}")
        return h, c

    @property
    def policy_variables(self) -> list:
        """The trainable weights in the order of `policy_weights` (for the optimizer)."""
        heads = [v for pair in zip(self.head_kernels, self.head_biases) for v in pair]
        return [self.embeddings, self.lstm_kernel, self.lstm_recurrent_kernel,
                self.lstm_bias] + heads

    def policy_weights(self) -> tuple:
        """The current values of `policy_variables`, as tensors."""
        return tuple(tf.convert_to_tensor(v) for v in self.policy_variables)

    # ----- public API ---------------------------------------------------------------------
    def sample(self, batch: int, initial_state: Optional[LSTMState] = None,
               seed: SeedLike = None) -> ControllerSample:
        """Samples `batch` token sequences for this stage.

        Sampling is deterministic given `seed` (TF stateless ops; one seed per token is folded
        in from it).

        Args:
          batch: number of sequences.
          initial_state: (h, c), each [batch, hidden_size]; zeros when None.
          seed: see `to_seed`. A `np.random.Generator` is advanced by one draw of two ints.

        Returns:
          A `ControllerSample` (tokens [B, T] int32, log_prob [B], entropy [B], final (h, c)).
        """
        h, c = self._check_state(initial_state, batch)
        tokens, log_prob, entropy, state = _sample_graph(
            self.policy_weights(), self.token_offsets, h, c, to_seed(seed))
        return ControllerSample(tokens, log_prob, entropy, state)

    def log_prob_and_entropy(self, tokens, initial_state: Optional[LSTMState] = None):
        """Teacher-forced log-probability and entropy of given token sequences.

        Differentiable: call it under a `tf.GradientTape` for the policy-gradient update.

        Args:
          tokens: int [B, T] (this stage's tokens only, not the prefix of earlier cells).
          initial_state: (h, c) the sequences started from; zeros when None.

        Returns:
          (log_prob [B], entropy [B], final (h, c)).
        """
        tokens = tf.convert_to_tensor(tokens)
        tokens = tf.cast(tokens, tf.int32)
        if tokens.shape.rank != 2 or tokens.shape[1] != self.num_tokens:
            raise ValueError(f"stage {self.stage} has {self.num_tokens} tokens per sequence; "
                             f"got tokens of shape {tokens.shape}")
        h, c = self._check_state(initial_state, tf.shape(tokens)[0])
        _, log_prob, entropy, state = _unroll(self.policy_weights(), self.token_offsets, h, c,
                                              actions=tokens)
        return log_prob, entropy, state

    def call(self, inputs):
        """Keras entry point: `inputs` is tokens [B, T] or a tuple (tokens, h, c).

        Returns:
          (log_prob [B], entropy [B]), as `log_prob_and_entropy`.
        """
        if isinstance(inputs, (tuple, list)):
            tokens, h, c = inputs
            state = (h, c)
        else:
            tokens, state = inputs, None
        log_prob, entropy, _ = self.log_prob_and_entropy(tokens, state)
        return log_prob, entropy

    @property
    def token_slice(self) -> slice:
        """Positions of this controller's tokens inside the 14-integer architecture."""
        return slice(search_space.stage_slice(self.first_stage).start,
                     search_space.stage_slice(self.stage).stop)

    @property
    def num_sequences(self) -> int:
        """How many token sequences the policy chooses among."""
        return int(np.prod(self.token_sizes))

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "stage": self.stage,
            "hidden_size": self.hidden_size,
            "seed": self.seed,
            "first_stage": self.first_stage,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


# ----- how far a policy is from uniform -----------------------------------------------------
_MAX_ENUMERATED = 4096


def policy_statistics(controller: Controller, initial_states: Optional[LSTMState] = None,
                      num_samples: int = 4096, seed: int = 0) -> dict:
    """Entropy of a controller's policy and its KL divergence from the uniform policy.

    The policy is the joint distribution over the controller's token sequences. When there are
    at most 4,096 sequences (every single stage: 36, 72 or 144) they are enumerated and the
    figures are exact; otherwise (all 14 tokens at once) the entropy is the Monte Carlo
    estimate -mean(log p(x)) over `num_samples` sampled sequences. Since the uniform policy
    gives each of the N sequences 1/N, KL(p || uniform) = log N - H(p).

    Args:
      controller: the policy.
      initial_states: (h, c), each [K, hidden_size]: the K prefixes' states the policy starts
        from (a stage's beam); figures are averaged over them, each weighted 1/K as sampling
        chooses them. None: the zero state.
      num_samples: sequences per state for the Monte Carlo estimate.
      seed: seeds the Monte Carlo samples.

    Returns:
      {'entropy': nats, 'kl_uniform': nats, 'max_entropy': log N, 'exact': bool}.
    """
    if initial_states is None:
        h0, c0 = controller.zero_state(1)
    else:
        h0, c0 = controller._check_state(initial_states, None)
    h0, c0 = np.asarray(h0, np.float32), np.asarray(c0, np.float32)
    n_seq = controller.num_sequences
    exact = n_seq <= _MAX_ENUMERATED
    if exact:
        grids = np.meshgrid(*[np.arange(k) for k in controller.token_sizes], indexing="ij")
        tokens = np.stack([g.reshape(-1) for g in grids], axis=1).astype(np.int32)
    entropies = []
    for k in range(h0.shape[0]):
        if exact:
            n = tokens.shape[0]
            state = (np.repeat(h0[k:k + 1], n, 0), np.repeat(c0[k:k + 1], n, 0))
            log_p = controller.log_prob_and_entropy(tokens, state)[0].numpy().astype(np.float64)
            entropies.append(float(-(np.exp(log_p) * log_p).sum()))
        else:
            state = (np.repeat(h0[k:k + 1], num_samples, 0),
                     np.repeat(c0[k:k + 1], num_samples, 0))
            sample = controller.sample(num_samples, state, seed=[int(seed), k])
            entropies.append(float(-np.mean(sample.log_prob.numpy().astype(np.float64))))
    entropy = float(np.mean(entropies))
    max_entropy = float(np.log(n_seq))
    return {"entropy": entropy, "kl_uniform": max(0.0, max_entropy - entropy),
            "max_entropy": max_entropy, "exact": exact}


# ----- REINFORCE ---------------------------------------------------------------------------
def update_baseline(baseline: Optional[float], reward: float, decay: float) -> float:
    """Moving-average baseline, reference ordering.

    The first reward sets the baseline (b = R); afterwards b <- decay * b + (1 - decay) * R.
    The advantage is taken *after* this update (A = R - b_new), so the first step of a fresh
    baseline has A = 0 and only the entropy bonus moves the policy.

    Args:
      baseline: the current baseline, or None before the first reward.
      reward: the new reward (for a batch, the caller passes the batch mean).
      decay: the moving-average decay (0.9 in the reference).

    Returns:
      The new baseline.
    """
    if baseline is None:
        return float(reward)
    return float(decay * baseline + (1.0 - decay) * reward)


def reinforce_loss(log_prob, entropy, advantage, entropy_coef: float):
    """The REINFORCE loss with an entropy bonus, averaged over the batch.

    loss = mean_i( -log p(a_i) * A_i - c * H_i ), with A_i a constant scalar per sample
    (no gradient flows through the reward or the baseline).

    Args:
      log_prob: [B] sum over tokens of log p(a_t).
      entropy: [B] sum over tokens of the per-token entropy.
      advantage: [B] R_i - b.
      entropy_coef: c.

    Returns:
      A scalar tensor.
    """
    advantage = tf.stop_gradient(tf.cast(advantage, log_prob.dtype))
    tf.debugging.assert_equal(tf.shape(advantage), tf.shape(log_prob),
                              message="advantage must be one scalar per sample")
    return tf.reduce_mean(-log_prob * advantage - entropy_coef * entropy)


class Reinforce:
    """REINFORCE trainer for one `Controller`: Adam, moving-average baseline, entropy bonus.

    Args:
      controller: the controller to train.
      learning_rate: Adam learning rate (3.5e-4 in the paper).
      entropy_coef: weight c of the entropy bonus (1e-3 in the reference code, 1e-4 in the paper).
      baseline_decay: moving-average decay of the baseline (0.9).
      beta_1: Adam beta_1 (the reference passes its GAN betas, 0.0).
      beta_2: Adam beta_2 (0.9 in the reference).
    """

    def __init__(self, controller: Controller, learning_rate: float = 3.5e-4,
                 entropy_coef: float = 1e-3, baseline_decay: float = 0.9,
                 beta_1: float = 0.0, beta_2: float = 0.9):
        self.controller = controller
        self.entropy_coef = float(entropy_coef)
        self.baseline_decay = float(baseline_decay)
        self.baseline: Optional[float] = None
        self.optimizer = keras.optimizers.Adam(learning_rate=learning_rate, beta_1=beta_1,
                                               beta_2=beta_2)
        self.optimizer.build(controller.policy_variables)
        self._checkpoint = None
        variables = controller.policy_variables
        self._apply = tf.function(
            lambda grads: self.optimizer.apply_gradients(zip(grads, variables)))

    def reset_baseline(self) -> None:
        """Forgets the baseline; the next reward sets it again."""
        self.baseline = None

    def update(self, tokens, rewards, initial_state: Optional[LSTMState] = None) -> dict:
        """One policy-gradient step from a batch of (tokens, initial_state, reward).

        The baseline is updated with the batch-mean reward first (see `update_baseline`), then
        A_i = R_i - b and the loss of `reinforce_loss` is minimised with one Adam step.

        Args:
          tokens: int [B, T], this stage's tokens of each sample.
          rewards: float [B] (or a scalar for B = 1).
          initial_state: (h, c) each [B, hidden_size] the samples started from; zeros if None.

        Returns:
          Python floats for logging: loss, baseline, advantage (batch mean), entropy (batch
          mean), log_prob (batch mean), reward (batch mean).
        """
        tokens = np.asarray(tokens, np.int32)
        if tokens.ndim == 1:
            tokens = tokens[None]
        rewards = np.asarray(rewards, np.float64).reshape(-1)
        if rewards.shape[0] != tokens.shape[0]:
            raise ValueError(f"{tokens.shape[0]} token rows but {rewards.shape[0]} rewards")
        self.baseline = update_baseline(self.baseline, float(rewards.mean()),
                                        self.baseline_decay)
        advantage = (rewards - self.baseline).astype(np.float32)
        h, c = self.controller._check_state(initial_state, tokens.shape[0])
        loss, log_prob, entropy, grads = _policy_gradient(
            self.controller.policy_weights(), self.controller.token_offsets,
            tf.constant(tokens), h, c, tf.constant(advantage),
            tf.constant(self.entropy_coef, tf.float32))
        self._apply(grads)
        return {
            "loss": float(loss),
            "baseline": float(self.baseline),
            "advantage": float(advantage.mean()),
            "entropy": float(entropy),
            "log_prob": float(log_prob),
            "reward": float(rewards.mean()),
        }

    def checkpoint(self) -> tf.train.Checkpoint:
        """The `tf.train.Checkpoint` over the controller weights and the Adam state.

        One object per trainer: TF caches its save graph, which makes repeated writes cheap.
        """
        if self._checkpoint is None:
            self._checkpoint = tf.train.Checkpoint(controller=self.controller,
                                                   optimizer=self.optimizer)
        return self._checkpoint
