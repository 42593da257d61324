"""Tests for the SavedModel export (export_lib), its binary and the TF Serving client."""

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from autogan_tf import errors, images, sampling
from autogan_tf.serving import export_lib
from autogan_tf import search_space as ss
from autogan_tf.training import train_lib
from autogan_tf.nn.generators import DerivedGenerator

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LATENT_DIM = 8
RESOLUTION = 16
SEED = 7
NUM_IMAGES = 3
ARCH = "autogan_cifar10_a"


def _tiny_generator(**kwargs):
    return DerivedGenerator(ARCH, latent_dim=LATENT_DIM, channels=8, bottom_width=2, **kwargs)


def _env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _run(args, **kwargs):
    return subprocess.run(args, capture_output=True, text=True, env=_env(), cwd=REPO,
                          timeout=300, check=False, **kwargs)


def _tree_digest(path):
    """Maps each file under ``path`` to the sha256 of its bytes."""
    digest = {}
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                digest[os.path.relpath(full, path)] = hashlib.sha256(f.read()).hexdigest()
    return digest


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny generator exported once as version 1, with reference outputs computed in memory."""
    tmp = tmp_path_factory.mktemp("export")
    generator = _tiny_generator()
    latents = np.random.default_rng(0).standard_normal((4, LATENT_DIM)).astype(np.float32)
    reference = generator(latents, training=False).numpy()
    seeded = sampling.latents(SEED, 0, NUM_IMAGES, LATENT_DIM)
    generated = images.to_uint8(generator(seeded, training=False)).numpy()
    base = str(tmp / "base")
    path = export_lib.export_generator(generator, base)
    np.save(tmp / "latents.npy", latents)
    return {"tmp": tmp, "generator": generator, "base": base, "path": path, "latents": latents,
            "reference": reference, "generated": generated}


_LOAD_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    model_dir, latents_path, out_path = sys.argv[1:]
    loaded = tf.saved_model.load(model_dir)
    out = {}
    specs = {}
    for name, fn in loaded.signatures.items():
        _, inputs = fn.structured_input_signature
        specs[name] = {
            "inputs": {k: [v.dtype.name, v.shape.as_list()] for k, v in inputs.items()},
            "outputs": {k: [v.dtype.name, v.shape.as_list()]
                        for k, v in fn.structured_outputs.items()},
        }
    serve = loaded.signatures["serving_default"]
    gen = loaded.signatures["generate"]
    out["serve"] = serve(latent=tf.constant(np.load(latents_path)))["images"].numpy()
    args = dict(seed=tf.constant(7, tf.int64), num_images=tf.constant(3, tf.int32))
    out["gen_a"] = gen(**args)["images"].numpy()
    out["gen_b"] = gen(**args)["images"].numpy()
    asset = loaded.arch_json.asset_path.numpy().decode()
    np.savez(out_path, **out)
    print(json.dumps({"specs": specs, "asset": asset, "asset_text": open(asset).read(),
                      "latent_dim": int(loaded.latent_dim.numpy()),
                      "output_resolution": int(loaded.output_resolution.numpy())}))
""")


@pytest.fixture(scope="module")
def fresh_load(exported):
    """Loads the export in a new Python process and returns what it computed."""
    out_path = str(exported["tmp"] / "fresh.npz")
    proc = _run([sys.executable, "-c", _LOAD_SCRIPT, exported["path"],
                 str(exported["tmp"] / "latents.npy"), out_path])
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    arrays = dict(np.load(out_path))
    return info, arrays


def test_fresh_process_serving_default_matches_in_memory(exported, fresh_load):
    _, arrays = fresh_load
    assert arrays["serve"].dtype == np.float32
    assert arrays["serve"].shape == (4, RESOLUTION, RESOLUTION, 3)
    np.testing.assert_allclose(arrays["serve"], exported["reference"], atol=1e-5)
    assert np.abs(arrays["serve"]).max() <= 1.0


def test_fresh_process_generate_is_seeded_and_matches_in_memory(exported, fresh_load):
    _, arrays = fresh_load
    assert arrays["gen_a"].dtype == np.uint8
    assert arrays["gen_a"].shape == (NUM_IMAGES, RESOLUTION, RESOLUTION, 3)
    np.testing.assert_array_equal(arrays["gen_a"], arrays["gen_b"])
    diff = np.abs(arrays["gen_a"].astype(int) - exported["generated"].astype(int))
    assert diff.max() <= 1  # float rounding at a uint8 boundary at most
    assert arrays["gen_a"].std() > 0  # not a constant image


def test_signatures_have_documented_dtypes_and_shapes(fresh_load):
    info, _ = fresh_load
    specs = info["specs"]
    assert specs["serving_default"] == {
        "inputs": {"latent": ["float32", [None, LATENT_DIM]]},
        "outputs": {"images": ["float32", [None, RESOLUTION, RESOLUTION, 3]]},
    }
    assert specs["generate"] == {
        "inputs": {"seed": ["int64", []], "num_images": ["int32", []]},
        "outputs": {"images": ["uint8", [None, RESOLUTION, RESOLUTION, 3]]},
    }
    assert info["latent_dim"] == LATENT_DIM
    assert info["output_resolution"] == RESOLUTION


def test_arch_asset_round_trips(exported, fresh_load):
    info, _ = fresh_load
    assert info["asset"].endswith(os.path.join("1", "assets", export_lib.ARCH_ASSET))
    arch = exported["generator"].arch
    assert ss.Architecture.from_json(info["asset_text"]) == arch
    assert export_lib.load_architecture(exported["base"]) == arch
    assert export_lib.load_architecture(exported["path"]) == arch
    meta = export_lib.read_export_metadata(exported["path"])
    assert (meta["latent_dim"], meta["output_resolution"]) == (LATENT_DIM, RESOLUTION)


@pytest.mark.slow
def test_saved_model_cli_run_matches_in_memory(exported):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    out_dir = exported["tmp"] / "cli"
    show = _run([cli, "show", "--dir", exported["path"], "--all"])
    assert show.returncode == 0, show.stderr[-2000:]
    assert "signature_def['generate']" in show.stdout and "DT_UINT8" in show.stdout
    serve = _run([cli, "run", "--dir", exported["path"], "--tag_set", "serve",
                  "--signature_def", "serving_default", "--outdir", str(out_dir / "serve"),
                  "--inputs", f"latent={exported['tmp'] / 'latents.npy'}"])
    assert serve.returncode == 0, serve.stderr[-2000:]
    np.testing.assert_allclose(np.load(out_dir / "serve" / "images.npy"), exported["reference"],
                               atol=1e-5)
    gen = _run([cli, "run", "--dir", exported["path"], "--tag_set", "serve",
                "--signature_def", "generate", "--outdir", str(out_dir / "gen"),
                "--input_exprs", f"seed={SEED};num_images={NUM_IMAGES}"])
    assert gen.returncode == 0, gen.stderr[-2000:]
    images = np.load(out_dir / "gen" / "images.npy")
    assert images.dtype == np.uint8
    assert np.abs(images.astype(int) - exported["generated"].astype(int)).max() <= 1


def test_versions_increment_and_existing_version_is_left_untouched(exported, tmp_path):
    base = str(tmp_path / "model")
    generator = exported["generator"]
    assert export_lib.export_generator(generator, base) == os.path.join(base, "1")
    assert export_lib.export_generator(generator, base) == os.path.join(base, "2")
    assert export_lib.existing_versions(base) == [1, 2]
    before = _tree_digest(os.path.join(base, "1"))
    with pytest.raises(export_lib.ExportError, match="already exists"):
        export_lib.export_generator(generator, base, version=1)
    assert _tree_digest(os.path.join(base, "1")) == before
    assert sorted(os.listdir(base)) == ["1", "2"]  # no temporary directory left behind
    assert export_lib.export_generator(generator, base, version=5) == os.path.join(base, "5")
    assert export_lib.latest_version_dir(base) == os.path.join(base, "5")
    with pytest.raises(export_lib.ExportError, match="positive"):
        export_lib.export_generator(generator, base, version=0)


def test_failed_write_leaves_no_version(exported, tmp_path, monkeypatch):
    base = str(tmp_path / "model")

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(export_lib.tf.saved_model, "save", broken_save)
    with pytest.raises(export_lib.ExportError, match="disk full"):
        export_lib.export_generator(exported["generator"], base)
    assert os.listdir(base) == []
    assert export_lib.existing_versions(base) == []


def test_mixed_precision_generator_exports_float32(tmp_path):
    generator = _tiny_generator(dtype="mixed_bfloat16")
    path = export_lib.export_generator(generator, str(tmp_path / "bf16"))
    dtypes = tf.train.load_checkpoint(
        os.path.join(path, "variables", "variables")).get_variable_to_dtype_map()
    model_dtypes = {d for name, d in dtypes.items() if name.startswith("model_variables")}
    assert model_dtypes == {tf.float32}
    loaded = tf.saved_model.load(path)
    images = loaded.signatures["serving_default"](latent=tf.zeros([2, LATENT_DIM]))["images"]
    assert images.dtype == tf.float32 and images.shape == (2, RESOLUTION, RESOLUTION, 3)
    uint8 = loaded.signatures["generate"](seed=tf.constant(1, tf.int64),
                                          num_images=tf.constant(2))["images"]
    assert uint8.dtype == tf.uint8 and uint8.shape == (2, RESOLUTION, RESOLUTION, 3)


def test_generate_rejects_too_many_images(exported):
    loaded = tf.saved_model.load(exported["path"])
    with pytest.raises(tf.errors.InvalidArgumentError, match="at most 1024"):
        loaded.signatures["generate"](seed=tf.constant(1, tf.int64),
                                      num_images=tf.constant(1025))


def test_generate_signature_latents_are_the_sampler_sequence():
    """`generate(seed, n)` serves the first n latents of seed's sequence; they must not change."""
    a = sampling.latents(3, 0, 4, 5).numpy()
    b = sampling.latents(tf.constant(3, tf.int64), 0, tf.constant(4), 5).numpy()
    c = sampling.latents(4, 0, 4, 5).numpy()
    np.testing.assert_array_equal(a, b)
    assert a.shape == (4, 5) and not np.allclose(a, c)
    # Golden Philox values (the 0.1 exports' draw): a change of algorithm or key layout would
    # change every seed's images.
    np.testing.assert_allclose(sampling.latents(7, 0, 1, 4).numpy(),
                               [[-0.6741728, -0.3586926, -1.8795817, -1.4728931]], atol=1e-6)
    sampler = sampling.LatentSampler(lambda z: z, 5, seed=3, batch_size=100)
    np.testing.assert_array_equal(sampler(4).numpy(), a)  # What evaluate scores for seed 3.


def test_non_finite_generator_is_never_exported(tmp_path):
    generator = _tiny_generator()
    weight = generator.variables[0]
    weight.assign(np.where(np.arange(weight.shape[-1]) == 1, np.nan,
                           weight.numpy()).astype(np.float32))
    base = tmp_path / "nan"
    with pytest.raises(errors.NonFiniteError,
                       match=r"NaN or Inf in 1 of its \d+ weight tensors .*nothing was written"):
        export_lib.export_generator(generator, str(base))
    assert not base.exists()


def test_export_base_that_is_a_file_is_refused(exported, tmp_path):
    (tmp_path / "file").write_text("keep me")
    for base, match in [(tmp_path / "file", r"file is a file, not a directory; nothing"),
                        (tmp_path / "file" / "x", r"file is a file, not a directory \(in ")]:
        with pytest.raises(export_lib.ExportError, match=match):
            export_lib.export_generator(exported["generator"], str(base))
    assert (tmp_path / "file").read_text() == "keep me"
    assert sorted(os.listdir(tmp_path)) == ["file"]


def test_latest_version_dir_and_load_exported_generator(exported, tmp_path):
    with pytest.raises(export_lib.ExportError, match="No such SavedModel directory or export"):
        export_lib.latest_version_dir(str(tmp_path / "none"))
    (tmp_path / "empty" / "3").mkdir(parents=True)  # A version folder without saved_model.pb.
    with pytest.raises(export_lib.ExportError, match="neither a SavedModel"):
        export_lib.latest_version_dir(str(tmp_path / "empty"))
    loaded = export_lib.load_exported_generator(exported["base"])
    assert loaded.model_dir == exported["path"] and loaded.latent_dim == LATENT_DIM
    out = loaded.generate(tf.constant(exported["latents"]))
    assert out.dtype == tf.float32
    np.testing.assert_allclose(out.numpy(), exported["reference"], atol=1e-5)


class _TwoInputs(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32),
                                  tf.TensorSpec([None], tf.int32)])
    def serve(self, a, b):
        return {"images": a + tf.cast(b, tf.float32)[:, None]}


class _TwoOutputs(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="latent")])
    def serve(self, latent):
        return {"a": latent, "b": latent}


@pytest.mark.parametrize("module, match", [
    (_TwoInputs(), r"must take one input 'latent', takes \['a', 'b'\]"),
    (_TwoOutputs(), r"must return 'images' \(or one output\), returns \['a', 'b'\]"),
])
def test_load_exported_generator_refuses_other_signatures(tmp_path, module, match):
    tf.saved_model.save(module, str(tmp_path / "m"), signatures={"serving_default": module.serve})
    with pytest.raises(export_lib.ExportError, match=match):
        export_lib.load_exported_generator(str(tmp_path / "m"))


# ----------------------------------------------------------------------------- binary

_BINARY_DRIVER = textwrap.dedent("""
    import runpy, sys, types
    import autogan_tf
    from autogan_tf.nn.generators import DerivedGenerator

    from autogan_tf.errors import CheckpointError

    def load_generator_from_checkpoint(path):
        if path not in ("GOOD", "NAN"):
            raise CheckpointError(f"no checkpoint found at {path}")
        gen = DerivedGenerator("autogan_cifar10_a", latent_dim=8, channels=8, bottom_width=2)
        if path == "NAN":  # A diverged run.
            gen.variables[0].assign(gen.variables[0] * float("nan"))
        return gen, {"step": 5}

    fake = types.ModuleType("autogan_tf.training.train_lib")
    fake.CheckpointError = CheckpointError
    fake.load_generator_from_checkpoint = load_generator_from_checkpoint
    import autogan_tf.training
    sys.modules["autogan_tf.training.train_lib"] = fake
    autogan_tf.training.train_lib = fake
    sys.argv = ["export"] + sys.argv[1:]
    runpy.run_module("autogan_tf.export", run_name="__main__")
""")


def _run_binary(*args):
    return _run([sys.executable, "-c", _BINARY_DRIVER, *args])


def test_export_binary_writes_a_version(tmp_path):
    export_dir = str(tmp_path / "export" / "tiny")
    proc = _run_binary("--checkpoint=GOOD", f"--export_dir={export_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    path = os.path.join(export_dir, "1")
    assert f"Exported SavedModel: {path}" in proc.stdout
    assert f"saved_model_cli show --dir {path} --all" in proc.stdout
    meta = export_lib.read_export_metadata(export_dir)
    assert meta["arch"] == list(ss.REFERENCE_ARCHS[ARCH])
    assert meta["metadata"] == {"checkpoint": os.path.join(REPO, "GOOD"), "step": 5}


@pytest.mark.parametrize("case", ["existing_version", "bad_checkpoint", "export_dir_is_a_file",
                                  "non_finite_generator"])
def test_export_binary_errors_exit_cleanly(tmp_path, case):
    export_dir = tmp_path / "export" / "tiny"
    if case == "existing_version":
        (export_dir / "1").mkdir(parents=True)
        (export_dir / "1" / "saved_model.pb").write_bytes(b"old")
        proc = _run_binary("--checkpoint=GOOD", f"--export_dir={export_dir}", "--version=1")
        message = f"{export_dir / '1'} already exists; nothing was written"
        assert (export_dir / "1" / "saved_model.pb").read_bytes() == b"old"
        assert os.listdir(export_dir) == ["1"]
    elif case == "bad_checkpoint":
        proc = _run_binary("--checkpoint=/no/such/run", f"--export_dir={export_dir}")
        message = "no checkpoint found at /no/such/run"
        assert not export_dir.exists()
    elif case == "export_dir_is_a_file":
        export_dir.parent.mkdir()
        export_dir.write_text("keep me")
        proc = _run_binary("--checkpoint=GOOD", f"--export_dir={export_dir}")
        message = f"{export_dir} is a file, not a directory; nothing was written"
        assert export_dir.read_text() == "keep me"
    else:
        proc = _run_binary("--checkpoint=NAN", f"--export_dir={export_dir}")
        message = "The generator has NaN or Inf in 1 of its"
        assert not export_dir.exists()
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"export: error: {message}") or (
        f"\nexport: error: {message}" in proc.stderr), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_export_binary_with_real_loader(tmp_path, tiny_train_run):
    """Exports a real training run's EMA generator with every option; a missing run exits 1
    writing nothing."""
    run_dir, cfg = tiny_train_run
    export_dir = tmp_path / "export"
    proc = _run([sys.executable, "-m", "autogan_tf.export", f"--checkpoint={run_dir}",
                 f"--export_dir={export_dir}", "--version=3", "--max_num_images=4"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"Exported SavedModel: {export_dir / '3'}" in proc.stdout
    assert os.listdir(export_dir) == ["3"]
    meta = export_lib.read_export_metadata(str(export_dir))
    assert meta["arch"] == list(cfg.arch)
    assert meta["metadata"]["kind"] == "best"
    assert meta["metadata"]["checkpoint"] == os.path.join(run_dir, "best", "ema_generator")
    generator, _ = train_lib.load_generator_from_checkpoint(run_dir)
    latents = sampling.latents(SEED, 0, NUM_IMAGES, cfg.gan.latent_dim)
    loaded = tf.saved_model.load(str(export_dir / "3"))
    serve = loaded.signatures["serving_default"]
    np.testing.assert_allclose(serve(latent=latents)["images"].numpy(),
                               generator(latents, training=False).numpy(), atol=1e-5)
    generate = loaded.signatures["generate"]
    four = generate(seed=tf.constant(SEED, tf.int64), num_images=tf.constant(4))["images"]
    expected = images.to_uint8(generator(sampling.latents(SEED, 0, 4, cfg.gan.latent_dim),
                                         training=False)).numpy()
    assert np.abs(four.numpy().astype(int) - expected.astype(int)).max() <= 1
    with pytest.raises(tf.errors.InvalidArgumentError, match="num_images must be at most 4"):
        generate(seed=tf.constant(SEED, tf.int64), num_images=tf.constant(5))

    proc = _run([sys.executable, "-m", "autogan_tf.export", f"--checkpoint={tmp_path / 'none'}",
                 f"--export_dir={tmp_path / 'out'}"])
    assert proc.returncode == 1
    assert "export: error:" in proc.stderr and "Traceback" not in proc.stderr
    assert not os.path.exists(tmp_path / "out" / "1")


# ----------------------------------------------------------------------------- client


@pytest.fixture(scope="module")
def client():
    spec = importlib.util.spec_from_file_location(
        "autogan_export_client", os.path.join(REPO, "export", "client.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rest_request_bodies(client):
    latents = np.arange(6, dtype=np.float32).reshape(2, 3) / 4
    body = client.build_rest_request("serving_default", latents=latents)
    assert body == {"signature_name": "serving_default",
                    "instances": [{"latent": [0.0, 0.25, 0.5]}, {"latent": [0.75, 1.0, 1.25]}]}
    bare = client.build_rest_request("serving_default", latents=latents, named_instances=False)
    assert bare["instances"] == [[0.0, 0.25, 0.5], [0.75, 1.0, 1.25]]
    gen = client.build_rest_request("generate", seed=7, num_images=4)
    assert gen == {"signature_name": "generate", "inputs": {"seed": 7, "num_images": 4}}
    json.dumps(gen)  # JSON-able as sent
    with pytest.raises(client.ClientError, match="generate needs seed and num_images"):
        client.build_rest_request("generate", seed=7)
    with pytest.raises(client.ClientError, match=r"latents must be \[N, latent_dim\], got shape"):
        client.build_rest_request("serving_default", latents=np.zeros(3))
    assert (client.rest_url("localhost", 8501, "autogan")
            == "http://localhost:8501/v1/models/autogan:predict")
    assert (client.rest_url("h", 1, "m", 3) == "http://h:1/v1/models/m/versions/3:predict")


def test_rest_response_parsing(client, rng):
    images = rng.uniform(-1, 1, size=(2, 4, 4, 3)).astype(np.float32)
    rows = {"predictions": images.tolist()}
    np.testing.assert_allclose(client.parse_rest_response(json.dumps(rows), "serving_default"),
                               images, rtol=1e-6)
    named_rows = {"predictions": [{"images": im} for im in images.tolist()]}
    np.testing.assert_allclose(client.parse_rest_response(named_rows, "serving_default"), images,
                               rtol=1e-6)
    uint8 = rng.integers(0, 256, size=(3, 4, 4, 3)).astype(np.uint8)
    parsed = client.parse_rest_response({"outputs": uint8.tolist()}, "generate")
    assert parsed.dtype == np.uint8
    np.testing.assert_array_equal(parsed, uint8)
    np.testing.assert_array_equal(
        client.parse_rest_response({"outputs": {"images": uint8.tolist()}}, "generate"), uint8)
    with pytest.raises(client.ClientError, match="boom"):
        client.parse_rest_response({"error": "boom"})
    with pytest.raises(client.ClientError, match="images"):
        client.parse_rest_response({"outputs": [1, 2, 3]})


def test_grpc_request_and_response(client):
    from tensorflow_serving.apis import predict_pb2

    latents = np.ones((2, LATENT_DIM), np.float32)
    req = client.build_grpc_request("autogan", "serving_default", latents=latents, version=3)
    assert req.model_spec.name == "autogan"
    assert req.model_spec.signature_name == "serving_default"
    assert req.model_spec.version.value == 3
    assert req.inputs["latent"].dtype == tf.float32.as_datatype_enum
    np.testing.assert_array_equal(tf.make_ndarray(req.inputs["latent"]), latents)

    req = client.build_grpc_request("autogan", "generate", seed=2**40, num_images=5)
    assert req.model_spec.signature_name == "generate" and not req.model_spec.HasField("version")
    seed = tf.make_ndarray(req.inputs["seed"])
    num = tf.make_ndarray(req.inputs["num_images"])
    assert seed.dtype == np.int64 and seed.shape == () and int(seed) == 2**40
    assert num.dtype == np.int32 and num.shape == () and int(num) == 5
    assert req.inputs["seed"].tensor_shape.dim == []

    images = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    response = predict_pb2.PredictResponse()
    response.outputs["images"].CopyFrom(tf.make_tensor_proto(images))
    np.testing.assert_array_equal(client.parse_grpc_response(response), images)
    with pytest.raises(client.ClientError, match="No 'images' output among"):
        client.parse_grpc_response(predict_pb2.PredictResponse())


def test_grid_png_decodes(client, rng):
    images = rng.uniform(-1, 1, size=(5, 4, 6, 3)).astype(np.float32)
    grid = client.image_grid(images, pad=1)
    assert grid.shape == (2 * 5 + 1, 3 * 7 + 1, 3) and grid.dtype == np.uint8
    np.testing.assert_array_equal(grid[1:5, 8:14], client.to_uint8(images[1]))
    decoded = tf.io.decode_png(client.encode_png(grid)).numpy()
    np.testing.assert_array_equal(decoded, grid)


def test_models_config_parses():
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    with open(os.path.join(REPO, "export", "models.config")) as f:
        config = text_format.Parse(f.read(), model_server_config_pb2.ModelServerConfig())
    models = config.model_config_list.config
    assert [m.name for m in models][0] == "autogan"
    assert all(m.model_platform == "tensorflow" and os.path.isabs(m.base_path) for m in models)


def test_client_main_rest_against_fake_server(client, tmp_path):
    import http.server
    import threading

    images = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    seen = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            seen["path"] = self.path
            seen["body"] = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            payload = json.dumps({"outputs": images.tolist()}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        out = tmp_path / "grid.png"
        code = client.main(["--mode=rest", "--host=127.0.0.1", f"--port={server.server_port}",
                            "--seed=9", "--num_images=2", "--cols=2", f"--output={out}"])
    finally:
        server.shutdown()
        server.server_close()
    assert code == 0
    assert seen["path"] == "/v1/models/autogan:predict"
    assert seen["body"] == {"signature_name": "generate", "inputs": {"seed": 9, "num_images": 2}}
    np.testing.assert_array_equal(tf.io.decode_png(out.read_bytes()).numpy(),
                                  client.image_grid(images, cols=2))


def test_client_main_grpc_against_fake_server(client, tmp_path):
    from concurrent import futures

    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    seen = {}

    class Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):  # noqa: N802 (gRPC's name)
            seen["request"] = request
            latents = tf.make_ndarray(request.inputs["latent"])
            response = predict_pb2.PredictResponse()
            images = np.tanh(np.broadcast_to(latents[:, :1, None, None], (len(latents), 4, 4, 3)))
            response.outputs["images"].CopyFrom(tf.make_tensor_proto(images.astype(np.float32)))
            return response

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        out = tmp_path / "grid.png"
        code = client.main(["--mode=grpc", "--host=127.0.0.1", f"--port={port}",
                            "--signature=serving_default", "--latent_dim=4", "--num_images=3",
                            "--version=2", f"--output={out}"])
    finally:
        server.stop(None)
    assert code == 0
    request = seen["request"]
    assert (request.model_spec.name, request.model_spec.signature_name) == ("autogan",
                                                                            "serving_default")
    assert request.model_spec.version.value == 2
    assert tf.make_ndarray(request.inputs["latent"]).shape == (3, 4)
    assert tf.io.decode_png(out.read_bytes()).shape == (2 * 6 + 2, 2 * 6 + 2, 3)


def test_client_reports_unreachable_server(client, tmp_path, capsys):
    code = client.main(["--mode=rest", "--host=127.0.0.1", "--port=1", "--timeout=2",
                        f"--output={tmp_path / 'x.png'}"])
    assert code == 1
    assert "client: error:" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
