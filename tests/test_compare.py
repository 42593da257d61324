"""The comparison runner (experiments/compare_lib and `python -m autogan_tf.compare`): the
steps of each cell, the uniform draw, results and table, skipping finished cells and steps on
a restart, failures and changed settings (with a fake executor), and a tiny comparison end to
end through the binary."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from autogan_tf import errors
from autogan_tf import search_space as ss
from autogan_tf.experiments import compare_lib

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _values(args):
    return dict(a[2:].partition("=")[::2] for a in args if a.startswith("--"))


def test_cells_run_the_same_training_flags_and_differ_only_where_they_must(tmp_path):
    cfg = compare_lib.CompareConfig(search_args=("--iterations_per_stage=1,1,1", "--seed=9"),
                                    train_args=("--max_iter=7",), derive_candidates=2)
    out = str(tmp_path)
    plans = {m: compare_lib.plan_cell(cfg, out, m, 3) for m in compare_lib.METHODS}
    auto_search, auto_derive = plans["autogan"]
    rand_search, rand_derive = plans["random"]
    assert [s.module for s in plans["autogan"]] == ["autogan_tf.search", "autogan_tf.derive"]
    assert set(auto_search.args) ^ set(rand_search.args) == {
        "--sampler=controller", "--sampler=uniform", f"--run_dir={out}/autogan/seed_3",
        f"--run_dir={out}/random/seed_3"}
    # The runner's seed and run_dir come last, so they win over the flagfile's.
    assert auto_search.args[-2:] == ("--seed=3", f"--run_dir={out}/autogan/seed_3")
    assert _values(auto_derive.args)["candidates"] == (
        f"{out}/autogan/seed_3/search/top_architectures.json")
    assert _values(auto_derive.args)["num_candidates"] == "2"
    for m in ("sngan", "autogan_cifar10_a", "uniform"):
        (step,) = plans[m]
        assert step.module == "autogan_tf.train"
        v = _values(step.args)
        assert v["max_iter"] == "7" and v["seed"] == "3"
        assert v["run_dir"] == f"{out}/{m}/seed_3/train"
    for step in (auto_derive, rand_derive, *plans["sngan"], *plans["uniform"]):
        assert step.args[:2] == ("--noprogress", "--max_iter=7")  # one recipe for all
    assert _values(plans["sngan"][0].args)["arch"] == "sngan"
    uniform = ss.Architecture.parse(_values(plans["uniform"][0].args)["arch"])
    assert uniform.tokens == compare_lib.uniform_architecture(3)
    with pytest.raises(errors.ConfigError, match="subset of"):
        compare_lib.CompareConfig(methods=("autogan", "darts"))
    with pytest.raises(errors.ConfigError, match="not a flag"):
        compare_lib.CompareConfig(train_args=("max_iter=3",))


def test_uniform_method_draws_every_token_uniformly_over_seeds():
    draws = np.array([compare_lib.uniform_architecture(s) for s in range(3000)])
    assert draws.shape == (3000, ss.ARCH_LENGTH)
    sizes = [t.size for cell in ss.CELL_TOKENS for t in cell]
    for i, k in enumerate(sizes):
        counts = np.bincount(draws[:, i], minlength=k)
        assert len(counts) == k and stats.chisquare(counts).pvalue > 1e-3, (i, counts)
    assert compare_lib.uniform_architecture(0) == compare_lib.uniform_architecture(0)
    ss.validate(compare_lib.uniform_architecture(5))


def test_expand_flags_reads_nested_flagfiles_then_the_extra_flags(tmp_path):
    (tmp_path / "base.cfg").write_text("# a comment\n--max_iter=50\n--seed=1\n")
    (tmp_path / "top.cfg").write_text(f"--flagfile={tmp_path / 'base.cfg'}\n--g_lr=1e-3\n")
    assert compare_lib.expand_flags(str(tmp_path / "top.cfg"), ["--max_iter=5"]) == (
        "--max_iter=50", "--seed=1", "--g_lr=1e-3", "--max_iter=5")
    assert compare_lib.expand_flags(None, ["--x=1"]) == ("--x=1",)
    with pytest.raises(errors.ConfigError, match="cannot read the flags"):
        compare_lib.expand_flags(str(tmp_path / "missing.cfg"))


def test_subprocess_executor_logs_the_command_and_returns_the_exit_status(tmp_path):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text('{"a": 1}')
    bad.write_text("{not json")
    seconds = []
    log = tmp_path / "logs" / "step.log"
    for path, status in ((good, 0), (bad, 1)):
        step = compare_lib.Step("check", "json.tool", (str(path),))
        assert compare_lib.subprocess_executor(step, str(log), seconds.append) == status
    text = log.read_text()
    assert f"-m json.tool {good}" in text and '"a": 1' in text and "Expecting property" in text
    assert len(seconds) == 2 and all(s > 0 for s in seconds)


# ----- the runner with a fake executor -----------------------------------------------------------
SCORES = {m: 2.0 + i for i, m in enumerate(compare_lib.METHODS)}


def _write(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f)


def _report(arch, is_mean, fid):
    return {"arch": list(arch), "iterations": 7,
            "final": {"is_mean": is_mean, "is_std": 0.1, "fid": fid}}


class FakeExecutor:
    """Writes what each binary would (summary, best.json, report.json) from the step's flags;
    records the calls; `fail` and `interrupt` pick steps that exit 1 or are killed."""

    def __init__(self, fail=None, interrupt=None):
        self.calls, self.fail, self.interrupt = [], fail, interrupt

    def __call__(self, step, log_path, tick):
        v = _values(step.args)
        run_dir, seed = v["run_dir"], int(v["seed"])
        method = os.path.basename(os.path.dirname(run_dir.rstrip("/").removesuffix("/train")))
        self.calls.append((method, seed, step.name))
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        with open(log_path, "a") as f:
            f.write(f"{step.name} of {method} seed {seed}\nsomething went wrong here\n")
        if self.interrupt and self.interrupt(method, seed, step.name):
            raise KeyboardInterrupt
        if self.fail and self.fail(method, seed, step.name):
            return 1
        tick(2.5)
        score = SCORES[method] + 0.1 * seed
        if step.name == "search":
            _write(os.path.join(run_dir, "search", "summary.json"), {
                "seconds": 10.0 + seed, "d_steps": 12, "reward": "is",
                "reward_by_iteration": [{"iteration": i, "stage": i // 2, "mean": score + i,
                                         "n": 2} for i in range(4)]})
        elif step.name == "derive":
            cand = os.path.join(run_dir, "derive", "candidate_0")
            _write(os.path.join(cand, "report.json"), _report(ss.REFERENCE_ARCHS["sngan"],
                                                               score, 40.0 - score))
            _write(os.path.join(run_dir, "derive", "best.json"), {"run_dir": cand})
        else:
            _write(os.path.join(run_dir, "report.json"), _report(
                ss.Architecture.parse(v["arch"]).tokens, score, 40.0 - score))
        return 0


def _cfg(**over):
    kw = dict(search_args=("--iterations_per_stage=1,1,1", "--max_shared_steps=4"),
              train_args=("--dataset=digits", "--max_iter=7", "--eval_images=40"),
              seeds=(0, 1))
    kw.update(over)
    return compare_lib.CompareConfig(**kw)


def test_runner_writes_results_and_skips_finished_cells_on_restart(tmp_path):
    out = str(tmp_path / "cmp")
    ex = FakeExecutor()
    results = compare_lib.run_compare(_cfg(), out, executor=ex, report=lambda line: None)
    assert len(ex.calls) == 2 * (2 + 2 + 1 + 1 + 1)
    assert ex.calls[:3] == [("autogan", 0, "search"), ("autogan", 0, "derive"),
                            ("random", 0, "search")]  # seed by seed
    assert results["finished"] and len(results["cells"]) == 10
    auto = results["methods"]["autogan"]
    assert auto["is_mean"]["mean"] == pytest.approx(2.05)
    assert auto["is_mean"]["std"] == pytest.approx(np.std([2.0, 2.1], ddof=1))
    assert auto["fid"]["mean"] == pytest.approx(37.95)
    assert auto["search_seconds"]["mean"] == pytest.approx(10.5)
    assert auto["train_seconds"]["mean"] == pytest.approx(2.5)
    assert results["methods"]["sngan"]["search_seconds"]["mean"] is None
    assert results["budgets"]["train"]["max_iter"] == "7"
    assert results["budgets"]["search"]["iterations_per_stage"] == "1,1,1"
    table = open(os.path.join(out, "results.md")).read()
    assert "| autogan: AutoGAN: controller search (MLAS) + derive | 2.05 ± 0.07 | 37.95 ± 0.07 " \
           "| 2 | 10 ± 1 | 2 ± 0 |" in table  # the wall times at 0 decimals
    assert "| sngan: SN-GAN's generator (hand-designed) | 4.05 ± 0.07 |" in table
    assert "7 generator iterations" in table and "iterations per stage 1,1,1" in table
    assert json.load(open(os.path.join(out, "results.json")))["cells"] == results["cells"]
    from PIL import Image
    for name in ("search_rewards.png", "final_scores.png"):
        with Image.open(os.path.join(out, name)) as img:
            assert len(np.unique(np.asarray(img.convert("RGB")).reshape(-1, 3), axis=0)) > 10
    # Restarted: every finished cell is skipped; nothing runs; the same results.
    lines, again = [], FakeExecutor()
    second = compare_lib.run_compare(_cfg(), out, executor=again, report=lines.append)
    assert again.calls == []
    assert sum("finished before, skipped" in line for line in lines) == 10
    assert second["cells"] == results["cells"]
    # A new seed adds cells; the old ones stay skipped.
    more = FakeExecutor()
    third = compare_lib.run_compare(_cfg(seeds=(0, 1, 2)), out, executor=more,
                                    report=lambda line: None)
    assert {c[1] for c in more.calls} == {2} and len(third["cells"]) == 15


def test_a_killed_cell_resumes_at_its_unfinished_step_and_failures_are_retried(tmp_path):
    out = str(tmp_path / "cmp")
    cfg = _cfg(seeds=(0,), methods=("autogan", "uniform", "sngan"))
    killed = FakeExecutor(interrupt=lambda m, s, step: step == "derive")
    with pytest.raises(KeyboardInterrupt):
        compare_lib.run_compare(cfg, out, executor=killed, report=lambda line: None)
    assert killed.calls == [("autogan", 0, "search"), ("autogan", 0, "derive")]
    failing = FakeExecutor(fail=lambda m, s, step: m == "uniform")
    with pytest.raises(compare_lib.CompareError, match=r"uniform seed 0: .*train failed "
                       r"\(exit status 1; see .*uniform/seed_0/logs/train.log\): .*went wrong"):
        compare_lib.run_compare(cfg, out, executor=failing, report=lambda line: None)
    # The search finished before the kill and is not run again; sngan ran after the failure.
    assert failing.calls == [("autogan", 0, "derive"), ("uniform", 0, "train"),
                             ("sngan", 0, "train")]
    partial = json.load(open(os.path.join(out, "results.json")))
    assert [c["method"] for c in partial["cells"]] == ["autogan", "sngan"]
    assert not partial["finished"] and "uniform seed 0" in partial["failed"][0]
    retry = FakeExecutor()
    results = compare_lib.run_compare(cfg, out, executor=retry, report=lambda line: None)
    assert retry.calls == [("uniform", 0, "train")] and results["finished"]


def test_a_cell_that_ran_with_other_settings_is_refused_before_anything_runs(tmp_path):
    out = str(tmp_path / "cmp")
    cfg = _cfg(seeds=(0,), methods=("sngan", "autogan"))
    compare_lib.run_compare(cfg, out, executor=FakeExecutor(), report=lambda line: None)
    changed = FakeExecutor()
    with pytest.raises(errors.ConfigError, match=r"sngan/seed_0 ran its train step with other "
                       r"settings \(differing flags: --max_iter=7 --max_iter=9\)"):
        compare_lib.run_compare(
            _cfg(seeds=(0,), methods=("sngan", "autogan"),
                 train_args=("--dataset=digits", "--max_iter=9", "--eval_images=40")),
            out, executor=changed, report=lambda line: None)
    assert changed.calls == []


# ----- the binary, end to end at tiny sizes ------------------------------------------------------
_SEARCH = ["--dataset=digits", "--bottom_width=2", "--gf_dim=8", "--df_dim=8", "--latent_dim=16",
           "--d_batch_size=8", "--g_batch_size=8", "--n_critic=2", "--iterations_per_stage=1,1,1",
           "--controller_steps=2", "--num_candidates=2", "--top_k=1", "--max_shared_steps=4",
           "--reward_images=40", "--reward_splits=2", "--policy_eval_archs=0",
           "--classifier=digits"]
_TRAIN = ["--dataset=digits", "--bottom_width=2", "--gf_dim=8", "--df_dim=8", "--latent_dim=16",
          "--d_batch_size=8", "--g_batch_size=8", "--n_critic=1", "--ema_decay=0.9",
          "--max_iter=2", "--eval_every=2", "--eval_images=40", "--real_num_images=100",
          "--checkpoint_every=2", "--classifier=digits"]


def _compare(flagfile, cache):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", AUTOGAN_TF_CACHE=cache,
               PYTHONPATH=os.pathsep.join([REPO_ROOT, os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "autogan_tf.compare", f"--flagfile={flagfile}"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1500)


@pytest.mark.slow  # two tiny searches, two derivations and three trainings, as subprocesses
def test_binary_runs_a_tiny_comparison_and_a_restart_skips_every_cell(tmp_path, digits_cache):
    (tmp_path / "search.cfg").write_text("\n".join(_SEARCH + [f"--cache_dir={digits_cache}",
                                                              "--max_shared_steps=6"]) + "\n")
    (tmp_path / "train.cfg").write_text("\n".join(_TRAIN + [f"--cache_dir={digits_cache}"]))
    out = tmp_path / "cmp"
    (tmp_path / "compare.cfg").write_text("\n".join([
        f"--search_flagfile={tmp_path / 'search.cfg'}", "--search_arg=--max_shared_steps=4",
        f"--train_flagfile={tmp_path / 'train.cfg'}", "--seeds=0", f"--output_dir={out}"]))
    p = _compare(tmp_path / "compare.cfg", digits_cache)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    results = json.load(open(out / "results.json"))
    assert results["finished"] and [c["method"] for c in results["cells"]] == list(
        compare_lib.METHODS)
    for cell in results["cells"]:
        report = json.load(open(os.path.join(cell["train_run"], "report.json")))
        assert report["iterations"] == 2 and cell["iterations"] == 2  # the same budget
        assert cell["is_mean"] == report["final"]["is_mean"] and cell["fid"] > 0
    by = {c["method"]: c for c in results["cells"]}
    assert by["sngan"]["arch"] == list(ss.REFERENCE_ARCHS["sngan"])
    assert by["uniform"]["arch"] == list(compare_lib.uniform_architecture(0))
    for m in ("autogan", "random"):  # the searches ran at the --search_arg budget
        summary = json.load(open(out / m / "seed_0" / "search" / "summary.json"))
        assert summary["d_steps"] == 3 * 4 and summary["finished"]
        assert summary["sampler"] == {"autogan": "controller", "random": "uniform"}[m]
        assert len(by[m]["reward_by_iteration"]) == 3
    table = (out / "results.md").read_text()
    assert table.count("\n| ") == 6 and "2 generator iterations" in table  # header + 5 rows
    for name in ("search_rewards.png", "final_scores.png"):
        assert (out / name).stat().st_size > 1000
    # Started again: every cell is skipped, no step runs (the logs do not grow).
    logs = {str(p_): p_.stat().st_size for p_ in out.rglob("logs/*.log")}
    again = _compare(tmp_path / "compare.cfg", digits_cache)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("finished before, skipped") == 5
    assert {str(p_): p_.stat().st_size for p_ in out.rglob("logs/*.log")} == logs
    assert json.load(open(out / "results.json"))["cells"] == results["cells"]
