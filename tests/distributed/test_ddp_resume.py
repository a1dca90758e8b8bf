"""A two-process run stopped by SIGTERM and resumed with two processes ends where an unstopped one does.

Launch 1 runs, in two worker processes on gloo, an uninterrupted LM job and the same job whose rank 1 alone
is sent SIGTERM during step 5 (torchrun forwards a signal to every worker, but they need not see it at the
same step): both ranks must stop at the same step, rank 0 saving a state that holds each rank's generators
and carried hidden state. Launch 2 resumes that state with two processes. Dropout is on, so each rank's
generators must come back exactly; random window lengths and mid-epoch positions make the data position
matter too.
"""

from __future__ import annotations

import pytest
import torch

from rnnkit.training import TrainConfig, Trainer
from rnnkit.training.distributed import SINGLE
from tests.distributed.jobs import _lm_job
from tests.distributed.launch import launch_two

TIMEOUT_S = 120
STOP_AT = 5
BASE = dict(kind="lm", backend="fused", cell="lstm", tokens=400, batch_size=4, bptt=12, seed=7, dropout=0.3,
            eval_every=3, checkpoint_every="none")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp-resume")
    state = str(folder / "state.pt")
    first = launch_two({"whole": dict(BASE),
                        "stopped": dict(BASE, state_path=state, signal_at=STOP_AT, signal_rank=1)},
                       folder, TIMEOUT_S)
    second = launch_two({"resumed": dict(BASE, state_path=state, resume=True)}, folder, TIMEOUT_S)
    return {"whole": [r["whole"] for r in first], "stopped": [r["stopped"] for r in first],
            "resumed": [r["resumed"] for r in second], "state": state}


def test_a_signal_to_one_rank_stops_both_at_the_same_step(runs):
    for rank in range(2):
        stopped = runs["stopped"][rank]
        assert stopped["reason"] == "interrupted", f"rank {rank}"
        assert stopped["steps"] == STOP_AT, f"rank {rank}"
        assert stopped["signal"] == 15, f"rank {rank}"  # rank 0 never saw the signal: it is shared
    saved = torch.load(runs["state"], weights_only=True)
    assert saved["world_size"] == 2 and saved["trainer"]["step"] == STOP_AT
    assert len(saved["ranks"]) == 2
    # Each rank's own generator and hidden state were kept, not rank 0's twice.
    assert not torch.equal(saved["ranks"][0]["rng"]["now"]["torch"], saved["ranks"][1]["rng"]["now"]["torch"])
    hidden = [saved["ranks"][r]["task"]["hidden"] for r in range(2)]
    assert not torch.equal(hidden[0][0][0], hidden[1][0][0])


def test_resumed_with_two_processes_ends_with_the_unstopped_weights(runs):
    whole = runs["whole"]
    assert whole[0]["steps"] > STOP_AT + 5  # the resumed part is more than a step or two
    for rank in range(2):
        resumed = runs["resumed"][rank]
        assert resumed["reason"] == "completed"
        assert resumed["steps"] == whole[rank]["steps"]
        for key, value in whole[rank]["state"].items():
            torch.testing.assert_close(resumed["state"][key], value, rtol=0, atol=0, msg=f"rank {rank}: {key}")
    losses = [(h["step"], h["train_loss"], h["valid_perplexity"]) for h in runs["resumed"][0]["history"]]
    assert losses == [(h["step"], h["train_loss"], h["valid_perplexity"]) for h in whole[0]["history"]]


def test_resuming_with_another_number_of_processes_is_refused(runs):
    net, task = _lm_job(dict(BASE), SINGLE)
    config = TrainConfig(epochs=2, batch_size=4, lr=0.02, warmup=0.2, patience=None, eval_every=3, progress=False,
                         seed=7, checkpoint_every="none")
    trainer = Trainer(net, task, config, world=SINGLE)
    with pytest.raises(ValueError, match=r"cannot resume with 1 process\(es\) a run saved by 2.*resume it with 2"):
        trainer.load_state(runs["state"])
