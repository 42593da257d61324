"""The package keeps its layers: no module imports from a higher one (tools/bazel/layering.py).

Runs the same check as `tools/bazel/check_deps.py`, without Bazel, on this source tree and on
small made-up trees that break each rule; and checks that the BUILD files written from the
graph (`tools/bazel/gen_build.py`) let each layer be seen only by the layers above it.
"""

import importlib.util
import pathlib
import os
import sys
import textwrap

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.join(REPO, "tools", "bazel")


def _load(name):
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, os.path.join(TOOLS, name + ".py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


layering = _load("layering")
gen_build = _load("gen_build")


def _tree(root, files):
    """Writes ``{relative path: source}`` under ``root``, with every package's __init__.py."""
    for rel, source in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
        for parent in path.relative_to(root).parents:
            if parent.parts and not (root / parent / "__init__.py").exists():
                (root / parent / "__init__.py").write_text("")
    return root


def test_source_tree_keeps_its_layers():
    modules = layering.scan(REPO)
    assert layering.layering_errors(modules) == []
    groups = {name: m.group for name, m in modules.items()}
    assert {
        "autogan_tf.search_space": "base",
        "autogan_tf.errors": "base",
        "autogan_tf.nn.layers": "nn",
        "autogan_tf.eval.metrics": "eval",
        "autogan_tf.training.gan": "training",
        "autogan_tf.serving.export_lib": "serving",
        "autogan_tf.search.oracle": "search",
        "autogan_tf.experiments.proxy_lib": "experiments",
        "autogan_tf.experiments.compare_lib": "experiments",
        "autogan_tf.cli.runner": "cli",
        "autogan_tf.train": "binaries",
        "autogan_tf.search.__main__": "binaries",
    }.items() <= groups.items()
    binaries = {name for name, m in modules.items() if m.group == "binaries"}
    assert {"autogan_tf.arch", "autogan_tf.derive", "autogan_tf.evaluate",
            "autogan_tf.export", "autogan_tf.train", "autogan_tf.search.__main__",
            "autogan_tf.proxy", "autogan_tf.compare"} <= binaries
    assert all(modules[name].entry_point for name in binaries)
    # Imports are read through aliases, `from package import module` and function bodies.
    assert {"autogan_tf.nn.layers", "autogan_tf.search_space"} <= modules[
        "autogan_tf.nn.generators"].imports
    assert "autogan_tf.training.train_lib" in modules["autogan_tf.export"].imports


def test_every_upward_import_is_reported(tmp_path):
    root = _tree(tmp_path, {
        "autogan_tf/seeds.py": "import os\n",
        "autogan_tf/train.py": """\
            from autogan_tf.cli import runner
            if __name__ == "__main__":
                runner.run()
            """,
        "autogan_tf/report.py": "from autogan_tf import train\n",
        "autogan_tf/nn/layers.py": """\
            from autogan_tf import seeds

            def later():
                from ..training import gan
            """,
        "autogan_tf/training/gan.py": "from autogan_tf.nn import layers\n",
        "autogan_tf/serving/export_lib.py": "import autogan_tf.search.oracle\n",
        "autogan_tf/search/oracle.py": "from autogan_tf.training.gan import step\n",
        "autogan_tf/search/__main__.py": "from autogan_tf.cli import runner\n",
        "autogan_tf/cli/runner.py": "from autogan_tf.search import oracle\n",
        "autogan_tf/misc/util.py": "from autogan_tf import seeds\n",
    })
    modules = layering.scan(root)
    assert modules["autogan_tf.train"].group == "binaries"
    assert modules["autogan_tf.report"].group == "base"
    errors = layering.layering_errors(modules)
    assert len(errors) == 4, errors
    assert errors[0].startswith("autogan_tf/misc: package autogan_tf.misc has no layer;"
                                " add it to LAYERS")
    assert errors[1].startswith("autogan_tf/nn/layers.py imports autogan_tf.training.gan: nn "
                                "is below training (base < nn < eval < training < serving, "
                                "search < experiments < cli < binaries); move")
    assert errors[2].startswith("autogan_tf/report.py imports autogan_tf.train: base is below "
                                "binaries")
    assert errors[3].startswith("autogan_tf/serving/export_lib.py imports "
                                "autogan_tf.search.oracle: serving and search share a layer "
                                "and stay independent")


def test_tests_depend_on_what_their_subprocesses_run(tmp_path):
    root = _tree(tmp_path, {
        "autogan_tf/search/__main__.py": "",
        "autogan_tf/search/oracle.py": "",
        "autogan_tf/nn/generators.py": "",
        "tests/test_x.py": '''\
            import subprocess, sys
            import pytest
            SCRIPT = """
                from autogan_tf.nn.generators import DerivedGenerator
            """
            @pytest.mark.slow
            def test_x():
                subprocess.run([sys.executable, "-m", "autogan_tf.search"])
                subprocess.run([sys.executable, "-c", SCRIPT])
            ''',
        "tests/test_y.py": "from autogan_tf.search import oracle\n",
    })
    tests = layering.scan_tests(root, layering.scan(root))
    assert tests["test_x"].imports == {"autogan_tf.search.__main__", "autogan_tf.nn.generators"}
    assert tests["test_x"].slow and not tests["test_y"].slow
    assert tests["test_y"].imports == {"autogan_tf.search.oracle"}


def _visibility(build_text, target):
    """The visibility list of ``target`` in a BUILD text, as written by gen_build."""
    block = build_text.split(f'    name = "{target}",\n', 1)[1].split("\n)", 1)[0]
    if "visibility = [" not in block:
        return []
    listed = block.split("visibility = [", 1)[1].split("]", 1)[0]
    return [item.strip().strip('",') for item in listed.split("\n") if item.strip()] or [
        listed.strip('"')]


def test_build_visibility_follows_the_layers(tmp_path):
    root = _tree(tmp_path, {
        "autogan_tf/seeds.py": "",
        "autogan_tf/train.py": 'from autogan_tf.cli import runner\nif __name__ == "__main__":\n'
                               "    pass\n",
        "autogan_tf/nn/layers.py": "from autogan_tf import seeds\n",
        "autogan_tf/training/gan.py": "from autogan_tf.nn import layers\n",
        "autogan_tf/search/oracle.py": "from autogan_tf.training import gan\n",
        "autogan_tf/search/__main__.py": "from autogan_tf.cli import runner\n",
        "autogan_tf/cli/runner.py": "from autogan_tf.search import oracle\n",
        "tests/test_z.py": "from autogan_tf.search import oracle\n",
    })
    files = gen_build.render_all(root)
    assert sorted(files) == ["autogan_tf/BUILD", "autogan_tf/cli/BUILD", "autogan_tf/nn/BUILD",
                             "autogan_tf/search/BUILD", "autogan_tf/training/BUILD",
                             "tests/BUILD"]
    assert gen_build.render_all(root) == files  # deterministic
    assert _visibility(files["autogan_tf/nn/BUILD"], "layers") == [
        "//autogan_tf:__subpackages__", "//tests:__pkg__"]
    # Training is seen by search, cli and the binaries, not by nn.
    assert _visibility(files["autogan_tf/training/BUILD"], "gan") == [
        "//autogan_tf:__pkg__", "//autogan_tf/cli:__pkg__", "//autogan_tf/search:__pkg__",
        "//tests:__pkg__"]
    # cli only by the binaries (autogan_tf/train.py, autogan_tf/search/__main__.py).
    assert _visibility(files["autogan_tf/cli/BUILD"], "runner") == [
        "//autogan_tf:__pkg__", "//autogan_tf/search:__pkg__", "//tests:__pkg__"]
    # A binary's library only by the whole-package target and the tests.
    assert _visibility(files["autogan_tf/search/BUILD"], "__main__") == [
        "//autogan_tf:__pkg__", "//tests:__pkg__"]
    assert 'name = "search_bin",' in files["autogan_tf/search/BUILD"]
    assert 'module = "autogan_tf.search",' in files["autogan_tf/search/BUILD"]
    assert ('    deps = [\n        ":package_init",\n        "//autogan_tf/training:gan",\n    ],'
            in files["autogan_tf/search/BUILD"])


def test_a_package_without_a_layer_is_refused_in_the_table():
    assert layering.group_rank("base") == 0
    assert layering.group_rank("serving") == layering.group_rank("search")
    assert layering.group_rank("training") < layering.group_rank("search") < layering.group_rank(
        "cli") < layering.group_rank("binaries")
    assert layering.group_rank("misc") is None


def test_models_training_eval_serving_and_their_binaries_import_without_keras_tuner():
    # keras-tuner is the search's dependency only: with it made unimportable, every module
    # below search/ still imports.
    import subprocess
    modules = [m.name for m in layering.scan(pathlib.Path(REPO)).values()
               if m.group in ("base", "nn", "eval", "training", "serving")
               and not m.entry_point]
    modules.append("autogan_tf.search.config")
    code = textwrap.dedent(f"""
        import importlib, sys
        sys.modules["keras_tuner"] = None  # `import keras_tuner` now raises ImportError
        for name in {modules!r}:
            importlib.import_module(name)
        print(len({modules!r}))
    """)
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3"),
                       timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert int(p.stdout.split()[-1]) == len(modules) >= 25
    # The binaries that train, inspect, score or export a fixed architecture need it no more
    # (one process each: their flags share names).
    for binary in ("train", "arch", "evaluate", "export"):
        p = subprocess.run([sys.executable, "-c", "import sys; sys.modules['keras_tuner'] = None; "
                            f"import autogan_tf.{binary}"], cwd=REPO, capture_output=True,
                           text=True, env=dict(os.environ, PYTHONPATH=REPO), timeout=300)
        assert p.returncode == 0, (binary, p.stderr[-2000:])
    # ... and the search's own modules do need it (the check above can fail).
    p = subprocess.run([sys.executable, "-c", "import sys; sys.modules['keras_tuner'] = None; "
                        "import autogan_tf.search.tuner"], cwd=REPO, capture_output=True,
                       text=True, env=dict(os.environ, PYTHONPATH=REPO), timeout=300)
    assert p.returncode != 0 and "keras_tuner" in p.stderr
