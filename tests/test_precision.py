"""Choosing precision and XLA by the device: cpuinfo parsing, the auto rules, the logged line."""

import pytest
from absl import logging as absl_logging

from autogan_tf.training import precision as P

# Abridged /proc/cpuinfo of the three kinds of machine the project runs on.
SAPPHIRE_RAPIDS = """\
processor	: 0
vendor_id	: GenuineIntel
model name	: Intel(R) Xeon(R) Processor
flags		: fpu sse2 avx avx2 fma avx512f avx512bw avx512_vnni avx512_bf16 amx_bf16 amx_tile
processor	: 1
vendor_id	: GenuineIntel
flags		: fpu sse2
"""
EPYC_ZEN4 = """\
processor	: 0
vendor_id	: AuthenticAMD
model name	: AMD EPYC 9R14 96-Core Processor
flags		: fpu sse2 avx avx2 fma avx512f avx512bw avx512_bf16 avx512vl
"""
EPYC_AVX2 = """\
processor	: 0
vendor_id	: AuthenticAMD
model name	: AMD EPYC 7B12
flags		: fpu sse2 avx avx2 fma
"""
SKYLAKE = "model name : Intel Xeon Gold 6148\nflags : avx avx2 avx512f avx512bw\n"
GRAVITON = "processor : 0\nFeatures : fp asimd evtstrm aes pmull sha1 sha2 crc32 bf16\n"


def test_cpuinfo_parsing_reads_the_first_processor():
    cpu = P.parse_cpuinfo(SAPPHIRE_RAPIDS)
    assert cpu.model_name == "Intel(R) Xeon(R) Processor" and cpu.vendor == "GenuineIntel"
    assert {"avx512_bf16", "amx_bf16", "avx2"} <= cpu.flags and "fpu" in cpu.flags
    assert cpu.native_bf16 and cpu.bf16_flags == ["avx512_bf16", "amx_bf16"]
    assert cpu.vector_isa == "avx512"
    zen4 = P.parse_cpuinfo(EPYC_ZEN4)
    assert zen4.native_bf16 and zen4.bf16_flags == ["avx512_bf16"]
    for text, isa in ((EPYC_AVX2, "avx2"), (SKYLAKE, "avx512"), (GRAVITON, "neon")):
        cpu = P.parse_cpuinfo(text)
        assert not cpu.native_bf16 and cpu.vector_isa == isa
    assert P.parse_cpuinfo("") == P.CpuInfo()
    assert P.read_cpuinfo("/no/such/cpuinfo") == P.CpuInfo()


def _cpu(text):
    return P.DeviceInfo(P.parse_cpuinfo(text))


def _gpu(cc, n=1):
    return P.DeviceInfo(P.parse_cpuinfo(EPYC_AVX2), tuple(P.GpuInfo("NVIDIA H200", cc)
                                                          for _ in range(n)))


@pytest.mark.parametrize("device, workload, expected", [
    (_cpu(SAPPHIRE_RAPIDS), P.SUPERNET, ("bf16", False)),
    (_cpu(SAPPHIRE_RAPIDS), P.DERIVED, ("bf16", False)),
    (_cpu(EPYC_ZEN4), P.DERIVED, ("bf16", False)),
    (_cpu(EPYC_AVX2), P.SUPERNET, ("fp32", False)),
    (_cpu(EPYC_AVX2), P.DERIVED, ("fp32", False)),
    (_cpu(SKYLAKE), P.DERIVED, ("fp32", False)),
    (_cpu(""), P.DERIVED, ("fp32", False)),
    (_gpu((9, 0)), P.DERIVED, ("bf16", True)),
    (_gpu((9, 0), 8), P.SUPERNET, ("bf16", False)),
    (_gpu((7, 0)), P.DERIVED, ("fp32", True)),
    (_gpu(None), P.DERIVED, ("fp32", True)),
])
def test_auto_follows_the_device(device, workload, expected):
    choice = P.resolve("auto", "auto", workload, device=device)
    assert (choice.precision, choice.xla) == expected
    assert choice.mixed_precision == (expected[0] == "bf16")
    assert choice.policy == ("mixed_bfloat16" if expected[0] == "bf16" else "float32")
    assert choice.warning is None
    assert device.describe() in choice.reason


def test_explicit_choices_win_and_slow_ones_are_warned_about():
    avx2 = _cpu(EPYC_AVX2)
    c = P.resolve("bf16", "off", P.DERIVED, device=avx2)
    assert (c.precision, c.xla) == ("bf16", False) and "no fast kernel" in c.warning
    c = P.resolve("bf16", "auto", P.DERIVED, device=avx2)  # auto adds the XLA it needs
    assert (c.precision, c.xla, c.warning) == ("bf16", True, None)
    c = P.resolve("fp32", True, P.SUPERNET, device=_cpu(SAPPHIRE_RAPIDS))
    assert (c.precision, c.xla) == ("fp32", True) and "minutes" in c.warning
    assert P.resolve("fp32", "on", P.SUPERNET, device=_gpu((9, 0))).warning is None
    with pytest.raises(ValueError, match="precision must be one of"):
        P.resolve("fp16")
    with pytest.raises(ValueError, match="xla must be auto, on or off"):
        P.resolve("auto", "maybe")
    with pytest.raises(ValueError, match="workload"):
        P.resolve("auto", "auto", "inference")


def test_without_onednn_native_bf16_is_not_fast_and_auto_takes_fp32():
    # --deterministic turns oneDNN off (TF_ENABLE_ONEDNN_OPTS=0); TensorFlow's own bf16 CPU
    # kernels are then slow, native bf16 or not.
    spr = P.DeviceInfo(P.parse_cpuinfo(SAPPHIRE_RAPIDS), onednn=False)
    assert spr.cpu.native_bf16 and not spr.fast_cpu_bf16
    c = P.resolve("auto", "auto", P.DERIVED, device=spr)
    assert (c.precision, c.xla) == ("fp32", False) and "oneDNN off" in c.reason
    c = P.resolve("bf16", "off", P.DERIVED, device=spr)
    assert "oneDNN kernels are off" in c.warning
    assert [P.onednn_enabled(e) for e in ({}, {"TF_ENABLE_ONEDNN_OPTS": "0"},
                                          {"TF_ENABLE_ONEDNN_OPTS": "1"})] == [True, False, True]


def test_auto_leaves_xla_off_under_a_strategy():
    # A GPU's derived steps get XLA on one device; the trainer refuses XLA with more replicas.
    assert P.resolve("auto", "auto", P.DERIVED, device=_gpu((9, 0), 8)).xla
    c = P.resolve("auto", "auto", P.DERIVED, device=_gpu((9, 0), 8), distributed=True)
    assert (c.precision, c.xla) == ("bf16", False) and "strategy" in c.reason
    assert P.resolve("auto", "on", P.DERIVED, device=_gpu((9, 0)), distributed=True).xla


def test_parse_xla_spellings():
    assert [P.parse_xla(v) for v in (True, False, "auto", "ON", "off", "true", "0", "yes")] == [
        "on", "off", "auto", "on", "off", "on", "off", "on"]


def test_auto_on_this_machine_is_valid_and_logged(monkeypatch):
    lines = []
    monkeypatch.setattr(absl_logging, "info", lambda fmt, *a: lines.append(fmt % a))
    choice = P.resolve()
    assert choice.precision in ("fp32", "bf16") and isinstance(choice.xla, bool)
    device = P.detect_device()
    assert choice.mixed_precision == (device.cpu.native_bf16 if not device.gpus
                                      else all(g.native_bf16 for g in device.gpus))
    line = P.log_choice(choice, "training")
    assert lines == [line]
    assert line.startswith(f"training: {choice.precision}, XLA {'on' if choice.xla else 'off'} (")
    assert device.describe() in line and "\n" not in line
