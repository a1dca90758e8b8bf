"""The CLI's defaults are the Python and HTTP APIs' defaults, read from one place."""

import inspect

from rnnkit.api.language_model import LanguageModel
from rnnkit.cli.main import build_parser
from rnnkit.serve.schemas import GenerateRequest


def test_generate_defaults_agree_across_cli_python_and_http():
    args = build_parser().parse_args(["generate", "runs/lm"])
    python = inspect.signature(LanguageModel.generate).parameters["max_tokens"].default
    assert args.max_tokens == python == GenerateRequest().max_tokens
    assert args.temperature == inspect.signature(LanguageModel.generate_iter).parameters["temperature"].default \
        == GenerateRequest().temperature
