"""Hinge losses and the compiled GAN steps."""

import contextlib
import numpy as np
import pytest
import tensorflow as tf

import keras

from autogan_tf.nn import losses
from autogan_tf import search_space as ss
from autogan_tf.nn.discriminator import Discriminator
from autogan_tf.training.gan import GANConfig, GANTrainer
from autogan_tf.nn.generators import DerivedGenerator, SharedGenerator

A = ss.REFERENCE_ARCHS["autogan_cifar10_a"]


def test_hinge_losses_golden_values():
    real = tf.constant([[2.0], [0.5], [-1.0]])
    fake = tf.constant([[-2.0], [0.0], [1.5]])
    # mean(relu(1 - real)) = (0 + 0.5 + 2)/3; mean(relu(1 + fake)) = (0 + 1 + 2.5)/3
    assert float(losses.discriminator_hinge_loss(real, fake)) == pytest.approx(6.0 / 3.0)
    assert float(losses.generator_hinge_loss(fake)) == pytest.approx(0.5 / 3.0)


def _random_arch(rng):
    return [int(rng.integers(t.size)) for toks in ss.CELL_TOKENS for t in toks]


def test_one_trace_serves_every_architecture_of_a_stage(rng):
    keras.utils.set_random_seed(0)
    g = SharedGenerator(latent_dim=8, channels=4, bottom_width=2)
    d = Discriminator(4, input_resolution=16)
    t = GANTrainer(g, d, GANConfig(latent_dim=8, d_batch_size=2, g_batch_size=2))
    real = tf.random.uniform([2, 16, 16, 3], -1, 1)
    archs = {tuple(_random_arch(rng)) for _ in range(40)}
    archs = list(archs)[:20]
    assert len(archs) == 20
    for a in archs:
        assert np.isfinite(float(t.d_step(real, a)))
        assert np.isfinite(float(t.g_step(a)))
    assert t.d_step_fn.experimental_get_tracing_count() == 1
    assert t.g_step_fn.experimental_get_tracing_count() == 1
    for i in range(4):  # the fused iteration: one trace too
        out = t.train_iteration([real] * 5, archs[5 * i:5 * i + 5])
        assert np.isfinite(out["d_loss"]) and np.isfinite(out["g_loss"])
    assert t.iteration_fn.experimental_get_tracing_count() == 1


def _derived_trainer(ema=None, seed=0, jit=False, dtype="float32", arch=A):
    keras.utils.set_random_seed(seed)
    g = DerivedGenerator(arch, latent_dim=8, channels=8, bottom_width=2, dtype=dtype)
    e = (DerivedGenerator(arch, latent_dim=8, channels=8, bottom_width=2, dtype=dtype)
         if ema else None)
    d = Discriminator(8, input_resolution=16, dtype=dtype)
    cfg = GANConfig(latent_dim=8, d_batch_size=4, g_batch_size=6, n_critic=2, ema_decay=ema,
                    jit_compile=jit)
    return GANTrainer(g, d, cfg, seed=seed, ema_generator=e)


def test_steps_update_only_their_own_network():
    t = _derived_trainer()
    g0 = [w.numpy() for w in t.generator.trainable_weights]
    d0 = [w.numpy() for w in t.discriminator.trainable_weights]
    t.d_step(tf.random.uniform([4, 16, 16, 3], -1, 1))
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(g0, t.generator.trainable_weights))
    assert not all(np.array_equal(a, w.numpy())
                   for a, w in zip(d0, t.discriminator.trainable_weights))
    d1 = [w.numpy() for w in t.discriminator.trainable_weights]
    t.g_step()
    assert all(np.array_equal(a, w.numpy())
               for a, w in zip(d1, t.discriminator.trainable_weights))
    assert not all(np.array_equal(a, w.numpy())
                   for a, w in zip(g0, t.generator.trainable_weights))
    assert int(t.g_iterations) == 1


def test_ema_is_exact_exponential_average():
    t = _derived_trainer(ema=0.9)
    w0 = [w.numpy() for w in t.generator.trainable_weights]
    np.testing.assert_array_equal(t.ema_generator.trainable_weights[0].numpy(), w0[0])
    t.g_step()
    w1 = [w.numpy() for w in t.generator.trainable_weights]
    for e, a, b in zip(t.ema_generator.trainable_weights, w0, w1):
        np.testing.assert_allclose(e.numpy(), 0.9 * a + 0.1 * b, rtol=1e-5, atol=1e-7)


def test_train_iteration_runs_n_critic_d_steps_and_is_seeded():
    out = []
    for _ in range(2):
        t = _derived_trainer(seed=5)
        real = [tf.random.stateless_uniform([4, 16, 16, 3], [i, 0], -1, 1) for i in range(2)]
        out.append([t.train_iteration(real) for _ in range(2)])
        assert int(t.g_iterations) == 2
        assert int(t.d_opt.iterations) == 4 and int(t.g_opt.iterations) == 2
    assert out[0] == out[1]
    with pytest.raises(ValueError, match="need 2 real batches"):
        t.train_iteration(real[:1])


@pytest.mark.parametrize("ema", [None, 0.9])
def test_fused_iteration_equals_separate_steps(ema):
    real = [tf.random.stateless_uniform([4, 16, 16, 3], [i, 1], -1, 1) for i in range(2)]
    results = []
    for fused in (False, True):
        t = _derived_trainer(ema=ema, seed=4)
        t.fuse_iteration = fused
        losses = [t.train_iteration(real) for _ in range(2)]
        nets = [t.generator, t.discriminator] + ([t.ema_generator] if ema else [])
        results.append((losses, [w.numpy() for n in nets for w in n.weights],
                        int(t.d_opt.iterations), int(t.g_iterations)))
    (l0, w0, d0, g0), (l1, w1, d1, g1) = results
    assert (d0, g0) == (d1, g1) == (4, 2)
    for a, b in zip(l0, l1):
        np.testing.assert_allclose([a["d_loss"], a["g_loss"]], [b["d_loss"], b["g_loss"]],
                                   rtol=1e-5, atol=1e-6)
    for a, b in zip(w0, w1):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_steps_take_conv_input_gradients_as_forward_convs(monkeypatch, graph_op_types):
    # The steps' gradient graphs have no Conv2DBackpropInput (autogan_cifar10_a has no
    # deconvolution, whose forward op it is) and train the same weights as TensorFlow's own
    # conv gradients. SGD: Adam's first steps move a weight by the learning rate whatever its
    # gradient's size, so a near-zero gradient that rounds to the other sign would show.
    from autogan_tf.nn import layers as L
    real = [tf.random.stateless_uniform([4, 16, 16, 3], [i, 2], -1, 1) for i in range(2)]
    results, op_types = [], []
    for rewrite in (True, False):
        if not rewrite:
            monkeypatch.setattr(L, "conv_gradients", contextlib.nullcontext)
        t = _derived_trainer(seed=6)
        t.d_opt, t.g_opt = keras.optimizers.SGD(0.05), keras.optimizers.SGD(0.05)
        losses = [t.train_iteration(real) for _ in range(2)]
        results.append((losses, [w.numpy() for n in (t.generator, t.discriminator)
                                 for w in n.weights]))
        op_types.append(graph_op_types(t.iteration_fn.get_concrete_function(
            *t.iteration_args(real, [None, None]))))
    assert op_types[0].count("Conv2DBackpropInput") == 0
    assert op_types[1].count("Conv2DBackpropInput") > 10
    assert op_types[0].count("Conv2DBackpropFilter") == op_types[1].count("Conv2DBackpropFilter")
    (l0, w0), (l1, w1) = results
    for a, b in zip(l0, l1):
        np.testing.assert_allclose([a["d_loss"], a["g_loss"]], [b["d_loss"], b["g_loss"]],
                                   rtol=1e-4, atol=1e-6)
    for a, b in zip(w0, w1):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_adam_settings_match_reference():
    t = _derived_trainer()
    assert float(t.g_opt.learning_rate) == pytest.approx(2e-4)
    assert float(t.g_opt.beta_1) == 0.0 and float(t.g_opt.beta_2) == pytest.approx(0.9)


@pytest.mark.parametrize("flag", ["jit", "bf16", "jit_bf16"])
def test_xla_and_bf16_steps_agree_with_fp32(flag):
    ref = _derived_trainer(seed=3, arch=(1, 0, 0, 1, 0, 1, 0, 1, 1, 1, 2, 2, 1, 3))
    other = _derived_trainer(seed=3, jit="jit" in flag,
                             dtype="mixed_bfloat16" if "bf16" in flag else "float32",
                             arch=(1, 0, 0, 1, 0, 1, 0, 1, 1, 1, 2, 2, 1, 3))
    real = tf.random.stateless_uniform([4, 16, 16, 3], [7, 7], -1, 1)
    a = [float(ref.d_step(real)), float(ref.g_step())]
    b = [float(other.d_step(real)), float(other.g_step())]
    tol = 1e-4 if flag == "jit" else 5e-2
    np.testing.assert_allclose(a, b, atol=tol, rtol=tol)


def test_bad_inputs_to_steps():
    t = _derived_trainer()
    with pytest.raises(ValueError, match="real batch has 3 images, d_batch_size is 4"):
        t.d_step(tf.zeros([3, 16, 16, 3]))
    with pytest.raises(ValueError, match="ema_decay must be in"):
        GANConfig(ema_decay=1.5)
    with pytest.raises(ValueError, match="pass ema_generator"):
        GANTrainer(t.generator, t.discriminator, GANConfig(ema_decay=0.999))
