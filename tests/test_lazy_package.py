"""``import rnnkit`` is cheap and complete: public names load on first use, every one resolves, ``*`` works.

Run in fresh interpreters (this one has torch and more loaded already).
"""

from __future__ import annotations

import json

from tests.cli.test_help_without_torch import python

LAZY_PACKAGES = ("rnnkit", "rnnkit.data", "rnnkit.training", "rnnkit.generation", "rnnkit.serve")

# Imports the packages, then reads every public name of each; reports what was loaded at each point.
PROBE = """
import importlib, json, sys
packages = [importlib.import_module(name) for name in sys.argv[1:]]
after_import = "torch" in sys.modules
resolved = {p.__name__: {n: getattr(p, n).__module__ if hasattr(getattr(p, n), "__module__") else None
                         for n in p.__all__} for p in packages}
listed = {p.__name__: sorted(set(p.__all__) - set(dir(p))) for p in packages}
print(json.dumps({"torch_after_import": after_import, "torch_after_use": "torch" in sys.modules,
                  "dynamo": "torch._dynamo" in sys.modules, "resolved": resolved, "not_in_dir": listed}))
"""


def test_importing_the_packages_loads_no_torch_and_every_name_resolves():
    probe = json.loads(python(PROBE, *LAZY_PACKAGES))
    assert probe["torch_after_import"] is False
    assert probe["torch_after_use"] is True  # the names are the real objects, which need torch
    assert probe["not_in_dir"] == dict.fromkeys(LAZY_PACKAGES, [])
    assert probe["resolved"]["rnnkit"]["GRU"] == "rnnkit.layers.recurrent"
    assert probe["resolved"]["rnnkit"]["Classifier"] == "rnnkit.saved.classifier"
    assert probe["resolved"]["rnnkit.generation"]["SamplingConfig"] == "rnnkit.generation.config"


def test_the_layers_load_no_dynamo():
    # torch.compiler.assume_constant_result imports torch._dynamo (seconds): the fused back end marks its
    # constants only on the compile path (engine/fused/compile_constants.py).
    code = ("import sys, torch, rnnkit\nlayer = rnnkit.GRU(3, 4, backend='auto')\nlayer(torch.randn(5, 2, 3))\n"
            "print('torch._dynamo' in sys.modules)")
    assert python(code).splitlines()[-1] == "False"


def test_star_import_and_attributes_match_the_modules():
    code = """
import rnnkit, rnnkit.cells, rnnkit.layers, rnnkit.api.language_model
namespace = {}
exec("from rnnkit import *", namespace)
missing = sorted(set(rnnkit.__all__) - set(namespace))
same = namespace["GRU"] is rnnkit.GRU is rnnkit.layers.GRU and rnnkit.LSTMCell is rnnkit.cells.LSTMCell \\
    and rnnkit.LanguageModel is rnnkit.api.language_model.LanguageModel
try:
    rnnkit.no_such_name
    unknown = None
except AttributeError as err:
    unknown = str(err)
print(missing, same, unknown)
"""
    assert python(code).strip() == "[] True module 'rnnkit' has no attribute 'no_such_name'"
