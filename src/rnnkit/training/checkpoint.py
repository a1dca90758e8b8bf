"""Self-contained checkpoints: a directory with ``model.safetensors`` and ``config.json``.

* ``model.safetensors`` holds the weights. safetensors, unlike ``torch.save``,
  never runs code on load, so a checkpoint from elsewhere is safe to open.
* ``config.json`` holds whatever is needed to rebuild and use the model (model
  config, vocabulary, label names, tokenizer settings, metrics) plus a
  ``format_version`` checked on load, and the SHA-256 of ``model.safetensors``
  (``weights_sha256``): a weights file changed or damaged after saving is
  refused on load rather than served. A checkpoint saved before the digest
  existed has none and loads unchecked.

Writes are atomic: both files go into a temporary sibling directory that is
then renamed into place. An existing checkpoint is first renamed to a backup,
the new one renamed in, and the backup deleted, so at every instant the path
holds either the complete old checkpoint or the complete new one.

safetensors refuses tensors that share memory. Tied weights (the same tensor
under two keys, e.g. an embedding reused as the output layer) are stored once
and recorded as aliases in the file's header; other overlapping views are
cloned. Loading restores every key.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as serialize

from rnnkit.outputs import reported_as

FORMAT_VERSION = 1
MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
_VERSION_KEY = "format_version"
DIGEST_KEY = "weights_sha256"  # of the whole weights file, header and tensor data
# Keys of the safetensors header's string-to-string metadata.
_ALIASES_KEY = "rnnkit.aliases"
_ORDER_KEY = "rnnkit.order"


def save_checkpoint(directory: str | Path, state_dict: Mapping[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write ``state_dict`` and ``meta`` to ``directory`` atomically, replacing a checkpoint already there.

    Raises TypeError if ``meta`` is not JSON-serialisable or a value is not a tensor,
    and FileExistsError if ``directory`` exists but is not a checkpoint (it would be lost).
    Returns the checkpoint directory.
    """
    directory = Path(directory)
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a mapping of names to tensors, got {type(state_dict).__name__}")
    if not isinstance(meta, dict):
        raise TypeError(f"meta must be a dict, got {type(meta).__name__}")
    for reserved in (_VERSION_KEY, DIGEST_KEY):
        if reserved in meta:
            raise ValueError(f"meta key {reserved!r} is reserved for the checkpoint format")
    tensors, aliases = _dedupe(state_dict)
    header = {_ALIASES_KEY: json.dumps(aliases), _ORDER_KEY: json.dumps(list(state_dict))}
    # Serialised in memory, so the digest is of the very bytes written (no second read of the file).
    weights = serialize(tensors, metadata=header)
    try:
        # Serialised before anything touches the disk; strict JSON (no NaN) so any tool can read it.
        config_text = json.dumps({_VERSION_KEY: FORMAT_VERSION, DIGEST_KEY: hashlib.sha256(weights).hexdigest(),
                                  **meta}, indent=2, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise TypeError(f"meta for checkpoint {directory} is not JSON-serialisable: {error}") from error

    if directory.exists():
        _check_replaceable(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    try:
        write_file(staging / MODEL_FILE, weights)
        write_file(staging / CONFIG_FILE, (config_text + "\n").encode("utf-8"))
        for name in (MODEL_FILE, CONFIG_FILE):
            _fsync_file(staging / name)
        _swap_in(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def load_checkpoint(
    directory: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint written by ``save_checkpoint``: ``(state_dict, meta)`` with tensors on ``map_location``.

    Never unpickles. Errors name the offending path: FileNotFoundError for a missing
    directory or file, ValueError for invalid JSON, a corrupt weights file or an
    unknown format version. ``meta`` is returned without ``format_version``.
    """
    directory = _checkpoint_files(directory, (MODEL_FILE, CONFIG_FILE))
    meta, digest = _read_config_and_digest(directory / CONFIG_FILE)
    model_path = directory / MODEL_FILE
    _check_digest(model_path, digest)
    device = str(map_location) if isinstance(map_location, torch.device) else map_location
    try:
        with safe_open(str(model_path), framework="pt", device=device) as handle:
            header = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        aliases = json.loads(header.get(_ALIASES_KEY, "{}"))
        order = json.loads(header.get(_ORDER_KEY, "null")) or list(tensors) + list(aliases)
    except (SafetensorError, json.JSONDecodeError, OSError) as error:
        raise ValueError(f"cannot read weights from {model_path}: {error}") from error
    for alias, canonical in aliases.items():
        if canonical not in tensors:
            raise ValueError(f"{model_path}: alias {alias!r} points at missing tensor {canonical!r}")
        tensors[alias] = tensors[canonical]
    state_dict = {key: tensors[key] for key in order}
    return state_dict, meta


def read_meta(directory: str | Path) -> dict[str, Any]:
    """The ``meta`` of a checkpoint without reading its weights (e.g. which kind of model it holds)."""
    return _read_config_and_digest(_checkpoint_files(directory, (CONFIG_FILE,)) / CONFIG_FILE)[0]


def verify_weights(directory: str | Path) -> None:
    """Check the weights file against the digest in ``config.json`` without loading it (a pre-flight check)."""
    directory = _checkpoint_files(directory, (MODEL_FILE, CONFIG_FILE))
    _check_digest(directory / MODEL_FILE, _read_config_and_digest(directory / CONFIG_FILE)[1])


def write_file(path: Path, data: bytes | memoryview, sync: bool = False) -> None:
    """Write ``data`` to ``path`` (then fsync it, with ``sync``); an OS error (a full disk above all) names the path.

    The kernel's ENOSPC names no file, and safetensors' or torch's own writers turn it into an error that names
    none either: every checkpoint and training state goes through here.
    """
    with reported_as(path), open(path, "wb") as handle:
        handle.write(data)
        if sync:
            handle.flush()
            os.fsync(handle.fileno())


def _check_digest(model_path: Path, digest: str | None) -> None:
    if digest is None:  # saved before checkpoints recorded one
        return
    try:
        with open(model_path, "rb") as handle:
            found = hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as error:
        raise ValueError(f"cannot read weights from {model_path}: {error.strerror or error}") from error
    if found != digest:
        raise ValueError(f"{model_path} does not match the {DIGEST_KEY} recorded in {model_path.parent / CONFIG_FILE}"
                         f": the weights were changed or damaged after saving (sha256 {found[:16]}..., recorded "
                         f"{digest[:16]}...); refusing to use them")


def _checkpoint_files(directory: str | Path, names: tuple[str, ...]) -> Path:
    """``directory`` as a Path once it is a folder holding ``names``; FileNotFoundError naming what is missing."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"no checkpoint directory at {directory}{_backup_hint(directory)}")
    for name in names:
        if not (directory / name).is_file():
            raise FileNotFoundError(f"checkpoint file missing: {directory / name}")
    return directory


def _read_config_and_digest(path: Path) -> tuple[dict[str, Any], str | None]:
    """``(meta, weights digest or None)`` of a ``config.json``."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"invalid JSON in {path} (line {error.lineno}, column {error.colno}): {error.msg}") from error
    if not isinstance(meta, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(meta).__name__}")
    version = meta.pop(_VERSION_KEY, None)
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{path} has {_VERSION_KEY}={version!r}; this rnnkit reads version {FORMAT_VERSION} only"
        )
    digest = meta.pop(DIGEST_KEY, None)
    if digest is not None and not (isinstance(digest, str) and len(digest) == 64):
        raise ValueError(f"{path}: {DIGEST_KEY} must be a SHA-256 hex digest, got {digest!r}")
    return meta, digest


def _dedupe(state_dict: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """CPU, contiguous, non-overlapping tensors for safetensors, and ``{alias: canonical}`` for tied ones."""
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    # (device, storage address) -> [(key, original tensor)] already kept.
    seen: dict[tuple[str, int], list[tuple[str, torch.Tensor]]] = {}
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise TypeError(f"state_dict keys must be str, got {key!r}")
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"state_dict[{key!r}] must be a tensor, got {type(value).__name__}")
        value = value.detach()
        if value.numel() > 0:  # empty tensors have no memory to share
            kept = seen.setdefault((str(value.device), value.untyped_storage().data_ptr()), [])
            twin = next((name for name, other in kept if _same_view(value, other)), None)
            if twin is not None:
                aliases[key] = twin
                continue
            kept.append((key, value))
        # A fresh contiguous CPU copy: safetensors refuses tensors that overlap another key or
        # are slices of a larger buffer, and a copy is cheap at RNN sizes.
        tensors[key] = value.to("cpu").clone(memory_format=torch.contiguous_format)
    return tensors, aliases


def _same_view(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (
        a.dtype == b.dtype and a.shape == b.shape and a.stride() == b.stride()
        and a.storage_offset() == b.storage_offset()
    )


def _check_replaceable(directory: Path) -> None:
    if not directory.is_dir():
        raise FileExistsError(f"cannot write a checkpoint to {directory}: it exists and is not a directory")
    extra = sorted(p.name for p in directory.iterdir() if p.name not in (MODEL_FILE, CONFIG_FILE))
    if extra:
        raise FileExistsError(
            f"refusing to replace {directory}: it holds files that are not part of a checkpoint: {extra}"
        )


def _swap_in(staging: Path, directory: Path) -> None:
    """Rename ``staging`` to ``directory``; an old ``directory`` is kept aside until the new one is in."""
    if not directory.exists():
        os.replace(staging, directory)
    else:
        backup = directory.with_name(f".{directory.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(directory, backup)
        try:
            os.replace(staging, directory)
        except BaseException:
            os.replace(backup, directory)
            raise
        shutil.rmtree(backup, ignore_errors=True)
    _fsync_dir(directory.parent)


def _backup_hint(directory: Path) -> str:
    """If a crash hit between the two renames, point at the surviving old checkpoint."""
    backups = siblings_named(directory, ".old-", "[0-9a-f]{8}")
    return f" (a previous version survives at {backups[-1]})" if backups else ""


def siblings_named(path: Path, infix: str, suffix: str) -> list[Path]:
    """The entries beside ``path`` named ``.NAME`` + ``infix`` + a match of the regex ``suffix``, sorted.

    NAME is taken literally, never as a pattern: with ``glob``, ``--out 'h[1]'`` would find (and a new run
    discard) the folders of ``h1``, and ``h[1]``'s own would never be found.
    """
    if not path.parent.is_dir():
        return []
    pattern = re.compile(re.escape(f".{path.name}{infix}") + suffix)
    return sorted(p for p in path.parent.iterdir() if pattern.fullmatch(p.name))


def _fsync_file(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    # Makes the renames durable on POSIX; directories cannot be opened this way on Windows.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
