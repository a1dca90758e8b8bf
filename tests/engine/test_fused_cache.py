"""The compiled-engine cache: a private directory, and a library loaded only if it is ours, unchanged since we
built it (owner, mode, SHA-256 recorded at build time); anything else is refused and rebuilt."""

from __future__ import annotations

import os
import stat
import warnings

import pytest

from rnnkit.engine import cache
from rnnkit.engine.fused import build

ROOT = os.geteuid() == 0
as_root = pytest.mark.skipif(not ROOT, reason="changing a file's owner needs root (CI runs as root)")


@pytest.fixture(scope="module")
def good():
    """The name, bytes and hash record of the library this session runs (built or loaded by the conftest)."""
    assert build.load() is not None
    name = build._cache_name(build.find_compiler())
    library, problem = cache.read(name)
    record, record_problem = cache.read(name + ".sha256")
    assert problem is None and record_problem is None, (problem, record_problem)
    return name, library, record


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A cache directory of the test's own (created by the engine, below a parent that does not exist yet)."""
    path = tmp_path / "parent" / "rnnkit"
    monkeypatch.setenv("RNNKIT_CACHE", str(path))
    return path


def _plant(home, good, library=None, record=None):
    name, good_library, good_record = good
    assert cache.directory() == home
    cache.write(name, good_library if library is None else library, mode=0o700)
    cache.write(name + ".sha256", good_record if record is None else record)
    return home / name


def test_directory_is_created_private_whatever_the_umask(home):
    old = os.umask(0)
    try:
        assert cache.directory() == home
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o700
    assert cache.refused() is None


def test_own_unchanged_library_loads(home, good):
    _plant(home, good)
    lib, problem = build._load_cached(good[0])
    assert problem is None and lib is not None
    assert lib.rk_forward_f32 is not None


def test_foreign_content_is_refused(home, good):
    library = bytearray(good[1])
    library[len(library) // 2] ^= 0xFF
    _plant(home, good, library=bytes(library))
    lib, problem = build._load_cached(good[0])
    assert lib is None and "differs from the hash recorded" in problem


def test_library_without_a_hash_record_is_refused(home, good):
    path = _plant(home, good)
    os.unlink(str(path) + ".sha256")
    assert build._load_cached(good[0]) == (None, "no hash was recorded for it")


@pytest.mark.parametrize("mode", [0o720, 0o702, 0o777])
def test_library_writable_by_others_is_refused(home, good, mode):
    path = _plant(home, good)
    os.chmod(path, mode)
    lib, problem = build._load_cached(good[0])
    assert lib is None and f"writable by others (mode {mode:04o})" in problem


def test_hash_record_writable_by_others_is_refused(home, good):
    path = _plant(home, good)
    os.chmod(str(path) + ".sha256", 0o666)
    lib, problem = build._load_cached(good[0])
    assert lib is None and "hash record is writable by others" in problem


@as_root
def test_library_owned_by_another_user_is_refused(home, good):
    path = _plant(home, good)
    os.chown(path, 65534, 65534)
    lib, problem = build._load_cached(good[0])
    assert lib is None and "owned by uid 65534" in problem


def test_symbolic_link_is_refused(home, good, tmp_path):
    elsewhere = tmp_path / "elsewhere.so"
    elsewhere.write_bytes(good[1])
    os.chmod(elsewhere, 0o700)
    _plant(home, good)
    (home / good[0]).unlink()
    (home / good[0]).symlink_to(elsewhere)
    lib, problem = build._load_cached(good[0])
    assert lib is None and "without following links" in problem


def test_older_readable_directory_is_tightened(home, good):
    home.mkdir(parents=True)
    os.chmod(home, 0o755)
    assert cache.directory() == home and cache.refused() is None
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o700


def _refused(home, problem_words: str):
    with pytest.warns(UserWarning, match="cache directory .* is refused"):
        used = cache.directory()
    assert used != home and stat.S_IMODE(os.stat(used).st_mode) == 0o700 and os.stat(used).st_uid == os.geteuid()
    assert problem_words in cache.refused()
    return used


def test_world_writable_directory_is_refused_and_left_alone(home, good):
    home.mkdir(parents=True)
    planted = home / good[0]
    planted.write_bytes(good[1])
    os.chmod(home, 0o777)
    used = _refused(home, "others can write into it (mode 0777)")
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o777  # never chmod-ed: not ours to fix
    cache.write("x", b"1")
    assert (used / "x").exists() and not (home / "x").exists()


def test_a_file_in_the_way_is_refused(home):
    home.parent.mkdir(parents=True)
    home.write_text("not a directory")
    _refused(home, "it is not a directory")


def test_a_link_to_a_directory_is_refused(home, tmp_path):
    target = tmp_path / "target"
    target.mkdir(mode=0o700)
    home.parent.mkdir(parents=True)
    home.symlink_to(target)
    _refused(home, "it is a symbolic link")


@as_root
def test_another_users_directory_is_refused(home):
    home.mkdir(parents=True, mode=0o700)
    os.chown(home, 65534, 65534)
    _refused(home, "owned by uid 65534")


def test_refused_library_is_rebuilt_atomically(home, good, monkeypatch):
    """The whole ``load``: a tampered library is refused, a new one built (the compiler replaced by a copy of
    this session's build, to save ~3 s), loaded, and recorded; the next process would load it."""
    library = bytearray(good[1])
    library[-1] ^= 0x01
    _plant(home, good, library=bytes(library))

    def compile_copy(compiler, target):
        target.write_bytes(good[1])

    monkeypatch.setattr(build, "_compile", compile_copy)
    monkeypatch.setattr(build, "_state", {})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert build.load() is not None
    assert "the cached one was refused: its content differs" in build.provenance()
    assert (home / good[0]).read_bytes() == good[1]
    assert sorted(p.name for p in home.iterdir()) == sorted([good[0], good[0] + ".sha256"])  # no temporary left
    assert stat.S_IMODE(os.stat(home / good[0]).st_mode) == 0o700
    lib, problem = build._load_cached(good[0])
    assert problem is None and lib is not None


def test_a_cache_that_cannot_be_written_still_gives_the_kernels(home, good, monkeypatch):
    """A full disk (or a read-only cache) at the copy into the cache: the library just built is still used."""
    def compile_copy(compiler, target):
        target.write_bytes(good[1])

    def full_disk(name, data, mode=0o600):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(build, "_compile", compile_copy)
    monkeypatch.setattr(build, "_state", {})
    monkeypatch.setattr(cache, "write", full_disk)
    with pytest.warns(UserWarning, match="could not be kept in .*No space left on device"):
        lib = build.load()
    assert lib is not None and build.failure() is None
    assert lib.rk_forward_f32 is not None
