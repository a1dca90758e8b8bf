"""The serving logic behind the routes, independent of HTTP: checks, micro-batched classify, generation, inspect."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import numpy as np
from starlette.concurrency import run_in_threadpool

from rnnkit.data import CharTokenizer, WordTokenizer
from rnnkit.saved.kinds import CLASSIFIER, LANGUAGE_MODEL
from rnnkit.serve.batcher import MicroBatcher
from rnnkit.serve.config import ServeConfig
from rnnkit.serve.errors import ServeError
from rnnkit.serve.inspection import inspect_classifier, inspect_language_model, span_units
from rnnkit.serve.models import ModelRegistry

_DONE = object()
_TOKENS_PER_CHAR = {CharTokenizer: 1, WordTokenizer: 6}  # most tokens one character of input can become


class Service:
    """Models, limits and the per-classifier micro-batchers; shared by every route of one app."""

    def __init__(self, models, config: ServeConfig | None = None):
        self.registry = ModelRegistry.of(models)
        self.config = config or ServeConfig()
        self.batchers = {m.name: MicroBatcher(m.model.predict_proba, self.config.max_batch,
                                              self.config.max_wait_ms / 1000, name=m.name)
                         for m in self.registry if m.kind == CLASSIFIER}
        self._streams: asyncio.Semaphore | None = None
        self.draining = False
        self.started = time.time()

    # -- limits ---------------------------------------------------------------------
    def _check_text(self, field: str, text: str, tokenizer, allow_empty: bool = False) -> None:
        if not allow_empty and not text.strip():
            raise ServeError(422, "empty_text", f"{field} is empty: nothing to read", field=field)
        if len(text) > self.config.max_chars:
            raise ServeError(413, "text_too_long", f"{field} has {len(text)} characters; the limit is "
                             f"{self.config.max_chars}", field=field)
        if text and self._may_exceed(text, tokenizer) and len(tokenizer.tokenize(text)) > self.config.max_input_tokens:
            raise ServeError(413, "too_many_tokens", f"{field} has more than {self.config.max_input_tokens} tokens",
                             field=field)

    def _may_exceed(self, text: str, tokenizer) -> bool:
        """Whether ``text`` could hold more than ``max_input_tokens`` tokens, told without tokenizing when possible.

        Counting the tokens costs as much as the tokenizing the model does anyway (it was a sixth of the event
        loop's time at 32 concurrent classify clients). A token spans at least one character of the text the
        tokenizer reads: the text itself for characters; for words the NFC-normalised (at most 3× longer, a
        Unicode bound), lower-cased (at most 2×: only U+0130 grows) text. Other tokenizers are always counted.
        """
        per_char = _TOKENS_PER_CHAR.get(type(tokenizer))
        return per_char is None or len(text) * per_char > self.config.max_input_tokens

    async def _slot(self):
        """A place among ``max_streams`` concurrent generations/inspections, or 503 after the timeout."""
        if self._streams is None:
            self._streams = asyncio.Semaphore(self.config.max_streams)
        try:
            await asyncio.wait_for(self._streams.acquire(), self.config.timeout_s)
        except TimeoutError as err:
            raise ServeError(503, "busy", "every generation slot stayed busy for the whole timeout") from err

    def _check_open(self) -> None:
        if self.draining:
            raise ServeError(503, "shutting_down", "the server is shutting down")

    # -- classify -------------------------------------------------------------------
    async def classify(self, texts: list[str], model: str | None, top_k: int, probabilities: bool) -> dict:
        self._check_open()
        served = self.registry.get(model, CLASSIFIER)
        labels = served.model.labels
        if len(texts) > self.config.max_texts:
            raise ServeError(413, "too_many_texts", f"texts holds {len(texts)} texts; the limit is "
                             f"{self.config.max_texts}", field="texts")
        if top_k > len(labels):
            raise ServeError(422, "validation_error", f"top_k must be at most {len(labels)} (the number of labels), "
                             f"got {top_k}", field="top_k")
        for i, text in enumerate(texts):
            self._check_text(f"texts[{i}]", text, served.tokenizer)
        try:
            probs = await self.batchers[served.name].submit(texts, self.config.timeout_s)
        except TimeoutError as err:
            raise ServeError(504, "timeout", f"classification took longer than {self.config.timeout_s} s") from err
        results = []
        for row in probs:
            best = np.argsort(-row, kind="stable")[:top_k]
            result = {"labels": [{"label": labels[j], "probability": float(row[j])} for j in best]}
            if probabilities:
                result["probabilities"] = {label: float(p) for label, p in zip(labels, row, strict=True)}
            results.append(result)
        return {"model": served.name, "results": results}

    # -- generate -------------------------------------------------------------------
    def _generation(self, request) -> tuple[str, object]:
        self._check_open()
        served = self.registry.get(request.model, LANGUAGE_MODEL)
        if request.max_tokens > self.config.max_generate_tokens:
            raise ServeError(413, "too_many_tokens", f"max_tokens={request.max_tokens} is above the server's limit "
                             f"{self.config.max_generate_tokens}", field="max_tokens")
        self._check_text("prompt", request.prompt, served.tokenizer, allow_empty=True)
        pieces = served.model.generate_iter(request.prompt, request.max_tokens, temperature=request.temperature,
                                            top_k=request.top_k, top_p=request.top_p, stop=request.stop,
                                            seed=request.seed)
        return served.name, pieces

    async def generate_events(self, request) -> AsyncIterator[tuple[str, dict]]:
        """(event, data) pairs: 'token' per piece, then one 'done' (or 'error'). Checks run before the first."""
        name, pieces = self._generation(request)
        return self._events(name, pieces, request)

    async def _events(self, name: str, pieces, request) -> AsyncIterator[tuple[str, dict]]:
        # The slot is taken inside the stream, so a stream that never starts (the client left) holds none.
        deadline = time.monotonic() + self.config.timeout_s
        try:
            await self._slot()
        except ServeError as err:
            pieces.close()
            yield "error", {"error": {"status": err.status, "code": err.code, "message": err.message}}
            return
        count, reason, text = 0, "length", []
        try:
            while True:
                if time.monotonic() > deadline:
                    reason = "timeout"
                    break
                piece = await run_in_threadpool(next, pieces, _DONE)
                if piece is _DONE:
                    # Fewer pieces than max_tokens can only mean the stop string ended the sample.
                    reason = "stop" if request.stop is not None and count < request.max_tokens else "length"
                    break
                count += 1
                text.append(piece)
                yield "token", {"text": piece, "index": count - 1}
            yield "done", {"model": name, "finish_reason": reason, "tokens": count, "text": "".join(text)}
        except Exception as err:  # noqa: BLE001 -- the stream has started: report in-band, then end it
            yield "error", {"error": {"status": 500, "code": "internal_error",
                                      "message": f"generation failed ({type(err).__name__}: {err})"}}
        finally:
            pieces.close()
            self._streams.release()

    async def generate(self, request) -> dict:
        events = await self.generate_events(request)
        async for event, data in events:
            if event == "error":
                raise ServeError(data["error"]["status"], data["error"]["code"], data["error"]["message"])
            if event == "done":
                return {key: data[key] for key in ("model", "text", "tokens", "finish_reason")}
        raise ServeError(500, "internal_error", "generation ended without a result")

    # -- inspect --------------------------------------------------------------------
    async def inspect(self, request) -> dict:
        self._check_open()
        served = self.registry.any(request.model)
        self._check_text("text", request.text, served.tokenizer)
        limit = self.config.max_inspect_tokens
        if served.kind == CLASSIFIER:
            job = lambda: inspect_classifier(served.model, request.text, limit, request.include)  # noqa: E731
        else:
            job = lambda: inspect_language_model(served.model, request.text, limit, request.include,  # noqa: E731
                                                 request.top_k)
        await self._slot()
        try:
            result = await asyncio.wait_for(run_in_threadpool(job), self.config.timeout_s)
        except TimeoutError as err:
            raise ServeError(504, "timeout", f"inspection took longer than {self.config.timeout_s} s") from err
        except ValueError as err:
            raise ServeError(422, "validation_error", str(err)) from err
        finally:
            self._streams.release()
        result["model"] = served.name
        if request.span is not None:
            h = self._first_h(result)
            if h is None:
                raise ServeError(422, "validation_error", "span needs 'h' in include", field="span")
            start, end = request.span
            if not 0 <= start < end <= len(result["tokens"]):
                raise ServeError(422, "validation_error", f"span [{start}, {end}) must lie within the "
                                 f"{len(result['tokens'])} tokens", field="span")
            result["span_units"] = span_units(h, start, end, request.threshold)
        return result

    @staticmethod
    def _first_h(result: dict):
        return result["layers"][0]["series"].get("h") if result["layers"] else None

    # -- lifecycle ------------------------------------------------------------------
    def models(self) -> list[dict]:
        return [m.describe() for m in self.registry]

    def batch_stats(self) -> dict:
        return {name: b.stats.as_dict() for name, b in self.batchers.items()}

    async def close(self) -> None:
        self.draining = True
        for batcher in self.batchers.values():
            await batcher.close()
