"""Generator cells, supernet, derived generator and discriminator."""

import contextlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import keras

from autogan_tf.nn import layers as L
from autogan_tf.nn import stats as model_stats
from autogan_tf import search_space as ss
from autogan_tf.errors import ConfigError
from autogan_tf.nn.cells import CELL_OPS
from autogan_tf.nn.discriminator import DisBlock, Discriminator
from autogan_tf.nn.generators import (DerivedCell, DerivedGenerator, SearchCell, SharedGenerator,
                                   count_trainable_params, inherit_supernet_weights)

A = ss.REFERENCE_ARCHS["autogan_cifar10_a"]
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----- parameter counts against the reference implementation ------------------------------------
def test_reference_parameter_counts():
    assert count_trainable_params(DerivedGenerator(A, channels=256, bottom_width=4)) == 4_405_251
    assert count_trainable_params(DerivedGenerator(A, channels=256, bottom_width=6)) == 5_065_731
    assert count_trainable_params(Discriminator(128)) == 1_053_824
    assert count_trainable_params(Discriminator(64)) == 264_768
    assert count_trainable_params(SharedGenerator(channels=128)) == 3_716_995


def test_reference_macs():
    g = DerivedGenerator(A, channels=256)
    assert model_stats.generator_macs(g) == 1_765_015_552  # about 1.77 G as the reference


def test_folded_kernels_cut_the_computed_macs_by_the_counted_amount():
    # autogan_cifar10_a at gf 256 (c = 256 channels everywhere): per image, folding saves
    # cell0 (nearest 4->8):  conv1 8*8*9 c^2 -> 4 phases * 4*4 px * 4 taps c^2, shortcut 8*8 -> 4*4
    # cell1 (bilinear 8->16): shortcut and cell0's skip 1x1 convs at 16*16 -> 8*8 each
    # cell2 (nearest 16->32): conv1 32*32*9 -> 4*16*16*4, skips from cell0 (32*32 -> 8*8) and
    #                         cell1 (32*32 -> 16*16); no shortcut
    c2 = 256 * 256
    saved = ((8 * 8 * 9 - 4 * 4 * 4 * 4) + (64 - 16)  # cell0
             + 2 * (256 - 64)  # cell1
             + (1024 * 9 - 4 * 256 * 4) + (1024 - 64) + (1024 - 256)) * c2  # cell2
    g = DerivedGenerator(A, channels=256)
    assert model_stats.generator_macs(g, folded=True) == 1_765_015_552 - saved == 1_266_941_952
    # The discriminator (df 128, 32 px): c2 + pool of blocks 1 and 2 become stride-2 4x4 convs,
    # block 2's shortcut pools before its 1x1 conv.
    d = Discriminator(128)
    saved = ((32 * 32 * 9 - 16 * 16 * 16) + (16 * 16 * 9 - 8 * 8 * 16) + (256 - 64)) * 128 ** 2
    assert (model_stats.discriminator_macs(d, 32)
            - model_stats.discriminator_macs(d, 32, folded=True)) == saved


@pytest.mark.parametrize("shape,cout", [((2, 5, 7, 3), 4), ((1, 4, 4, 6), 6)])
def test_nearest_up_conv3x3_is_up_sampling_then_conv(shape, cout):
    x = tf.random.stateless_normal(shape, seed=[1, 1])
    k = tf.random.stateless_normal([3, 3, shape[-1], cout], seed=[2, 2])
    b = tf.random.stateless_normal([cout], seed=[3, 3])
    size = (2 * shape[1], 2 * shape[2])

    def plain(x, k):
        return tf.nn.bias_add(tf.nn.conv2d(L.resize_nearest(x, size), k, 1, "SAME"), b)

    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x, k])
        ours, ref = L.nearest_up_conv3x3(x, k, b), plain(x, k)
        # a loss that weighs every output pixel differently, so a wrong phase order shows
        w = tf.random.stateless_normal(ref.shape, seed=[4, 4])
        l_ours, l_ref = tf.reduce_sum(ours * w), tf.reduce_sum(ref * w)
    assert ours.shape == ref.shape == (shape[0], *size, cout)
    np.testing.assert_allclose(ours, ref, atol=1e-4)
    for g_ours, g_ref in zip(tape.gradient(l_ours, [x, k]), tape.gradient(l_ref, [x, k])):
        np.testing.assert_allclose(g_ours, g_ref, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("shape", [(2, 8, 8, 3), (1, 7, 9, 4)])
def test_conv3x3_avg_pool_is_conv_then_pool(shape):
    x = tf.random.stateless_normal(shape, seed=[5, 5])
    k = tf.random.stateless_normal([3, 3, shape[-1], 5], seed=[6, 6])

    def plain(x, k):
        return tf.nn.avg_pool2d(tf.nn.conv2d(x, k, 1, "SAME"), 2, 2, "VALID")

    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x, k])
        ours, ref = L.conv3x3_avg_pool(x, k), plain(x, k)
        w = tf.random.stateless_normal(ref.shape, seed=[7, 7])
        l_ours, l_ref = tf.reduce_sum(ours * w), tf.reduce_sum(ref * w)
    assert ours.shape == ref.shape == (shape[0], shape[1] // 2, shape[2] // 2, 5)
    np.testing.assert_allclose(ours, ref, atol=1e-4)
    for g_ours, g_ref in zip(tape.gradient(l_ours, [x, k]), tape.gradient(l_ref, [x, k])):
        np.testing.assert_allclose(g_ours, g_ref, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="folds a 3x3 kernel"):
        L.conv3x3_avg_pool(x, tf.zeros([1, 1, shape[-1], 5]))


@pytest.mark.parametrize("shape,kernel,stride,padding", [
    ((2, 6, 5, 3), 3, 1, "SAME"), ((2, 6, 5, 3), 1, 1, "SAME"), ((2, 5, 6, 3), 2, 1, "VALID"),
    ((2, 10, 10, 3), 4, 2, "VALID"), ((1, 9, 11, 2), 4, 2, "VALID"),  # rows past the last window
    ((1, 9, 9, 2), 3, 3, "VALID")])
def test_conv_gradients_are_tensorflows_without_its_input_gradient_kernel(
        shape, kernel, stride, padding, graph_op_types):
    x = tf.random.stateless_normal(shape, seed=[1, 3])
    k = tf.random.stateless_normal([kernel, kernel, shape[-1], 4], seed=[2, 3])

    def grads(x, k, rewrite):
        with tf.GradientTape() as tape:
            tape.watch([x, k])
            y = tf.nn.conv2d(x, k, stride, padding)
            loss = tf.reduce_sum(tf.sin(y) * tf.random.stateless_normal(y.shape, seed=[4, 3]))
        with L.conv_gradients() if rewrite else contextlib.nullcontext():
            return tape.gradient(loss, [x, k])

    ours = tf.function(lambda x, k: grads(x, k, True))
    for a, b in zip(ours(x, k), grads(x, k, False)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert "Conv2DBackpropInput" not in graph_op_types(ours.get_concrete_function(x, k))
    eager = grads(x, k, True)  # eager tapes look the gradient up too
    np.testing.assert_allclose(eager[0], grads(x, k, False)[0], rtol=1e-5, atol=1e-5)
    with L.unfolded():  # the plain graph: TensorFlow's own gradient
        native = tf.function(lambda x, k: grads(x, k, True))
        assert "Conv2DBackpropInput" in graph_op_types(native.get_concrete_function(x, k))


def test_conv_gradients_restore_the_registry_and_are_reentrant():
    from tensorflow.python.framework import ops as tf_ops
    native = tf_ops._gradient_registry.lookup("Conv2D")
    with L.conv_gradients():
        ours = tf_ops._gradient_registry.lookup("Conv2D")
        assert ours is not native
        with L.conv_gradients():
            assert tf_ops._gradient_registry.lookup("Conv2D") is ours
        assert tf_ops._gradient_registry.lookup("Conv2D") is ours
    assert tf_ops._gradient_registry.lookup("Conv2D") is native
    with pytest.raises(RuntimeError, match="inside"):
        with L.conv_gradients():
            raise RuntimeError("inside")
    assert tf_ops._gradient_registry.lookup("Conv2D") is native


# ----- the SN-GAN baseline ----------------------------------------------------------------------
def _sngan_params(gf, bw, latent=128):
    """SN-GAN's ResNet generator counted by hand (Miyato et al. 2018, CIFAR-10 at gf 256)."""
    bn = 2 * gf  # gamma and beta; the moving statistics are not trained
    conv3x3 = 9 * gf * gf + gf
    conv1x1 = gf * gf + gf
    block = bn + conv3x3 + bn + conv3x3 + conv1x1  # BN, conv, BN, conv; shortcut 1x1 conv
    linear = latent * bw * bw * gf + bw * bw * gf
    to_rgb = bn + 9 * gf * 3 + 3
    return linear + 3 * block + to_rgb


def test_sngan_parameter_count():
    g = DerivedGenerator("sngan", channels=256, bottom_width=4)
    assert count_trainable_params(g) == _sngan_params(256, 4) == 4_276_739


def test_sngan_generator_is_sngans_resnet_generator():
    keras.utils.set_random_seed(4)
    g = DerivedGenerator("sngan", latent_dim=8, channels=8, bottom_width=2)
    for cell in g.cells:
        kinds = {role: (type(layer).__name__, getattr(layer, "kernel_size", None))
                 for role, layer in cell.path_layers().items()}
        assert kinds == {
            ("block1", "norm"): ("BatchNormalization", None),
            ("block2", "norm"): ("BatchNormalization", None),
            ("block1", "conv"): ("Conv2D", (3, 3)),
            ("block2", "conv"): ("Conv2D", (3, 3)),
            ("shortcut", "conv"): ("Conv2D", (1, 1)),
        }
    assert [v.path for v in g.weights if "deconv" in v.path or "skip" in v.path] == []

    def up(x):  # nearest, x2
        return tf.repeat(tf.repeat(x, 2, axis=1), 2, axis=2)

    z = tf.random.stateless_normal([3, 8], seed=[4, 5])
    for training in (False, True):
        h = tf.reshape(g.l1(z), [-1, 2, 2, 8])
        for cell in g.cells:  # BN, ReLU, up, conv3x3, BN, ReLU, conv3x3 + conv1x1(up(x))
            r = cell.conv1(up(tf.nn.relu(cell.bn1(h, training=training))))
            r = cell.conv2(tf.nn.relu(cell.bn2(r, training=training)))
            h = r + cell.sc_conv(up(h))
        images = tf.tanh(g.to_rgb.conv(tf.nn.relu(g.to_rgb.bn(h, training=training))))
        np.testing.assert_allclose(g(z, training=training), images, atol=1e-5)


def test_arch_binary_takes_sngan():
    out = subprocess.run(
        [sys.executable, "-m", "autogan_tf.arch", "--arch=sngan", "--gf_dim=8", "--df_dim=8"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "cell0: pre-activation conv, norm=batch norm, up=nearest, shortcut=on"
    stats = json.loads(lines[-1])
    assert stats["arch"] == list(ss.REFERENCE_ARCHS["sngan"])
    assert stats["generator_params"] == _sngan_params(8, 4)
    # Each nearest cell at input size h: conv1 (36 -> 16 h^2 c^2) and the shortcut (4 -> 1).
    assert stats["generator_macs"] - stats["generator_macs_computed"] == \
        (20 + 3) * (4 ** 2 + 8 ** 2 + 16 ** 2) * 8 ** 2
    assert stats["discriminator_macs"] - stats["discriminator_macs_computed"] == \
        (5120 + 1280 + 192) * 8 ** 2


# ----- every op choice of every cell ---------------------------------------------------------------
def _single_token_variants():
    base = [1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 0, 1, 0, 3]
    seen = set()
    for c, toks in enumerate(ss.CELL_TOKENS):
        sl = ss.stage_slice(c)
        for i, tok in enumerate(toks):
            for v in range(tok.size):
                a = list(base)
                a[sl.start + i] = v
                if tuple(a) not in seen:
                    seen.add(tuple(a))
                    yield tuple(a)


VARIANTS = list(_single_token_variants())


def test_variants_cover_every_token_value():
    for c, toks in enumerate(ss.CELL_TOKENS):
        sl = ss.stage_slice(c)
        for i, tok in enumerate(toks):
            assert {a[sl.start + i] for a in VARIANTS} == set(range(tok.size))


@pytest.fixture(scope="module")
def tiny_supernet():
    keras.utils.set_random_seed(0)
    return SharedGenerator(latent_dim=8, channels=8, bottom_width=2)


@pytest.mark.parametrize("arch", VARIANTS, ids=lambda a: "".join(map(str, a)))
def test_derived_matches_supernet_path(arch, tiny_supernet):
    """Every op choice: shapes, range, and the supernet's branch equals the derived cell."""
    z = tf.random.stateless_normal([3, 8], seed=[1, 2])
    derived = DerivedGenerator(arch, latent_dim=8, channels=8, bottom_width=2)
    inherit_supernet_weights(tiny_supernet, derived)
    for training in (False, True):
        a = tiny_supernet(z, tf.constant(arch), training=training).numpy()
        b = derived(z, training=training).numpy()
        assert a.shape == b.shape == (3, 16, 16, 3)
        assert np.all(np.abs(a) <= 1.0)
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert count_trainable_params(derived) < count_trainable_params(tiny_supernet)
    # The folded forms (nearest up + conv, 1x1 convs before a resize) compute the same images
    # as the plain op order, in training (batch statistics) and inference.
    with L.unfolded():
        for training in (False, True):
            a = tiny_supernet(z, tf.constant(arch), training=training).numpy()
            np.testing.assert_allclose(a, derived(z, training=training).numpy(), atol=1e-5)
            with L.unfolded():  # re-entrant
                assert not L.folding()
            assert not L.folding()
    assert L.folding()


def test_folded_and_plain_graphs_give_the_same_gradients():
    # A GAN loss through generator and discriminator, folded and plain: same gradient of
    # every weight (the folded kernels are functions of the same variables).
    z = tf.random.stateless_normal([4, 8], seed=[8, 8])
    real = tf.random.stateless_uniform([4, 16, 16, 3], seed=[9, 9], minval=-1, maxval=1)
    grads = []
    for folded in (True, False):
        keras.utils.set_random_seed(4)
        g = DerivedGenerator(A, latent_dim=8, channels=8, bottom_width=2)
        d = Discriminator(8, input_resolution=16)
        with L.unfolded() if not folded else tf.name_scope("folded"):
            with tf.GradientTape() as tape:
                loss = (tf.reduce_mean(d(g(z, training=True), training=True))
                        - tf.reduce_mean(d(real, training=True)))
        weights = g.trainable_weights + d.trainable_weights
        grads.append(tape.gradient(loss, weights))
    assert len(grads[0]) == len(weights) and all(x is not None for x in grads[0])
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


def test_supernet_stages_grow_resolution(tiny_supernet):
    z = tf.zeros([2, 8])
    for stage, res in [(0, 4), (1, 8), (2, 16)]:
        tiny_supernet.set_stage(stage)
        assert tiny_supernet.output_resolution == res
        assert tiny_supernet(z, tf.constant(A)).shape == (2, res, res, 3)
    with pytest.raises(ValueError, match="stage must be in"):
        tiny_supernet.set_stage(3)


# ----- reference behaviour ---------------------------------------------------------------------
def test_skip_output_is_taken_after_skip_additions():
    keras.utils.set_random_seed(1)
    cell = DerivedCell(4, 1, (1, 0, 1, 0, 1))  # pre-act, no norm, nearest, no shortcut, skip
    cell.build((None, 4, 4, 4))
    x = tf.random.normal([2, 4, 4, 4])
    f = tf.random.normal([2, 4, 4, 4])  # cell0's skip output at 8 px -> here 4 px input is 2x
    skip_out, out = cell(x, skips=(f,))
    h1 = cell.conv1(L.resize_nearest(tf.nn.relu(x), (8, 8)))
    expected_skip = h1 + cell.skip_convs[0](L.resize_nearest(f, (8, 8)))
    np.testing.assert_allclose(skip_out, expected_skip, atol=1e-5)
    np.testing.assert_allclose(out, cell.conv2(tf.nn.relu(expected_skip)), atol=1e-5)


def test_shortcut_adds_conv1x1_of_upsampled_input():
    keras.utils.set_random_seed(2)
    cell = DerivedCell(4, 0, (0, 1, 0, 1))  # post-act, BN, bilinear, shortcut
    cell.build((None, 4, 4, 4))
    x = tf.random.normal([3, 4, 4, 4])
    _, out = cell(x, training=True)
    up = L.resize_bilinear(x, (8, 8))
    h = tf.nn.relu(cell.bn1(cell.conv1(up), training=True))
    main = tf.nn.relu(cell.bn2(cell.conv2(h), training=True))
    np.testing.assert_allclose(out, main + cell.sc_conv(up), atol=1e-4)


def test_up_modes_golden_values():
    x = tf.reshape(tf.constant([0.0, 1.0, 2.0, 3.0]), [1, 2, 2, 1])
    near = L.resize_nearest(x, (4, 4))[0, ..., 0].numpy()
    np.testing.assert_array_equal(near, np.repeat(np.repeat([[0, 1], [2, 3]], 2, 0), 2, 1))
    bil = L.resize_bilinear(x, (4, 4))[0, ..., 0].numpy()
    # PyTorch F.interpolate(scale_factor=2, mode='bilinear', align_corners=False)
    np.testing.assert_allclose(bil[0], [0.0, 0.25, 0.75, 1.0], atol=1e-6)
    np.testing.assert_allclose(bil[:, 0], [0.0, 0.5, 1.5, 2.0], atol=1e-6)
    # 4x skip up-sampling is one resize to the target size, not two 2x steps
    bil4 = L.resize_bilinear(x, (8, 8))[0, ..., 0].numpy()
    np.testing.assert_allclose(bil4[0, :3], [0.0, 0.0, 0.125], atol=1e-6)
    # The op table's up ops: the same resizes, and one deconvolution per doubling.
    up = {name: op for name, op in zip(ss.UP.options, CELL_OPS.up)}
    np.testing.assert_array_equal(up["nearest"].apply(x, 2, [])[0, ..., 0], near)
    np.testing.assert_array_equal(up["bilinear"].apply(x, 4, [])[0, ..., 0], bil4)
    d = [L.deconv2x2(5, "d"), L.deconv2x2(5, "e")]
    assert up["deconv"].apply(x, 4, d).shape == (1, 8, 8, 5)
    with pytest.raises(ConfigError, match="2 up-sampling layers cannot up-sample by 2"):
        up["deconv"].apply(x, 2, d)


def test_instance_norm_has_zero_mean_unit_variance_per_sample_and_channel():
    x = tf.random.normal([3, 5, 5, 4]) * 7.0 + 3.0
    y = L.instance_norm(x).numpy()
    np.testing.assert_allclose(y.mean(axis=(1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(1, 2)), 1.0, atol=1e-3)


def test_spectral_norm_converges_to_unit_largest_singular_value():
    keras.utils.set_random_seed(3)
    layer = L.SNConv2D(6, 3)
    layer.build((None, 5, 5, 4))
    x = tf.zeros([1, 5, 5, 4])
    for _ in range(60):
        layer(x, training=True)
    w = layer._normalized_kernel(False).numpy().reshape(-1, 6)
    assert abs(np.linalg.svd(w, compute_uv=False)[0] - 1.0) < 1e-3
    u_before = layer.u.numpy().copy()
    layer(x, training=False)  # evaluation does not run the power iteration
    np.testing.assert_array_equal(u_before, layer.u.numpy())


def test_discriminator_grows_with_stage():
    d = Discriminator(8, stage=0, input_resolution=32)
    n = count_trainable_params(d)
    for stage, res in [(0, 8), (1, 16), (2, 32)]:
        d.set_stage(stage)
        out = d(tf.random.normal([2, res, res, 3]), training=True)
        assert out.shape == (2, 1) and out.dtype == tf.float32
    assert count_trainable_params(d) == n


@pytest.mark.parametrize("optimized,downsample,cin", [(True, True, 3), (False, True, 8),
                                                     (False, False, 8), (False, False, 4)])
def test_discriminator_block_is_the_sngan_residual_block(optimized, downsample, cin):
    # Written out as SN-GAN does (bias inside c2, pool after it); the block adds c2's bias on
    # the shortcut instead, which must give the same sum.
    b = DisBlock(8, downsample=downsample, optimized=optimized)
    x = tf.random.stateless_normal([2, 8, 8, cin], seed=[1, 2])
    b.build(x.shape)
    for conv in (b.c1, b.c2, b.c_sc):
        if conv is not None:
            conv.bias.assign(tf.random.stateless_normal(conv.bias.shape, seed=[3, 4]))
    pool = lambda t: tf.nn.avg_pool2d(t, 2, 2, "VALID")  # noqa: E731
    h = x if optimized else tf.nn.relu(x)
    h = b.c2(tf.nn.relu(b.c1(h)))
    if downsample:
        h = pool(h)
    if optimized:
        sc = b.c_sc(pool(x))
    elif b.c_sc is not None:
        sc = b.c_sc(x)
        sc = pool(sc) if downsample else sc
    else:
        sc = x
    np.testing.assert_allclose(b(x).numpy(), (h + sc).numpy(), rtol=1e-5, atol=1e-5)


# ----- serialisation ---------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda: DerivedGenerator(A, latent_dim=8, channels=8, bottom_width=2),
    lambda: SharedGenerator(latent_dim=8, channels=8, bottom_width=2, stage=1),
    lambda: Discriminator(8, stage=1, input_resolution=16),
], ids=["derived", "shared", "discriminator"])
def test_model_serialisation_round_trip(make):
    model = make()
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    assert type(clone) is type(model)
    assert clone.get_config() == model.get_config()
    assert count_trainable_params(clone) == count_trainable_params(model)
    clone.set_weights(model.get_weights())
    if isinstance(model, Discriminator):
        x = tf.random.normal([2, 16, 16, 3])
        np.testing.assert_allclose(clone(x), model(x), atol=1e-6)
    else:
        z = tf.random.normal([2, 8])
        args = (tf.constant(A),) if isinstance(model, SharedGenerator) else ()
        np.testing.assert_allclose(clone(z, *args), model(z, *args), atol=1e-6)


@pytest.mark.parametrize("layer", [
    SearchCell(8, 2), DerivedCell(8, 2, (0, 2, 2, 1, 3)), L.SNConv2D(4, 1, use_bias=False),
    L.SNDense(1)], ids=["search_cell", "derived_cell", "sn_conv", "sn_dense"])
def test_layer_config_round_trip(layer):
    clone = layer.__class__.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_mixed_precision_policy_keeps_float32_variables_and_outputs():
    g = DerivedGenerator(A, latent_dim=8, channels=8, bottom_width=2, dtype="mixed_bfloat16")
    assert all(v.dtype == "float32" for v in g.weights)
    out = g(tf.random.normal([2, 8]))
    assert out.dtype == tf.float32 and out.shape == (2, 16, 16, 3)
    assert g.cells[0].conv1.compute_dtype == "bfloat16"


@pytest.mark.parametrize("make", [
    lambda: DerivedGenerator((0, 1, 2, 1, 1, 1, 2, 1, 1, 0, 2, 2, 1, 3), latent_dim=8,
                             channels=8, bottom_width=2),
    lambda: SharedGenerator(latent_dim=8, channels=8, bottom_width=2),
    lambda: Discriminator(8, input_resolution=16),
], ids=["derived", "shared", "discriminator"])
def test_checkpoint_round_trip_restores_every_weight(make, tmp_path):
    keras.utils.set_random_seed(10)
    model = make()
    path = tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt"))
    keras.utils.set_random_seed(11)
    other = make()
    assert any(not np.array_equal(a.numpy(), b.numpy())
               for a, b in zip(model.weights, other.weights))
    tf.train.Checkpoint(model=other).read(path).assert_consumed()
    assert len(tf.train.list_variables(path)) - 1 == len(model.weights)
    for a, b in zip(model.weights, other.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_derived_cell_sums_equal_the_plain_sum_of_biased_convs(monkeypatch):
    # The cells add the skip and shortcut convs' biases after the sum (for Grappler's
    # remapper); written as h + conv(x) with each bias inside, the images must be the same.
    from autogan_tf.nn import cells

    keras.utils.set_random_seed(3)
    g = DerivedGenerator("autogan_cifar10_a", latent_dim=8, channels=8, bottom_width=2)
    z = tf.random.stateless_normal([3, 8], seed=[5, 6])
    g(z)
    for i, w in enumerate(g.weights):
        if w.path.endswith("bias"):
            w.assign(tf.random.stateless_normal(w.shape, seed=[7, i]) * 0.3)
    ours = g(z, training=True).numpy()

    def plain(h, terms):
        for conv, term in terms:
            h = h + tf.nn.bias_add(term(conv), conv.bias)
        return h

    monkeypatch.setattr(cells, "_add_convs", plain)
    np.testing.assert_allclose(ours, g(z, training=True).numpy(), atol=2e-6)


_REMAPPER_PROBE = """
import tensorflow as tf
from autogan_tf.nn.discriminator import Discriminator
from autogan_tf.nn.generators import DerivedGenerator
from autogan_tf.training.gan import GANConfig, GANTrainer
a = "autogan_cifar10_a"
make = lambda: DerivedGenerator(a, latent_dim=8, channels=8)
t = GANTrainer(make(), Discriminator(8), GANConfig(latent_dim=8, d_batch_size=4, g_batch_size=4,
               n_critic=2, ema_decay=0.9), ema_generator=make())
t.train_iteration([tf.zeros([4, 32, 32, 3])] * 2)
print("ok")
"""


def test_training_steps_keep_grapplers_remapper_pass():
    # A failing remapper pass logs "remapper failed: ... Mutation::Apply error" (C++ log) and
    # drops every fusion of the step; the derived generator's cell sums once caused it.
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = subprocess.run([sys.executable, "-c", _REMAPPER_PROBE], cwd=repo, capture_output=True,
                       text=True, timeout=600,
                       env=dict(os.environ, PYTHONPATH=repo, TF_CPP_MIN_LOG_LEVEL="0"))
    assert p.returncode == 0 and "ok" in p.stdout, p.stderr[-2000:]
    assert "remapper failed" not in p.stderr, [ln for ln in p.stderr.splitlines()
                                               if "remapper" in ln]


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_fused_batch_norm_is_keras_batch_norm(dtype):
    # apply_batch_norm trains with TensorFlow's fused kernel: the same output, gradients and
    # moving statistics (biased variance, as Keras) as the Keras layer's own call.
    x = tf.random.stateless_normal([8, 6, 6, 5], seed=[1, 2]) * 3 + 1
    ours, keras_bn = L.batch_norm("ours", dtype), L.batch_norm("keras", dtype)
    for layer in (ours, keras_bn):
        layer.build(x.shape)
        layer.gamma.assign(tf.random.stateless_normal([5], seed=[3, 3]))
        layer.beta.assign(tf.random.stateless_normal([5], seed=[4, 4]))
        layer.moving_variance.assign(tf.fill([5], 2.0))
    x = tf.cast(x, ours.compute_dtype)  # as a cell passes it (Keras would cast it so too)
    w = tf.random.stateless_normal(x.shape, seed=[5, 5])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y_ours = L.apply_batch_norm(ours, x, training=True)
        y_keras = keras_bn(x, training=True)
        l_ours = tf.reduce_sum(tf.cast(y_ours, tf.float32) * w)
        l_keras = tf.reduce_sum(tf.cast(y_keras, tf.float32) * w)
    assert y_ours.dtype == y_keras.dtype
    tol = 1e-5 if dtype == "float32" else 2e-2
    np.testing.assert_allclose(tf.cast(y_ours, tf.float32), tf.cast(y_keras, tf.float32),
                               atol=tol)
    for a, b in zip(tape.gradient(l_ours, [x, ours.gamma, ours.beta]),
                    tape.gradient(l_keras, [x, keras_bn.gamma, keras_bn.beta])):
        np.testing.assert_allclose(tf.cast(a, tf.float32), tf.cast(b, tf.float32), rtol=tol,
                                   atol=tol * 10)
    _, biased = tf.nn.moments(tf.cast(x, tf.float32), [0, 1, 2])
    np.testing.assert_allclose(ours.moving_variance, 0.9 * 2.0 + 0.1 * biased, rtol=1e-5)
    np.testing.assert_allclose(ours.moving_mean, keras_bn.moving_mean, atol=1e-6)
    np.testing.assert_allclose(ours.moving_variance, keras_bn.moving_variance, rtol=1e-5)
