"""``rnnkit --help``, every verb's ``--help`` and argument errors load no torch: it is imported once a verb runs.

Each check runs in a fresh interpreter (this one has torch loaded already) and reports which heavy packages the
parser and the help texts pulled in. No timing is asserted: what makes ``--help`` slow is importing these.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
HEAVY = ("torch", "numpy", "matplotlib", "onnx", "onnxruntime", "fastapi", "uvicorn", "pydantic", "safetensors")

# Runs every command line through the real entry point, then lists the heavy packages loaded.
PROBE = """
import contextlib, io, json, sys
from rnnkit.cli.main import build_parser, main

verbs = next(a for a in build_parser()._subparsers._group_actions if a.dest == "verb").choices
runs = [["--help"]] + [[verb, "--help"] for verb in verbs] + [["train", "--epochs", "abc"], ["frobnicate"], []]
answers = []
for argv in runs:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit:
            code = exit.code
    answers.append({"argv": argv, "code": code, "out": out.getvalue(), "err": err.getvalue()})
heavy = [name for name in sys.argv[1:] if name in sys.modules]
print(json.dumps({"answers": answers, "heavy": heavy, "verbs": list(verbs)}))
"""


def python(code: str, *args: str) -> str:
    """What ``code`` prints, run by a fresh interpreter with this checkout's sources first on the path."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_help_and_argument_errors_load_no_torch():
    probe = json.loads(python(PROBE, *HEAVY))
    assert probe["heavy"] == []
    answers = {" ".join(a["argv"]): a for a in probe["answers"]}
    assert len(probe["verbs"]) >= 10
    for verb in ["", *probe["verbs"]]:
        helped = answers[f"{verb} --help".strip()]
        assert helped["code"] == 0
        assert helped["out"].startswith(f"usage: rnnkit {verb}".rstrip()), helped["out"][:200]
    epochs = answers["train --epochs abc"]
    assert epochs["code"] == 2
    assert "rnnkit train: error: argument --epochs: invalid int value: 'abc'" in epochs["err"]
    assert answers["frobnicate"]["code"] == 2
    assert "invalid choice: 'frobnicate'" in answers["frobnicate"]["err"]
    assert answers[""]["code"] == 2  # no verb


def test_running_a_verb_still_loads_torch():
    # The probe above must be able to see torch: here a verb runs (the cheapest) and loads it.
    code = "import sys\nfrom rnnkit.cli.main import main\nmain(['datasets'])\nprint('torch' in sys.modules)"
    assert python(code).splitlines()[-1] == "True"
