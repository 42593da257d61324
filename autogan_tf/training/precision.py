"""Which numeric precision and compile mode fit this machine: `auto` resolved from its capabilities.

The fastest choice depends on the device, not on the model alone:

* a GPU of compute capability 8.0 or newer (Ampere, Hopper) has bf16 tensor cores: bf16, and
  XLA for a derived generator's steps (the supernet's step, with every branch of every cell,
  is left uncompiled: XLA compiles all the branches of every `tf.switch_case`);
* a CPU with native bf16 (`avx512_bf16` or `amx_bf16` in /proc/cpuinfo: Intel Sapphire Rapids
  and later, AMD Zen 4 and later) runs bf16 convolutions and their gradients through oneDNN
  about twice as fast as fp32: bf16, no XLA (XLA's CPU bf16 path was slower than fp32 there);
* any other CPU (AVX2 only, or AVX-512 without BF16) has no fast bf16 kernels for convolution
  gradients (about 30x slower than fp32 without XLA): fp32, no XLA.

`resolve(precision, xla, workload)` turns the user's `auto|fp32|bf16` and `auto|on|off` into a
`ComputeChoice` with the reason in words; `log_choice` writes it as one line. The capability
parsers take text, so they are tested with made-up /proc/cpuinfo contents.

Example::

    choice = resolve("auto", "auto", workload=SUPERNET)
    log_choice(choice, "search")     # "search: bf16, XLA off (CPU with avx512_bf16 ...)"
    choice.mixed_precision, choice.xla
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

from absl import logging

__all__ = ["PRECISIONS", "XLA_MODES", "SUPERNET", "DERIVED", "GENERATION", "CpuInfo",
           "GpuInfo", "DeviceInfo", "ComputeChoice", "parse_cpuinfo", "read_cpuinfo",
           "detect_device", "onednn_enabled", "resolve", "log_choice", "precision_policy",
           "parse_xla"]

PRECISIONS = ("auto", "fp32", "bf16")
XLA_MODES = ("auto", "on", "off")
SUPERNET, DERIVED, GENERATION = "supernet", "derived", "generation"
_WORKLOADS = (SUPERNET, DERIVED, GENERATION)

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
"""/proc/cpuinfo flags of CPUs whose bf16 dot products run natively (AVX512-BF16, AMX)."""

_MIN_BF16_GPU = (8, 0)  # Ampere: bf16 tensor cores


def precision_policy(mixed_precision: bool) -> str:
    """Keras dtype policy name for models built with or without `mixed_bfloat16`."""
    return "mixed_bfloat16" if mixed_precision else "float32"


def parse_xla(value) -> str:
    """'auto', 'on' or 'off' from a flag value (booleans and true/false/1/0/yes/no too).

    Raises:
      ValueError: for anything else.
    """
    if isinstance(value, bool):
        return "on" if value else "off"
    text = str(value).strip().lower()
    if text == "auto":
        return "auto"
    if text in ("on", "true", "1", "yes", "t", "y"):
        return "on"
    if text in ("off", "false", "0", "no", "f", "n"):
        return "off"
    raise ValueError(f"xla must be auto, on or off (or true/false), got {value!r}")


@dataclasses.dataclass(frozen=True)
class CpuInfo:
    """What /proc/cpuinfo says about the first processor: its model name and its flags."""

    model_name: str = ""
    vendor: str = ""
    flags: frozenset = frozenset()

    @property
    def native_bf16(self) -> bool:
        """True when the CPU has native bf16 dot products (AVX512-BF16 or AMX-BF16)."""
        return any(f in self.flags for f in NATIVE_BF16_FLAGS)

    @property
    def bf16_flags(self) -> list:
        return [f for f in NATIVE_BF16_FLAGS if f in self.flags]

    @property
    def vector_isa(self) -> str:
        """The widest vector extension: 'avx512', 'avx2', 'neon' or 'other'."""
        if "avx512f" in self.flags:
            return "avx512"
        if "avx2" in self.flags:
            return "avx2"
        if "asimd" in self.flags or "neon" in self.flags:
            return "neon"
        return "other"


def parse_cpuinfo(text: str) -> CpuInfo:
    """The `CpuInfo` of /proc/cpuinfo text (x86 `flags`, Arm `Features`); empty if none."""
    model, vendor, flags_ = "", "", None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip().lower()
        if key in ("model name", "cpu model") and not model:
            model = value.strip()
        elif key == "vendor_id" and not vendor:
            vendor = value.strip()
        elif key in ("flags", "features") and flags_ is None:
            flags_ = frozenset(value.split())
    return CpuInfo(model, vendor, flags_ or frozenset())


def read_cpuinfo(path: str = "/proc/cpuinfo") -> CpuInfo:
    """This machine's `CpuInfo` (empty where `path` cannot be read, e.g. not Linux)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return parse_cpuinfo(f.read())
    except OSError:
        return CpuInfo()


@dataclasses.dataclass(frozen=True)
class GpuInfo:
    """One GPU as TensorFlow reports it: its name and compute capability (major, minor)."""

    name: str
    compute_capability: Optional[tuple] = None

    @property
    def native_bf16(self) -> bool:
        cc = self.compute_capability
        return cc is not None and tuple(cc) >= _MIN_BF16_GPU


@dataclasses.dataclass(frozen=True)
class DeviceInfo:
    """The devices the GAN steps run on: the GPUs (none on a CPU machine) and the CPU."""

    cpu: CpuInfo
    gpus: tuple = ()
    onednn: bool = True

    @property
    def kind(self) -> str:
        return "gpu" if self.gpus else "cpu"

    @property
    def fast_cpu_bf16(self) -> bool:
        """Native bf16 on the CPU and oneDNN on: TensorFlow's bf16 CPU kernels are oneDNN's
        (with TF_ENABLE_ONEDNN_OPTS=0, as `--deterministic` sets, they are slow again)."""
        return self.cpu.native_bf16 and self.onednn

    def describe(self) -> str:
        if self.gpus:
            g = self.gpus[0]
            cc = ".".join(map(str, g.compute_capability)) if g.compute_capability else "?"
            more = f" x{len(self.gpus)}" if len(self.gpus) > 1 else ""
            return f"GPU {g.name}{more} (compute capability {cc})"
        name = self.cpu.model_name or "CPU"
        bf16 = ", ".join(self.cpu.bf16_flags) or f"no native bf16, {self.cpu.vector_isa}"
        onednn = "" if self.onednn else ", oneDNN off"
        return f"{name} ({bf16}, {os.cpu_count()} cores{onednn})"


def onednn_enabled(environ=None) -> bool:
    """Whether TensorFlow's oneDNN CPU kernels are on (the default on x86 Linux, unless
    TF_ENABLE_ONEDNN_OPTS=0)."""
    environ = os.environ if environ is None else environ
    return environ.get("TF_ENABLE_ONEDNN_OPTS", "1").strip() not in ("0", "false", "False")


def detect_device(cpuinfo_path: str = "/proc/cpuinfo") -> DeviceInfo:
    """This machine's `DeviceInfo` (asks TensorFlow for the GPUs; does not allocate them)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    gpus = []
    for dev in tf.config.list_physical_devices("GPU"):
        try:
            details = tf.config.experimental.get_device_details(dev)
        except (ValueError, RuntimeError):  # pragma: no cover  (driver-dependent)
            details = {}
        cc = details.get("compute_capability")
        gpus.append(GpuInfo(details.get("device_name", dev.name),
                            tuple(cc) if cc is not None else None))
    return DeviceInfo(read_cpuinfo(cpuinfo_path), tuple(gpus), onednn_enabled())


@dataclasses.dataclass(frozen=True)
class ComputeChoice:
    """A resolved precision and compile mode, with why.

    Attributes:
      precision: 'fp32' or 'bf16'.
      xla: compile the steps with XLA (`jit_compile`).
      reason: the device facts and rules that led to it, in words.
      requested: the (precision, xla) the user asked for.
      warning: a note when an explicit choice is known to be slow on this device, else None.
    """

    precision: str
    xla: bool
    reason: str
    requested: tuple = ("auto", "auto")
    warning: Optional[str] = None

    @property
    def mixed_precision(self) -> bool:
        return self.precision == "bf16"

    @property
    def policy(self) -> str:
        return precision_policy(self.mixed_precision)

    def line(self, what: str = "steps") -> str:
        """One line: what was chosen, for what, and why."""
        asked = "" if self.requested == ("auto", "auto") else (
            f"; asked --precision={self.requested[0]} --xla={self.requested[1]}")
        return (f"{what}: {self.precision}, XLA {'on' if self.xla else 'off'} "
                f"({self.reason}{asked})")


def _auto_precision(device: DeviceInfo) -> tuple:
    if device.gpus:
        if all(g.native_bf16 for g in device.gpus):
            return "bf16", "GPU with bf16 tensor cores"
        return "fp32", "GPU without bf16 tensor cores (compute capability < 8.0)"
    if device.fast_cpu_bf16:
        return "bf16", f"CPU with {' and '.join(device.cpu.bf16_flags)}"
    if device.cpu.native_bf16:
        return "fp32", ("CPU with native bf16 but oneDNN off (TF_ENABLE_ONEDNN_OPTS=0, as "
                        "--deterministic sets): no fast bf16 kernels")
    return "fp32", f"CPU without native bf16 ({device.cpu.vector_isa})"


def _auto_xla(device: DeviceInfo, precision: str, workload: str) -> tuple:
    if workload == SUPERNET:
        return False, "the supernet's step compiles every branch of every cell under XLA"
    if device.gpus:
        return True, "XLA fuses a fixed generator's steps on GPU"
    if precision == "bf16" and not device.fast_cpu_bf16:
        return True, "bf16 gradients on this CPU are fast only through XLA"
    return False, "oneDNN's CPU kernels beat XLA's here"


def resolve(precision: str = "auto", xla="auto", workload: str = DERIVED,
            device: Optional[DeviceInfo] = None, distributed: bool = False) -> ComputeChoice:
    """The precision and compile mode for `workload` on `device` (default: this machine).

    Args:
      precision: 'auto', 'fp32' or 'bf16'.
      xla: 'auto', 'on' or 'off' (or a bool).
      workload: SUPERNET (search steps), DERIVED (training a fixed architecture) or
        GENERATION (inference only; XLA is then reported but not used by the steps).
      device: a `DeviceInfo` (tests pass made-up ones); None detects this machine's.
      distributed: the steps run under a `tf.distribute` strategy: `auto` leaves XLA off
        (it compiles a step for one device, and the trainer refuses it with more replicas).

    Returns:
      A `ComputeChoice`.

    Raises:
      ValueError: for an unknown precision, XLA mode or workload.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    xla = parse_xla(xla)
    if workload not in _WORKLOADS:
        raise ValueError(f"workload must be one of {_WORKLOADS}, got {workload!r}")
    device = device or detect_device()
    reasons = [device.describe()]
    if precision == "auto":
        chosen, why = _auto_precision(device)
        reasons.append(f"{chosen}: {why}")
    else:
        chosen = precision
    if xla == "auto" and distributed:
        jit = False
        reasons.append("XLA off: under a tf.distribute strategy (XLA compiles for one device)")
    elif xla == "auto":
        jit, why = _auto_xla(device, chosen, workload)
        reasons.append(f"XLA {'on' if jit else 'off'}: {why}")
    else:
        jit = xla == "on"
    warning = None
    if not device.gpus and chosen == "bf16" and not device.fast_cpu_bf16 and not jit:
        what = ("a CPU without native bf16" if not device.cpu.native_bf16 else
                "a CPU whose oneDNN kernels are off (TF_ENABLE_ONEDNN_OPTS=0)")
        warning = (f"bf16 on {what} and without XLA: convolution gradients have no fast "
                   "kernel here (tens of times slower than fp32); use --precision=auto or fp32")
    elif not device.gpus and jit and workload == SUPERNET:
        warning = "XLA compiles the supernet's step for minutes on CPU; --xla=auto leaves it off"
    return ComputeChoice(chosen, jit, "; ".join(reasons), (precision, xla), warning)


def log_choice(choice: ComputeChoice, what: str = "steps") -> str:
    """Logs the choice in one INFO line (and its warning, if any); returns the line."""
    line = choice.line(what)
    logging.info("%s", line)
    if choice.warning:
        logging.warning("%s: %s", what, choice.warning)
    return line
