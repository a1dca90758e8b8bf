import json

import numpy as np
import pytest
import torch

from rnnkit.training import RunLog, read_log


def test_records_are_strict_json_lines(tmp_path):
    log = RunLog(tmp_path / "run" / "log.jsonl")
    log.write({"step": np.int64(3), "loss": torch.tensor(0.5), "bad": float("nan"), "path": tmp_path})
    log.write({"step": 4, "loss": float("inf")})
    lines = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    assert json.loads(lines[0]) == {"step": 3, "loss": 0.5, "bad": None, "path": str(tmp_path)}
    assert read_log(log.path) == [json.loads(line) for line in lines]
    RunLog(log.path)  # a new run starts a new log
    assert read_log(log.path) == []


def test_read_log_names_the_broken_line(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"a": 1}\n{oops\n')
    with pytest.raises(ValueError, match="log.jsonl:2"):
        read_log(path)
