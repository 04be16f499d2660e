"""The model zoo's specs (models/zoo.h) in Python, read from //models:zoo_json.

The C++ ModelSpecs are the one place a recipe or size is written; the scripts
beside them (the PyTorch reference in bench/ and models/) take theirs from
here:

    from models import zoo
    spec = zoo.spec("resnet")
    spec["recipe"]["lr"], spec["recipe"]["batch_size"], spec["quick_input_size"]
    zoo.names()   # every model, smallest first, as AllModels() lists them

The JSON comes from the binary named by $DIVE_ZOO_JSON, else from the
zoo_json beside this file (a Bazel target that depends on //models:zoo_py
has it in its runfiles), else from `bazel run //models:zoo_json` in this
repository (a script run from the source tree).
"""

import functools
import json
import os
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@functools.lru_cache(maxsize=None)
def _specs():
    binary = os.environ.get("DIVE_ZOO_JSON")
    beside = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "zoo_json")
    if not binary and os.path.isfile(beside) and os.access(beside, os.X_OK):
        binary = beside
    command = [binary] if binary else [
        "bazel", "run", "--noshow_progress", "--ui_event_filters=-info",
        "//models:zoo_json"]
    run = subprocess.run(command, cwd=None if binary else REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    if run.returncode != 0:  # Bazel's own progress is shown only then
        raise RuntimeError(f"{' '.join(command)} failed:\n{run.stderr}")
    return {m["name"]: m for m in json.loads(run.stdout)["models"]}


def names():
    """Every model name, in the zoo's order (smallest model first)."""
    return list(_specs())


def spec(name):
    """The spec of `name` as a dict; KeyError naming the known models."""
    specs = _specs()
    if name not in specs:
        raise KeyError(f"unknown model '{name}'; known models: "
                       f"{', '.join(specs)}")
    return specs[name]
