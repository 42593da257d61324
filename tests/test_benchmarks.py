"""benchmarks/compare_speed.py and bench_steps.py: their options through the command line at
tiny sizes, and the ratios' arithmetic."""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "benchmarks"))

import compare_speed  # noqa: E402


def _rec(bench, value, precision="fp32", allocator=None, **kw):
    r = {"benchmark": bench, "precision": precision, **kw}
    r["images_per_second" if bench == "inference" else "seconds_per_iteration"] = value
    if allocator:
        r["allocator"] = allocator
    return r


def test_ratios_compare_each_allocator_with_each_of_the_anchors():
    project = [[_rec("derived_iteration", 20.0, allocator="glibc"),
                _rec("inference", 50.0, allocator="glibc")],
               [_rec("derived_iteration", 18.0, allocator="jemalloc"),
                _rec("inference", 60.0, allocator="jemalloc")],
               [_rec("derived_iteration", 22.0, allocator="glibc"),  # a second round
                _rec("inference", 40.0, allocator="glibc")]]
    anchor = [[_rec("derived_iteration", 42.0, allocator="glibc"),
               _rec("derived_iteration", 27.0, allocator="jemalloc"),
               _rec("inference", 30.0, allocator="jemalloc")]]
    out = compare_speed.summarise(project, anchor)
    assert out["project"]["derived_iteration"] == {"fp32": 21.0, "fp32+jemalloc": 18.0}
    assert out["ratios"]["derived_iteration"] == {
        "fp32_vs_torch_glibc": 2.0, "fp32_vs_torch_jemalloc": round(27 / 21, 3),
        "fp32+jemalloc_vs_torch_glibc": round(42 / 18, 3),
        "fp32+jemalloc_vs_torch_jemalloc": 1.5}
    # images per second: the project's over the anchor's
    assert out["ratios"]["inference"] == {"fp32_vs_torch_jemalloc": 1.5,
                                          "fp32+jemalloc_vs_torch_jemalloc": 2.0}


def test_allocator_env_preloads_jemalloc_or_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("LD_PRELOAD", "/x/libfoo.so")
    assert "LD_PRELOAD" not in compare_speed.allocator_env("glibc")
    lib = tmp_path / "libjemalloc.so.2"
    lib.write_bytes(b"")
    monkeypatch.setenv("AUTOGAN_TF_JEMALLOC", str(lib))
    env = compare_speed.allocator_env("jemalloc")
    assert env["LD_PRELOAD"] == str(lib) and "dirty_decay_ms:-1" in env["MALLOC_CONF"]
    monkeypatch.setenv("AUTOGAN_TF_JEMALLOC", str(tmp_path / "missing.so"))
    with pytest.raises(RuntimeError, match="apt-get install libjemalloc2"):
        compare_speed.allocator_env("jemalloc")


def _run(script, *args, env=None):
    return subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", script), *args],
                          cwd=REPO, capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env or {})))


@pytest.mark.slow
def test_compare_speed_runs_the_project_side_per_allocator(tmp_path):
    lib = tmp_path / "libjemalloc.so.2"  # a stand-in the loader skips (with a warning)
    lib.write_bytes(b"")
    out = tmp_path / "speed.json"
    p = _run("compare_speed.py", "--no_anchor", "--which=derived,generation",
             "--precision=fp32", "--scale=0.05", "--repeats=1", "--num_images=20",
             "--allocator=glibc,jemalloc", f"--output={out}",
             env={"AUTOGAN_TF_JEMALLOC": str(lib)})
    assert p.returncode == 0, p.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["anchor"]["available"] is False and report["ratios"] == {}
    assert report["settings"]["allocators"] == ["glibc", "jemalloc"]
    assert set(report["project"]["derived_iteration"]) == {"fp32", "fp32+jemalloc"}
    assert set(report["project"]["inference"]) == {"fp32", "fp32+jemalloc"}
    p = _run("compare_speed.py", "--no_anchor", "--allocator=tcmalloc")
    assert p.returncode == 2 and "--allocator takes glibc, jemalloc" in p.stderr


@pytest.mark.slow
def test_bench_steps_times_the_folded_and_the_plain_graph():
    p = _run("bench_steps.py", "--which=derived", "--precision=fp32", "--scale=0.05",
             "--repeats=1", "--fold=on,off")
    assert p.returncode == 0, p.stderr[-3000:]
    lines = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
    assert [(x["benchmark"], x["folded"]) for x in lines] == [
        ("derived_iteration", True), ("derived_iteration", False)]
    p = _run("bench_steps.py", "--fold=maybe")
    assert p.returncode == 2 and "--fold takes on, off or on,off" in p.stderr
