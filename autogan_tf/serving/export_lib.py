"""Exports a trained generator as a versioned SavedModel for TF Serving, and loads one back.

The layout is the one TF Serving polls: ``<export_base>/<version>/`` with ``saved_model.pb``,
``variables/`` and ``assets/arch.json``. A version directory appears atomically (it is written
under a hidden temporary name next to it and renamed), so a server watching ``export_base`` never
sees a half-written version.

Signatures of the exported model:

* ``serving_default``: ``latent`` float32 [None, latent_dim] -> ``images`` float32
  [N, R, R, 3] in [-1, 1].
* ``generate``: ``seed`` int64 [] and ``num_images`` int32 [] -> ``images`` uint8 [N, R, R, 3].
  The latents are the first ``num_images`` of the sequence of ``seed``
  (``autogan_tf.sampling.latents(seed, 0, num_images, latent_dim)``, a stateless Philox draw),
  so one seed gives the same images in every process, and the images ``evaluate`` scores for
  that seed; uint8 is ``autogan_tf.images.to_uint8``.

The root object also carries the architecture JSON as a ``tf.saved_model.Asset``
(``loaded.arch_json``); :func:`load_architecture` reads it back from disk without loading the
graph. :func:`latest_version_dir` is the one resolver of ``export/<name>`` to its newest
version; :func:`load_exported_generator` gives back what scoring needs (``generate(z)`` and the
latent size). A generator with NaN or Inf weights is never written.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from typing import Any, Callable, Mapping

import numpy as np
import tensorflow as tf

from autogan_tf import search_space as ss
from autogan_tf.errors import NonFiniteError
from autogan_tf.images import to_uint8
from autogan_tf.sampling import latents

__all__ = [
    "ARCH_ASSET",
    "DEFAULT_SIGNATURE",
    "GENERATE_SIGNATURE",
    "ExportError",
    "ExportedGenerator",
    "existing_versions",
    "latest_version_dir",
    "check_export_base",
    "export_generator",
    "load_exported_generator",
    "load_architecture",
    "read_export_metadata",
]

ARCH_ASSET = "arch.json"
DEFAULT_SIGNATURE = "serving_default"
GENERATE_SIGNATURE = "generate"

_TMP_PREFIX = ".tmp-export-"


from autogan_tf.errors import ExportError  # noqa: E402  (re-exported)


# ----------------------------------------------------------------------------- versions


def existing_versions(export_base: str) -> list[int]:
    """Returns the numeric version directories under ``export_base``, sorted ascending.

    Only names made of digits count, as in TF Serving; hidden temporary directories and other
    entries are ignored. A missing ``export_base`` has no versions.
    """
    if not os.path.isdir(export_base):
        return []
    return sorted(
        int(entry)
        for entry in os.listdir(export_base)
        if entry.isdigit() and os.path.isdir(os.path.join(export_base, entry))
    )


def latest_version_dir(path: str) -> str:
    """Returns ``path`` if it is a SavedModel, else its highest numbered version directory.

    This is how ``export/<name>`` becomes a model everywhere (evaluate, metadata, TF Serving's
    default version policy picks the same one).

    Raises:
        ExportError: If ``path`` is missing, or neither a SavedModel nor an export base with
            versions.
    """
    if not os.path.isdir(path):
        raise ExportError(f"No such SavedModel directory or export base: {path}")
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    versions = [
        v for v in existing_versions(path)
        if os.path.isfile(os.path.join(path, str(v), "saved_model.pb"))
    ]
    if not versions:
        raise ExportError(
            f"{path}: neither a SavedModel (no saved_model.pb) nor an export base with numbered "
            "version directories."
        )
    return os.path.join(path, str(versions[-1]))


def check_export_base(export_base: str, version: int | None = None) -> None:
    """Checks, before anything is loaded or written, that ``export_base`` can take a version.

    Args:
        export_base: The export base (created if missing).
        version: The version to write, or None for the next free one.

    Raises:
        ExportError: If ``export_base`` (or a folder above it) is a file, or ``version`` exists.
    """
    existing = os.path.abspath(export_base)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        where = "" if existing == os.path.abspath(export_base) else f" (in {export_base})"
        raise ExportError(
            f"{existing} is a file, not a directory{where}; nothing was written. Give an export "
            "base directory, e.g. export/<name>."
        )
    if version is not None and os.path.exists(os.path.join(export_base, str(version))):
        raise ExportError(
            f"{os.path.join(export_base, str(version))} already exists; nothing was written. "
            f"Choose another version or leave it unset (next free version: "
            f"{_next_version(export_base)})."
        )


# ----------------------------------------------------------------------------- export


class _ServingModule(tf.Module):
    """The object graph that is saved: the generator's variables, the asset and the functions."""

    def __init__(self, generator, arch_json_path: str, max_num_images: int):
        super().__init__(name="autogan_generator")
        latent_dim = int(generator.latent_dim)
        # The Keras model is reached through the functions' closures only, not as an attribute:
        # saving tracks the backing tf.Variables (reachable from the root, as the functions'
        # captures must be), not the Keras object graph, as keras.export.ExportArchive does.
        self.model_variables = [_backing_variable(v) for v in generator.variables]
        self.arch_json = tf.saved_model.Asset(arch_json_path)
        self.latent_dim = tf.Variable(latent_dim, dtype=tf.int32, trainable=False)
        self.output_resolution = tf.Variable(
            int(generator.output_resolution), dtype=tf.int32, trainable=False
        )

        @tf.function(input_signature=[tf.TensorSpec([None, latent_dim], tf.float32, "latent")])
        def serve(latent):
            images = generator(latent, training=False)
            return {"images": tf.cast(images, tf.float32)}

        @tf.function(
            input_signature=[
                tf.TensorSpec([], tf.int64, "seed"),
                tf.TensorSpec([], tf.int32, "num_images"),
            ]
        )
        def generate(seed, num_images):
            check = tf.debugging.assert_less_equal(
                num_images, tf.constant(max_num_images, tf.int32),
                message=f"num_images must be at most {max_num_images}",
            )
            check_min = tf.debugging.assert_non_negative(
                num_images, message="num_images must not be negative"
            )
            with tf.control_dependencies([check, check_min]):
                latent = latents(seed, 0, num_images, latent_dim)
            images = generator(latent, training=False)
            return {"images": to_uint8(images)}

        self.serve = serve
        self.generate = generate


def _backing_variable(variable):
    """The tf.Variable behind a Keras 3 variable (or the variable itself)."""
    if isinstance(variable, tf.Variable):
        return variable
    return variable.value


def _next_version(export_base: str) -> int:
    versions = existing_versions(export_base)
    return versions[-1] + 1 if versions else 1


def export_generator(
    generator,
    export_base: str,
    version: int | None = None,
    *,
    max_num_images: int = 1024,
    metadata: Mapping[str, Any] | None = None,
) -> str:
    """Writes ``generator`` as SavedModel ``<export_base>/<version>/`` for TF Serving.

    Args:
        generator: A built generator (e.g. ``DerivedGenerator``) with ``arch``, ``latent_dim``
            and ``output_resolution``; ``generator(z, training=False)`` gives images in [-1, 1].
            Mixed precision generators are fine: the signatures return float32 / uint8.
        export_base: The model base path TF Serving is given (``--model_base_path``).
        version: The version number; by default one more than the highest existing version,
            or 1.
        max_num_images: Largest ``num_images`` the ``generate`` signature accepts.
        metadata: Extra JSON-able facts (e.g. the source checkpoint and step) stored under
            ``"metadata"`` in ``assets/arch.json``; values JSON cannot hold are written as text.

    Returns:
        The written version directory.

    Raises:
        ExportError: If ``version`` is not a positive integer, already exists, ``export_base``
            is a file, or writing fails.
        NonFiniteError: If a weight of the generator, or its images of a probe latent, hold NaN
            or Inf (nothing is written).
    """
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or version < 1
    ):
        raise ExportError(f"version must be a positive integer, got {version!r}.")
    if max_num_images < 1:
        raise ExportError(f"max_num_images must be positive, got {max_num_images}.")
    check_export_base(export_base, version)
    if version is None:
        version = _next_version(export_base)
    final_dir = os.path.join(export_base, str(version))
    if not getattr(generator, "built", False):
        raise ExportError("The generator is not built; call it once or build it before export.")
    _check_finite(generator)

    os.makedirs(export_base, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{version}-", dir=export_base)
    try:
        arch_path = os.path.join(tmp_dir, ARCH_ASSET)  # copied into assets/ under this name
        _write_arch_json(generator, arch_path, metadata)
        module = _ServingModule(generator, arch_path, max_num_images)
        model_dir = os.path.join(tmp_dir, "model")
        tf.saved_model.save(
            module,
            model_dir,
            signatures={
                DEFAULT_SIGNATURE: module.serve.get_concrete_function(),
                GENERATE_SIGNATURE: module.generate.get_concrete_function(),
            },
        )
        try:
            # Fails (ENOTEMPTY / EEXIST) rather than replace a version written meanwhile.
            os.rename(model_dir, final_dir)
        except OSError as err:
            raise ExportError(f"Cannot move the export into {final_dir}: {err}") from err
    except ExportError:
        raise
    except Exception as err:  # pylint: disable=broad-except
        raise ExportError(f"Writing the SavedModel for {final_dir} failed: {err}") from err
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return final_dir


def _check_finite(generator) -> None:
    """Refuses a generator whose weights, or whose images of two probe latents, are not finite."""
    variables = list(generator.variables)
    bad = [getattr(v, "path", v.name) for v in variables
           if not np.isfinite(np.asarray(_backing_variable(v).numpy(), np.float64)).all()]
    if bad:
        shown = ", ".join(bad[:3]) + (", ..." if len(bad) > 3 else "")
        raise NonFiniteError(
            f"The generator has NaN or Inf in {len(bad)} of its {len(variables)} weight tensors "
            f"({shown}); it would serve broken images, so nothing was written. The training run "
            "diverged: export an earlier checkpoint (a prefix under <run>/ckpt/)."
        )
    probe = generator(latents(0, 0, 2, int(generator.latent_dim)), training=False)
    if not np.isfinite(np.asarray(tf.cast(probe, tf.float32))).all():
        raise NonFiniteError(
            "The generator's weights are finite but its images of two probe latents hold NaN or "
            "Inf; it would serve broken images, so nothing was written. Export an earlier "
            "checkpoint."
        )


def _write_arch_json(generator, path: str, metadata: Mapping[str, Any] | None) -> None:
    arch = ss.Architecture.parse(generator.arch)
    data = arch.to_dict(
        latent_dim=int(generator.latent_dim),
        channels=int(getattr(generator, "channels", 0)) or None,
        bottom_width=int(getattr(generator, "bottom_width", 0)) or None,
        output_resolution=int(generator.output_resolution),
    )
    if metadata:
        data["metadata"] = dict(metadata)
    with open(path, "w") as f:
        json.dump(data, f, indent=2, default=str)
        f.write("\n")


# ----------------------------------------------------------------------------- reading back


@dataclasses.dataclass(frozen=True)
class ExportedGenerator:
    """A generator SavedModel, loaded for scoring.

    Attributes:
        generate: Maps float32 latents [n, latent_dim] to float32 images [n, R, R, 3] through
            the ``serving_default`` signature.
        latent_dim: The latent size the signature takes.
        model_dir: The version directory that was loaded.
        loaded: The loaded object (keeps the restored functions alive).
    """

    generate: Callable[[tf.Tensor], tf.Tensor]
    latent_dim: int
    model_dir: str
    loaded: Any


def load_exported_generator(path: str) -> ExportedGenerator:
    """Loads a generator SavedModel (or the newest version of an export base) for scoring.

    Any SavedModel whose ``serving_default`` signature takes one float [N, latent_dim] input
    (named ``latent``, or the only one) and returns images (``images``, or the only output)
    will do, not only those written by :func:`export_generator`.

    Args:
        path: A SavedModel version directory or an export base (see :func:`latest_version_dir`).

    Returns:
        An :class:`ExportedGenerator`.

    Raises:
        ExportError: If no SavedModel is found, it cannot be loaded, or its ``serving_default``
            signature does not fit.
    """
    model_dir = latest_version_dir(path)
    try:
        loaded = tf.saved_model.load(model_dir)
    except Exception as err:  # pylint: disable=broad-except  # any corrupt or foreign file
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ExportError(f"{model_dir}: cannot load the SavedModel ({first}).") from err
    signature = loaded.signatures.get(DEFAULT_SIGNATURE)
    if signature is None:
        raise ExportError(f"{model_dir}: the SavedModel has no {DEFAULT_SIGNATURE!r} signature.")
    _, inputs = signature.structured_input_signature
    if "latent" in inputs:
        input_name = "latent"
    elif len(inputs) == 1:
        (input_name,) = inputs
    else:
        raise ExportError(
            f"{model_dir}: {DEFAULT_SIGNATURE!r} must take one input 'latent', takes "
            f"{sorted(inputs)}."
        )
    spec = inputs[input_name]
    if spec.shape.rank != 2 or spec.shape[1] is None or not spec.dtype.is_floating:
        raise ExportError(
            f"{model_dir}: input {input_name!r} must be float [N, latent_dim], got {spec}."
        )
    outputs = signature.structured_outputs
    if "images" in outputs:
        output_name = "images"
    elif len(outputs) == 1:
        (output_name,) = outputs
    else:
        raise ExportError(
            f"{model_dir}: {DEFAULT_SIGNATURE!r} must return 'images' (or one output), returns "
            f"{sorted(outputs)}."
        )

    def generate(latent: tf.Tensor) -> tf.Tensor:
        images = signature(**{input_name: tf.cast(latent, spec.dtype)})[output_name]
        return tf.cast(images, tf.float32)

    return ExportedGenerator(generate, int(spec.shape[1]), model_dir, loaded)



def read_export_metadata(path: str) -> dict[str, Any]:
    """Returns the parsed ``assets/arch.json`` of a SavedModel or an export base's latest version.

    Raises:
        ExportError: If the asset is missing or not valid JSON.
    """
    model_dir = latest_version_dir(path)
    asset = os.path.join(model_dir, "assets", ARCH_ASSET)
    if not os.path.isfile(asset):
        raise ExportError(f"{model_dir}: no assets/{ARCH_ASSET}; not an autogan_tf export.")
    try:
        with open(asset) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise ExportError(f"{asset}: cannot read the architecture JSON ({err}).") from err


def load_architecture(path: str) -> ss.Architecture:
    """Returns the ``Architecture`` stored with an exported generator.

    Args:
        path: A SavedModel version directory or an export base (latest version is read).

    Raises:
        ExportError: If the asset is missing or malformed.
    """
    data = read_export_metadata(path)
    try:
        return ss.Architecture.parse(data.get("arch") if isinstance(data, dict) else data)
    except ss.ArchitectureError as err:
        raise ExportError(f"{path}: invalid architecture in {ARCH_ASSET} ({err}).") from err
