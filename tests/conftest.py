import os

import pytest
import torch

# backend="auto" follows the static rules in tests: a timed choice would make them depend on the machine's load
# (tests/engine/test_autotune.py turns the tuner on with cache contents it controls).
os.environ.setdefault("RNNKIT_AUTOTUNE", "0")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def full_disk(tmp_path):
    """A folder on a 64 KiB tmpfs, for a real ENOSPC: mounting needs root; elsewhere the test is skipped, saying
    why (each one has a simulated-ENOSPC twin that runs everywhere)."""
    import subprocess

    folder = tmp_path / "full"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)
