"""benchmarks/gpu_check.sh runs end to end on a CPU at tiny sizes and prints the JSON it
promises: step figures, stage costs, reward throughput, a mock search and the projection."""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_gpu_check_runs_on_cpu_at_tiny_sizes(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, TF_CPP_MIN_LOG_LEVEL="3")
    p = subprocess.run(
        ["bash", os.path.join(REPO, "benchmarks", "gpu_check.sh"), "--tiny",
         f"--out_dir={tmp_path}", "--xla_timeout=120",
         f"--mirrored_script={tmp_path / 'absent.sh'}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    assert p.returncode == 0, p.stderr[-3000:]
    report = json.loads(p.stdout)
    assert report["tiny"] is True
    assert report["device"]["kind"] in ("cpu", "gpu")
    assert report["device"]["auto_supernet"].startswith("search: ")
    steps = report["steps"]
    for figure in ("search_iteration", "derived_iteration"):
        for precision in ("fp32", "bf16"):
            assert steps[figure][precision]["seconds_per_iteration"] > 0
        assert "bf16+xla" in steps[figure]  # a figure, or why there is none
    assert steps["search_iteration"]["fp32"]["trace_seconds"] > 0
    for precision in ("fp32", "bf16"):  # the plain op order too, for folding's effect
        assert steps["derived_iteration"][precision + "+unfolded"]["seconds_per_iteration"] > 0
        assert steps["generation"][precision + "+unfolded"]["images_per_second"] > 0
    assert steps["generation"]["fp32"]["images_per_second"] > 0
    stages = report["search_stages"]["stages"]
    assert [stages[s]["resolution"] for s in "012"] == [8, 16, 32]
    assert all(stages[s]["d_step_seconds"] > 0 and stages[s]["g_step_seconds"] > 0
               for s in "012")
    assert report["reward"]["images_per_second"] > 0
    assert report["mock_search"]["ok"], report["mock_search"]
    assert report["mirrored"] == {"skipped": f"{tmp_path / 'absent.sh'} not found"}
    proj = report["projection"]
    full, reset = proj["without_reset_full_budget"], proj["with_dynamic_reset"]
    assert full["d_steps"] == 65 * 15 * (50_000 // 64)
    assert full["reward_images"] == (65 * 30 + 3 * 10 + 3 * 2 * 20) * 5000
    assert 0 < reset["training_hours"] < full["training_hours"]
    assert reset["hours"] == pytest.approx(reset["training_hours"] + reset["reward_hours"],
                                           abs=0.02)
    assert any("tiny" in a for a in proj["assumptions"])
