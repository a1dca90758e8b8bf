"""The micro-batcher on its own, with a stand-in model: batch sizes, order, errors, draining on close."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from rnnkit.serve.batcher import MicroBatcher, WorkerDied

pytestmark = pytest.mark.anyio


class Recorder:
    """A 'model' whose row for text "t7" is [7, 7]; it remembers each batch it ran."""

    def __init__(self, fail_on: str | None = None, pause: float = 0.0):
        self.batches: list[list[str]] = []
        self.fail_on, self.pause = fail_on, pause
        self.gate = threading.Event()

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.batches.append(list(texts))
        if self.pause:
            self.gate.wait(self.pause)
        if self.fail_on in texts:
            raise RuntimeError(f"cannot read {self.fail_on}")
        return np.array([[float(t[1:])] * 2 for t in texts])


async def test_batches_stay_within_max_and_every_request_gets_its_rows():
    model = Recorder(pause=0.05)
    batcher = MicroBatcher(model, max_batch=5, max_wait_s=0.01)
    sizes = [1, 2, 3, 1, 4, 2, 7, 1, 1, 3]  # the request of 7 is larger than a batch: it runs alone
    requests, start = [], 0
    for size in sizes:
        requests.append([f"t{i}" for i in range(start, start + size)])
        start += size
    results = await asyncio.gather(*[batcher.submit(texts) for texts in requests])
    for texts, rows in zip(requests, results, strict=True):
        np.testing.assert_array_equal(rows[:, 0], [float(t[1:]) for t in texts])
    assert all(len(b) <= 5 for b in model.batches if b != requests[6]) and requests[6] in model.batches
    assert len(model.batches) < len(requests)  # they were batched
    assert sorted(t for b in model.batches for t in b) == sorted(t for r in requests for t in r)  # each text once
    await batcher.close()


async def test_an_idle_batcher_does_not_wait():
    model = Recorder()
    batcher = MicroBatcher(model, max_batch=64, max_wait_s=5.0)  # a long wait that must not apply when idle
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(3):
        await batcher.submit([f"t{i}"])
    assert loop.time() - start < 2.0 and model.batches == [["t0"], ["t1"], ["t2"]]
    await batcher.close()


async def test_a_failing_batch_fails_its_requests_and_the_worker_goes_on():
    model = Recorder(fail_on="t1", pause=0.05)
    batcher = MicroBatcher(model, max_batch=8, max_wait_s=0.0)
    first = asyncio.ensure_future(batcher.submit(["t0"]))
    await asyncio.sleep(0.01)  # t0 runs alone; t1 and t2 queue behind it and share the failing batch
    results = await asyncio.gather(first, batcher.submit(["t1"]), batcher.submit(["t2"]), return_exceptions=True)
    assert results[0][0, 0] == 0.0
    assert all(isinstance(r, RuntimeError) and "cannot read t1" in str(r) for r in results[1:])
    assert (await batcher.submit(["t3"]))[0, 0] == 3.0
    await batcher.close()


async def test_close_finishes_what_is_queued_then_refuses():
    model = Recorder(pause=0.05)
    batcher = MicroBatcher(model, max_batch=2, max_wait_s=0.0)
    pending = [asyncio.ensure_future(batcher.submit([f"t{i}"])) for i in range(5)]
    await asyncio.sleep(0.01)
    await batcher.close()
    assert [float(p.result()[0, 0]) for p in pending] == [0.0, 1.0, 2.0, 3.0, 4.0]
    with pytest.raises(RuntimeError, match="shutting down"):
        await batcher.submit(["t9"])


async def test_a_dead_worker_fails_every_request_it_held_and_a_new_one_serves_later_requests():
    # A model call that returns nothing usable breaks the worker itself (not the per-batch error handler):
    # the requests in that batch and those queued behind it must get an error, not wait for ever.
    model = Recorder(pause=0.05)
    broken = {"t1"}

    def run(texts):
        rows = model(texts)
        return None if broken & set(texts) else rows

    batcher = MicroBatcher(run, max_batch=2, max_wait_s=0.0)
    first = asyncio.ensure_future(batcher.submit(["t0"]))
    await asyncio.sleep(0.01)  # t0 runs alone; t1, t2 form the broken batch; t3, t4 wait in the queue
    queued = [asyncio.ensure_future(batcher.submit([f"t{i}"])) for i in range(1, 5)]
    results = await asyncio.wait_for(asyncio.gather(first, *queued, return_exceptions=True), 5)
    assert results[0][0, 0] == 0.0
    assert all(isinstance(r, WorkerDied) and "TypeError" in str(r) for r in results[1:]), results
    assert (await asyncio.wait_for(batcher.submit(["t5"]), 5))[0, 0] == 5.0  # a fresh worker serves again
    await batcher.close()


async def test_a_cancelled_worker_fails_what_is_queued():
    model = Recorder(pause=0.2)
    batcher = MicroBatcher(model, max_batch=1, max_wait_s=0.0)
    pending = [asyncio.ensure_future(batcher.submit([f"t{i}"])) for i in range(3)]
    await asyncio.sleep(0.05)
    batcher._task.cancel()  # what a shutdown bug or a cancelled scope would do to the worker
    results = await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), 5)
    assert all(isinstance(r, WorkerDied) and "CancelledError" in str(r) for r in results), results
    assert (await asyncio.wait_for(batcher.submit(["t7"]), 5))[0, 0] == 7.0
    await batcher.close()


async def test_a_request_that_times_out_is_dropped_from_the_queue():
    model = Recorder(pause=0.3)
    batcher = MicroBatcher(model, max_batch=1, max_wait_s=0.0)
    first = asyncio.ensure_future(batcher.submit(["t0"]))
    await asyncio.sleep(0.01)
    with pytest.raises(TimeoutError):
        await batcher.submit(["t1"], timeout_s=0.05)  # waits behind t0, gives up first
    assert (await first)[0, 0] == 0.0
    assert (await batcher.submit(["t2"], timeout_s=5))[0, 0] == 2.0
    assert model.batches == [["t0"], ["t2"]]  # t1 never ran
    await batcher.close()
