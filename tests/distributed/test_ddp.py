"""Two processes on gloo train to the same weights as one process with the same global batch.

One launch of two worker processes (``tests/distributed/jobs.py``, started with torchrun's variables so
they join through ``setup_world`` as ``torchrun -m rnnkit`` does) runs every job below; the one-process
references run here. float64, no dropout: the only differences left are summation orders.
"""

from __future__ import annotations

import pytest
import torch

from rnnkit.training.distributed import SINGLE
from tests.distributed.jobs import _lm_job, run_job
from tests.distributed.launch import launch_two

# The whole launch (two interpreters importing torch, then every job) on 2 shared cores.
TIMEOUT_S = 120

JOBS = {
    # 11 examples in global batches of 5: ranks get 3 and 2 examples, and the last batch (1 example) leaves
    # rank 1 with none -- it must step on a zero-weighted padding batch, not skip the all-reduce.
    "classifier-fused-gru": dict(kind="classifier", backend="fused", cell="gru", examples=11, batch_size=5, seed=1),
    "classifier-native-lstm": dict(kind="classifier", backend="native", cell="lstm", examples=11, batch_size=5,
                                   seed=2, eval_every=2),
    # The n-gram table's gradient is sparse: DDP all-reduces it as such, and SparseAdam steps the same rows.
    "classifier-ngrams": dict(kind="classifier", backend="native", cell="gru", examples=11, batch_size=5, seed=6,
                              ngrams="logits"),
    # 4 streams, 2 a rank, random window lengths (the same on both ranks).
    "lm-fused-lstm": dict(kind="lm", backend="fused", cell="lstm", tokens=400, batch_size=4, bptt=12, seed=3),
    # A time budget (never reached): every step asks all ranks for the slowest one's clock.
    "lm-native-gru": dict(kind="lm", backend="native", cell="gru", tokens=400, batch_size=4, bptt=12, seed=4,
                          max_time=3600.0),
    # Not sharded and of different sizes per rank (1 batch against 2): an error on both ranks, not a hang.
    "uneven-unsharded": dict(kind="classifier", backend="native", cell="gru", examples=11, batch_size=5, seed=5,
                             unsharded_size=5),
}
EQUIVALENT = [name for name in JOBS if not JOBS[name].get("unsharded_size")]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """Each rank's results of every job, from one launch of two processes (killed if it outlives TIMEOUT_S)."""
    return launch_two(JOBS, tmp_path_factory.mktemp("ddp"), TIMEOUT_S)


@pytest.mark.parametrize("name", EQUIVALENT)
def test_two_processes_train_the_same_weights_as_one(ranks, name):
    single = run_job(JOBS[name])
    for rank in range(2):
        got = ranks[rank][name]
        assert got["steps"] == single["steps"]
        for key, value in single["state"].items():
            torch.testing.assert_close(got["state"][key], value, rtol=1e-9, atol=1e-11, msg=f"rank {rank}: {key}")
    # The logged figures are the global batch's too: the train loss and the validation metric of every evaluation.
    for mine, theirs in zip(ranks[0][name]["history"], single["history"], strict=True):
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-9)
        valid = [k for k in theirs if k.startswith("valid_")]
        assert [mine[k] for k in valid] == pytest.approx([theirs[k] for k in valid], rel=1e-9)


def test_one_all_reduce_per_step(ranks):
    """The step's sums and every after-step agreement (clock, stop, checkpoint due) share one all-reduce; what
    is left is per epoch (the batch counts, the epoch's start and end checks), at most four of them."""
    got = ranks[0]["lm-native-gru"]  # max_time set: every step needs the slowest clock too
    epochs = 2
    assert got["steps"] <= got["reductions"] <= got["steps"] + 4 * epochs


def test_training_moved_the_weights(ranks):
    """The equivalence above is not two runs that both did nothing."""
    name = "lm-fused-lstm"
    spec = JOBS[name]
    untrained, _ = _lm_job(spec, SINGLE)
    moved = [(ranks[0][name]["state"][k] - v).abs().max().item() for k, v in untrained.state_dict().items()]
    assert max(moved) > 1e-3


def test_ranks_with_different_batch_counts_fail_clearly_on_both(ranks):
    for rank in range(2):
        error = ranks[rank]["uneven-unsharded"].get("error", "")
        assert "same number of steps" in error and "between 1 and 2 batches" in error
