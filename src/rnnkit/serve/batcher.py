"""Micro-batching: concurrent classify requests share one forward pass.

Requests queue up; one worker takes what is waiting (up to ``max_batch`` texts) and runs
it on a dedicated thread, so the event loop keeps accepting requests meanwhile. Waiting
costs latency, so the worker waits ``max_wait`` for more only when it is under load (its
last batch held several requests); a lone client's request starts at once. A request is
never split across batches (one with more than ``max_batch`` texts runs alone).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger("rnnkit.serve")


def _expire(future: asyncio.Future) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


class WorkerDied(RuntimeError):
    """The batcher's worker stopped with requests in hand; they fail with this rather than wait for ever."""


@dataclass
class _Item:
    texts: list[str]
    future: asyncio.Future
    enqueued: float = field(default=0.0)


@dataclass
class BatchStats:
    batches: int = 0
    requests: int = 0
    texts: int = 0
    largest: int = 0

    def as_dict(self) -> dict:
        mean = self.requests / self.batches if self.batches else 0.0
        return {"batches": self.batches, "requests": self.requests, "texts": self.texts,
                "largest_batch_texts": self.largest, "mean_requests_per_batch": round(mean, 2)}


class MicroBatcher:
    def __init__(self, run_batch: Callable[[list[str]], np.ndarray], max_batch: int, max_wait_s: float,
                 name: str = "classify"):
        self.run_batch, self.max_batch, self.max_wait_s = run_batch, max_batch, max_wait_s
        self.stats = BatchStats()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"rnnkit-{name}")
        self._queue: asyncio.Queue[_Item | None] | None = None
        self._task: asyncio.Task | None = None
        self._loaded = False  # the last batch held several requests: wait a little for company
        self._closed = False

    def _start(self) -> None:
        # Started on first use, inside the running loop, so the same object works under any app or test client.
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._work(), name="rnnkit-micro-batcher")

    async def submit(self, texts: list[str], timeout_s: float | None = None) -> np.ndarray:
        """(len(texts), C) probabilities for these texts, computed in some batch; TimeoutError after ``timeout_s``.

        The timeout is a timer on the request's future rather than ``asyncio.wait_for``, which wraps every
        request in a task of its own: at hundreds of requests a second that was a few percent of the loop.
        A request that times out (or whose client left) is dropped from its batch if that has not started.
        """
        future = self._enqueue(texts)
        if timeout_s is None:
            return await future
        timer = future.get_loop().call_later(timeout_s, _expire, future)
        try:
            return await future
        finally:
            timer.cancel()

    def _enqueue(self, texts: list[str]) -> asyncio.Future:
        if self._closed:
            raise RuntimeError("the batcher is closed (the server is shutting down)")
        if self._task is None or self._task.done() or self._task.get_loop() is not asyncio.get_running_loop():
            self._start()  # also replaces a worker that died: later requests are served again
        loop = asyncio.get_running_loop()
        item = _Item(list(texts), loop.create_future(), loop.time())
        self._queue.put_nowait(item)
        return item.future

    async def _work(self) -> None:
        queue = self._queue
        held: list[_Item] = []  # the requests this worker has taken from the queue and not yet answered
        try:
            await self._serve(queue, held)
        except BaseException as err:
            # The worker died (a bug past the per-batch handler, a cancellation): no request it held or that is
            # still queued may wait for ever. Each gets the error (the routes answer 500 'internal_error');
            # the next submit() starts a fresh worker on a fresh queue.
            failure = WorkerDied(f"the micro-batcher stopped ({type(err).__name__}: {err})")
            failure.__cause__ = err
            while not queue.empty():
                item = queue.get_nowait()
                if item is not None:
                    held.append(item)
            for item in held:
                if not item.future.done():
                    item.future.set_exception(failure)
            if not isinstance(err, Exception):
                raise  # a cancellation or an exit goes on
            log.error("the micro-batcher's worker failed; the requests it held got a 500", exc_info=err)

    async def _serve(self, queue: asyncio.Queue, held: list[_Item]) -> None:
        loop = asyncio.get_running_loop()
        carry: _Item | None = None  # a request too big to join the last batch leads the next one
        while True:
            first, carry = (carry, None) if carry is not None else (await queue.get(), None)
            if first is None:
                return
            batch, count = [first], len(first.texts)
            held[:] = batch
            deadline = loop.time() + (self.max_wait_s if self._loaded else 0.0)
            while count < self.max_batch:
                try:
                    item = queue.get_nowait()
                except asyncio.QueueEmpty:
                    left = deadline - loop.time()
                    if left <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(queue.get(), left)
                    except TimeoutError:
                        break
                if item is None:
                    queue.put_nowait(None)  # finish this batch, then stop
                    break
                if count + len(item.texts) > self.max_batch:
                    carry = item
                    held.append(item)
                    break
                batch.append(item)
                held.append(item)
                count += len(item.texts)
            live = [item for item in batch if not item.future.done()]  # timed-out requests are dropped
            self._loaded = len(batch) > 1
            if not live:
                continue
            texts = [t for item in live for t in item.texts]
            try:
                probs = await loop.run_in_executor(self._executor, self.run_batch, texts)
            except Exception as err:  # noqa: BLE001 -- every waiting request gets the error
                for item in live:
                    if not item.future.done():
                        item.future.set_exception(err)
                continue
            self.stats.batches += 1
            self.stats.requests += len(live)
            self.stats.texts += len(texts)
            self.stats.largest = max(self.stats.largest, len(texts))
            start = 0
            for item in live:
                if not item.future.done():
                    item.future.set_result(probs[start:start + len(item.texts)])
                start += len(item.texts)

    async def close(self) -> None:
        """Finish what is queued, then stop the worker and its thread."""
        self._closed = True
        if self._task is not None and not self._task.done() and self._task.get_loop() is asyncio.get_running_loop():
            self._queue.put_nowait(None)
            await self._task
        self._executor.shutdown(wait=True)
