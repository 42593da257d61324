r"""Asks a TF Serving model server for AutoGAN images and writes them as one PNG grid.

Examples (server started as in README.md, model name ``autogan``)::

    python export/client.py --mode=rest --seed=7 --num_images=16 --output=grid.png
    python export/client.py --mode=grpc --seed=7 --num_images=16 --output=grid.png
    python export/client.py --mode=rest --signature=serving_default --latent_dim=128 \
        --num_images=8 --seed=3 --output=grid.png

``--signature=generate`` (default) sends ``seed`` and ``num_images`` and gets uint8 images; the
same seed gives the same images. ``--signature=serving_default`` draws the latents here (numpy,
seeded by ``--seed``) and gets float images in [-1, 1].

REST mode needs only numpy; gRPC mode needs ``grpcio`` and ``tensorflow-serving-api``. The
request building and response parsing are plain functions, importable from this file.
"""

from __future__ import annotations

import argparse
import json
import math
import struct
import sys
import urllib.error
import urllib.request
import zlib
from typing import Any

import numpy as np

__all__ = [
    "ClientError",
    "build_rest_request",
    "parse_rest_response",
    "rest_url",
    "rest_predict",
    "build_grpc_request",
    "parse_grpc_response",
    "grpc_predict",
    "to_uint8",
    "image_grid",
    "encode_png",
    "main",
]

DEFAULT_SIGNATURE = "serving_default"
GENERATE_SIGNATURE = "generate"
OUTPUT_KEY = "images"
_OUTPUT_DTYPES = {DEFAULT_SIGNATURE: np.float32, GENERATE_SIGNATURE: np.uint8}


class ClientError(RuntimeError):
    """Raised for a bad request, an unreachable server or a response without images."""


# ----------------------------------------------------------------------------- REST


def _checked_latents(latents) -> np.ndarray:
    """Latents as float32 [N, latent_dim], or a ClientError saying what is wrong."""
    if latents is None:
        raise ClientError("serving_default needs latents [N, latent_dim].")
    latents = np.asarray(latents, dtype=np.float32)
    if latents.ndim != 2:
        raise ClientError(f"latents must be [N, latent_dim], got shape {latents.shape}.")
    return latents


def build_rest_request(
    signature: str = GENERATE_SIGNATURE,
    *,
    latents: np.ndarray | None = None,
    seed: int | None = None,
    num_images: int | None = None,
    named_instances: bool = True,
) -> dict[str, Any]:
    """Builds the JSON body of a TF Serving REST ``:predict`` call.

    ``serving_default`` uses the row format: ``{"signature_name": ..., "instances": [...]}``
    with one instance per latent, ``{"latent": [...]}`` (``named_instances``) or the bare list.
    ``generate`` takes scalars, which have no batch dimension, so it uses the columnar format:
    ``{"signature_name": "generate", "inputs": {"seed": s, "num_images": n}}``.

    Args:
        signature: ``"serving_default"`` or ``"generate"``.
        latents: float [N, latent_dim], for ``serving_default``.
        seed: int, for ``generate``.
        num_images: int, for ``generate``.
        named_instances: Row format with input names (else lists of floats).

    Returns:
        The body, ready for ``json.dumps``.

    Raises:
        ClientError: If the inputs do not fit the signature.
    """
    if signature == DEFAULT_SIGNATURE:
        latents = _checked_latents(latents)
        rows = latents.tolist()
        instances = [{"latent": row} for row in rows] if named_instances else rows
        return {"signature_name": signature, "instances": instances}
    if signature == GENERATE_SIGNATURE:
        if seed is None or num_images is None:
            raise ClientError("generate needs seed and num_images.")
        return {
            "signature_name": signature,
            "inputs": {"seed": int(seed), "num_images": int(num_images)},
        }
    raise ClientError(_unknown_signature(signature))


def parse_rest_response(
    body: str | bytes | dict, signature: str = GENERATE_SIGNATURE
) -> np.ndarray:
    """Turns a ``:predict`` response into the images array.

    Accepts the row-format answer ``{"predictions": [...]}`` (a list of images, or of
    ``{"images": ...}`` dicts) and the columnar ``{"outputs": ...}`` (the images, or
    ``{"images": ...}``).

    Args:
        body: The response text or its decoded JSON.
        signature: Which signature answered; sets the dtype (float32 or uint8).

    Returns:
        Images [N, R, R, 3].

    Raises:
        ClientError: For an ``{"error": ...}`` answer or one without images.
    """
    if isinstance(body, (str, bytes)):
        try:
            body = json.loads(body)
        except json.JSONDecodeError as err:
            raise ClientError(f"The server's answer is not JSON: {err}") from err
    if not isinstance(body, dict):
        raise ClientError(f"Unexpected answer: {str(body)[:200]}")
    if "error" in body:
        raise ClientError(f"Server error: {body['error']}")
    if "predictions" in body:
        values = body["predictions"]
        if values and isinstance(values[0], dict):
            values = [_pick_output(v) for v in values]
    elif "outputs" in body:
        values = body["outputs"]
        if isinstance(values, dict):
            values = _pick_output(values)
    else:
        raise ClientError(f"Answer has neither 'predictions' nor 'outputs': keys {sorted(body)}")
    images = np.asarray(values, dtype=_OUTPUT_DTYPES.get(signature, np.float32))
    if images.ndim != 4 or images.shape[-1] != 3:
        if images.size == 0:
            return images.reshape((0, 0, 0, 3))
        raise ClientError(f"Expected images [N, R, R, 3], got shape {images.shape}.")
    return images


def _unknown_signature(signature: str) -> str:
    return f"Unknown signature {signature!r}; use {DEFAULT_SIGNATURE} or {GENERATE_SIGNATURE}."


def _pick_output(outputs: dict) -> Any:
    if OUTPUT_KEY in outputs:
        return outputs[OUTPUT_KEY]
    if len(outputs) == 1:
        return next(iter(outputs.values()))
    raise ClientError(f"No '{OUTPUT_KEY}' output among {sorted(outputs)}.")


def rest_url(host: str, port: int, model_name: str, version: int | None = None) -> str:
    """The ``:predict`` URL, e.g. ``http://localhost:8501/v1/models/autogan:predict``."""
    path = f"/v1/models/{model_name}" + (f"/versions/{version}" if version else "")
    return f"http://{host}:{port}{path}:predict"


def rest_predict(url: str, body: dict, timeout: float = 60.0) -> dict:
    """POSTs ``body`` to ``url`` and returns the decoded JSON answer.

    Raises:
        ClientError: If the server cannot be reached or answers with an error.
    """
    request = urllib.request.Request(
        url, data=json.dumps(body).encode("utf-8"), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as err:
        detail = err.read().decode("utf-8", "replace")
        raise ClientError(f"{url}: HTTP {err.code}: {detail}") from err
    except (urllib.error.URLError, OSError) as err:
        raise ClientError(f"{url}: cannot reach the server ({err}).") from err


# ----------------------------------------------------------------------------- gRPC


def build_grpc_request(
    model_name: str,
    signature: str = GENERATE_SIGNATURE,
    *,
    latents: np.ndarray | None = None,
    seed: int | None = None,
    num_images: int | None = None,
    version: int | None = None,
):
    """Builds a ``tensorflow.serving.PredictRequest``.

    Tensors: ``latent`` float32 [N, latent_dim] for ``serving_default``; ``seed`` int64 [] and
    ``num_images`` int32 [] for ``generate``.

    Raises:
        ClientError: If the inputs do not fit the signature.
    """
    # pylint: disable=import-outside-toplevel
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    if version:
        request.model_spec.version.value = int(version)
    if signature == DEFAULT_SIGNATURE:
        latents = _checked_latents(latents)
        request.inputs["latent"].CopyFrom(tf.make_tensor_proto(latents, dtype=tf.float32))
    elif signature == GENERATE_SIGNATURE:
        if seed is None or num_images is None:
            raise ClientError("generate needs seed and num_images.")
        request.inputs["seed"].CopyFrom(tf.make_tensor_proto(int(seed), dtype=tf.int64, shape=[]))
        request.inputs["num_images"].CopyFrom(
            tf.make_tensor_proto(int(num_images), dtype=tf.int32, shape=[])
        )
    else:
        raise ClientError(_unknown_signature(signature))
    return request


def parse_grpc_response(response) -> np.ndarray:
    """Returns the ``images`` tensor of a ``PredictResponse`` as a numpy array.

    Raises:
        ClientError: If the response has no ``images`` output.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    if OUTPUT_KEY not in response.outputs:
        raise ClientError(f"No '{OUTPUT_KEY}' output among {sorted(response.outputs)}.")
    return tf.make_ndarray(response.outputs[OUTPUT_KEY])


def grpc_predict(target: str, request, timeout: float = 60.0):
    """Sends ``request`` to the PredictionService at ``target`` (``host:port``).

    Raises:
        ClientError: If the call fails.
    """
    # pylint: disable=import-outside-toplevel
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    # Images can exceed gRPC's 4 MB default message size.
    options = [("grpc.max_receive_message_length", 256 * 1024 * 1024)]
    with grpc.insecure_channel(target, options=options) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            return stub.Predict(request, timeout=timeout)
        except grpc.RpcError as err:
            raise ClientError(f"{target}: {err.code().name}: {err.details()}") from err


# ----------------------------------------------------------------------------- images


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Returns uint8 images; floats are taken to be in [-1, 1]."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    scaled = np.round((np.clip(images.astype(np.float32), -1.0, 1.0) + 1.0) * 127.5)
    return scaled.astype(np.uint8)


def image_grid(images: np.ndarray, cols: int | None = None, pad: int = 2) -> np.ndarray:
    """Tiles images [N, H, W, 3] into one uint8 image (near-square grid, white padding)."""
    images = to_uint8(images)
    if images.ndim != 4 or images.shape[0] == 0:
        raise ClientError(f"Need images [N>0, H, W, C], got shape {images.shape}.")
    n, h, w, c = images.shape
    cols = cols or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 255, np.uint8)
    for i, image in enumerate(images):
        r, k = divmod(i, cols)
        top, left = pad + r * (h + pad), pad + k * (w + pad)
        grid[top:top + h, left:left + w] = image
    return grid


def encode_png(image: np.ndarray) -> bytes:
    """Encodes a uint8 [H, W, 3] (or [H, W]) image as PNG bytes (zlib only, no image library)."""
    image = np.ascontiguousarray(to_uint8(image))
    if image.ndim == 2:
        image = image[..., None]
    h, w, c = image.shape
    color_type = {1: 0, 3: 2, 4: 6}.get(c)
    if color_type is None:
        raise ClientError(f"PNG needs 1, 3 or 4 channels, got {c}.")
    raw = b"".join(b"\x00" + image[y].tobytes() for y in range(h))  # filter type 0 per row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF
        )

    header = struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


# ----------------------------------------------------------------------------- main


def _parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=("rest", "grpc"), default="rest")
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=None, help="Default 8501 (rest), 8500 (grpc).")
    parser.add_argument("--model_name", default="autogan")
    parser.add_argument("--version", type=int, default=None, help="Default: the latest served.")
    parser.add_argument(
        "--signature", choices=(GENERATE_SIGNATURE, DEFAULT_SIGNATURE), default=GENERATE_SIGNATURE
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num_images", type=int, default=16)
    parser.add_argument("--latent_dim", type=int, default=128, help="For serving_default.")
    parser.add_argument("--cols", type=int, default=None, help="Grid columns (default: square).")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--output", default="grid.png")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Runs one request and writes the PNG grid; returns the exit status."""
    args = _parse_args(argv)
    latents = None
    if args.signature == DEFAULT_SIGNATURE:
        rng = np.random.default_rng(args.seed)
        latents = rng.standard_normal((args.num_images, args.latent_dim)).astype(np.float32)
    inputs = {"latents": latents} if latents is not None else {
        "seed": args.seed, "num_images": args.num_images}
    try:
        if args.mode == "rest":
            url = rest_url(args.host, args.port or 8501, args.model_name, args.version)
            body = build_rest_request(args.signature, **inputs)
            images = parse_rest_response(rest_predict(url, body, args.timeout), args.signature)
        else:
            request = build_grpc_request(
                args.model_name, args.signature, version=args.version, **inputs
            )
            target = f"{args.host}:{args.port or 8500}"
            images = parse_grpc_response(grpc_predict(target, request, args.timeout))
        png = encode_png(image_grid(images, args.cols))
    except ClientError as err:
        print(f"client: error: {err}", file=sys.stderr)
        return 1
    with open(args.output, "wb") as f:
        f.write(png)
    print(f"Wrote {len(images)} images {images.shape[1:]} {images.dtype} to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
