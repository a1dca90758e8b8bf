"""argparse options generated from typed dataclass configs, so the CLI and the Python API never drift.

Every field becomes ``--field-name`` with its type, its default and the ``help`` text
from the field's metadata; booleans get ``--name/--no-name``.
"""

from __future__ import annotations

import argparse
import types
import typing
from dataclasses import MISSING, fields

from rnnkit.config_fields import HELP_KEY


def _base_type(annotation):
    """int | None -> (int, True); bool -> (bool, False)."""
    if isinstance(annotation, str):
        annotation = eval(annotation, vars(typing), {})  # annotations are postponed strings
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0], True
    return annotation, False


def _none_or(kind):
    def parse(text: str):
        return None if text.lower() == "none" else kind(text)

    parse.__name__ = kind.__name__
    return parse


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls, *, title: str | None = None,
                            skip: tuple[str, ...] = (), defaults: dict | None = None) -> None:
    group = parser.add_argument_group(title or cls.__name__)
    defaults = defaults or {}
    for f in fields(cls):
        if f.name in skip:
            continue
        kind, optional = _base_type(f.type)
        default = defaults.get(f.name, f.default if f.default is not MISSING else None)
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get(HELP_KEY, "")
        if kind is bool:
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default,
                               help=f"{help_text} (default: {default})")
        else:
            parse = _none_or(kind) if optional else kind
            group.add_argument(flag, dest=f.name, type=parse, default=default, metavar=kind.__name__.upper(),
                               help=f"{help_text} (default: {default})")


def dataclass_from_args(cls, args: argparse.Namespace, **overrides):
    values = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
    values.update(overrides)
    return cls(**values)
