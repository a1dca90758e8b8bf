"""The HTTP API on tiny trained models, through httpx's in-process ASGI transport: results against the Python API."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time

import numpy as np
import pytest
import torch

from rnnkit.api.classifier import Classifier
from rnnkit.api.language_model import LanguageModel
from rnnkit.layers.trace import SERIES
from rnnkit.serve import ServeConfig, Service, create_app, span_units
from rnnkit.serve.inspection import inspect_language_model
from tests.serve.conftest import client_for

pytestmark = pytest.mark.anyio
TEXT = "the striker scored a late goal and the coach said the team won"


@pytest.fixture(scope="module")
def models(classifier_dir, lm_dir):
    return {"news": Classifier.load(classifier_dir), "poet": LanguageModel.load(lm_dir)}


@pytest.fixture(scope="module")
def app(models):
    return create_app(models, ServeConfig(max_texts=8, max_chars=400, max_input_tokens=60, max_inspect_tokens=30,
                                          max_generate_tokens=300, max_body_bytes=4000))


def parse_sse(body: str) -> list[tuple[str, dict]]:
    events = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def assert_error(response, status: int, code: str, field: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"status", "code", "message", "details", "request_id"}
    assert error["status"] == status and error["code"] == code and error["message"]
    assert error["request_id"] == response.headers["x-request-id"]
    if field is not None:
        assert field in [d["field"] for d in error["details"]], error
    return error


async def test_models_health_and_ready(app, models):
    async with client_for(app) as client:
        listed = (await client.get("/v1/models")).json()["models"]
        assert [(m["name"], m["kind"]) for m in listed] == [("news", "classifier"), ("poet", "language_model")]
        assert listed[0]["labels"] == models["news"].labels and listed[0]["bidirectional"] is True
        assert (await client.get("/healthz")).json() == {"status": "ok", "pid": os.getpid()}
        ready = (await client.get("/readyz")).json()
        assert ready["status"] == "ready" and ready["models"] == ["news", "poet"]


async def test_classify_matches_the_python_api(app, models):
    texts = ["bank profit and market shares", TEXT, "the new phone chip"]
    async with client_for(app) as client:
        r = await client.post("/v1/classify", json={"texts": texts, "top_k": 2, "probabilities": True})
    assert r.status_code == 200, r.text
    body = r.json()
    expected = models["news"].predict_proba(texts)
    labels = models["news"].labels
    for row, result in zip(expected, body["results"], strict=True):
        got = np.array([result["probabilities"][label] for label in labels])
        np.testing.assert_allclose(got, row, atol=1e-6)
        assert [s["label"] for s in result["labels"]] == [labels[j] for j in np.argsort(-row)[:2]]
        assert result["labels"][0]["probability"] >= result["labels"][1]["probability"]
    assert body["results"][0]["labels"][0]["label"] == "money" and body["results"][1]["labels"][0]["label"] == "sport"


async def test_concurrent_requests_share_batches_and_get_their_own_answers(models):
    service = Service(models, ServeConfig(max_batch=64, max_wait_ms=20))
    app = create_app(None, service=service)
    texts = [f"{TEXT} {'bank ' * (i % 5)}".strip() for i in range(24)]
    alone = np.vstack([models["news"].predict_proba([t]) for t in texts])
    async with client_for(app) as client:
        responses = await asyncio.gather(*[client.post("/v1/classify", json={"texts": [t], "probabilities": True})
                                           for t in texts])
    got = np.array([[r.json()["results"][0]["probabilities"][label] for label in models["news"].labels]
                    for r in responses])
    np.testing.assert_allclose(got, alone, atol=1e-6)  # each request got its own row, padding changed nothing
    stats = service.batch_stats()["news"]
    assert stats["requests"] == 24 and stats["batches"] < 24 and stats["largest_batch_texts"] > 1, stats
    await service.close()


async def test_validation_errors_share_one_shape(app):
    async with client_for(app) as client:
        assert_error(await client.post("/v1/classify", json={}), 422, "validation_error", "texts")
        assert_error(await client.post("/v1/classify", json={"texts": ["a"], "top_k": 0}), 422, "validation_error",
                     "top_k")
        assert_error(await client.post("/v1/classify", json={"texts": ["a"], "top_k": 4}), 422, "validation_error",
                     "top_k")  # only three labels
        assert_error(await client.post("/v1/classify", json={"texts": ["a"], "topk": 2}), 422, "validation_error",
                     "topk")  # a typo is not ignored
        assert_error(await client.post("/v1/classify", json={"texts": ["goal", "  "]}), 422, "empty_text",
                     "texts[1]")
        assert_error(await client.post("/v1/classify", content=b'{"texts": [', headers={
            "content-type": "application/json"}), 400, "invalid_json")
        no_type = assert_error(await client.post("/v1/classify", content=b'{"texts": ["a"]}'), 422,
                               "validation_error", "body")
        assert "content-type: application/json" in no_type["message"]
        assert_error(await client.get("/v1/nothing"), 404, "not_found")
        assert_error(await client.get("/v1/classify"), 405, "method_not_allowed")
        assert_error(await client.post("/v1/classify", json={"texts": ["a"], "model": "nope"}), 404,
                     "model_not_found", "model")
        assert_error(await client.post("/v1/classify", json={"texts": ["a"], "model": "poet"}), 400,
                     "wrong_model_kind", "model")
        assert_error(await client.post("/v1/generate", json={"prompt": "a", "top_p": 1.5}), 422, "validation_error",
                     "top_p")
        r = await client.post("/v1/inspect", json={"text": ""}, headers={"x-request-id": "client-id-7"})
        assert assert_error(r, 422, "validation_error", "text")["request_id"] == "client-id-7"


async def test_size_and_token_limits(app):
    async with client_for(app) as client:
        assert_error(await client.post("/v1/classify", json={"texts": ["goal"] * 9}), 413, "too_many_texts", "texts")
        assert_error(await client.post("/v1/classify", json={"texts": ["goal", "x" * 401]}), 413, "text_too_long",
                     "texts[1]")
        assert_error(await client.post("/v1/classify", json={"texts": ["goal " * 61]}), 413, "too_many_tokens",
                     "texts[0]")
        assert_error(await client.post("/v1/generate", json={"max_tokens": 301}), 413, "too_many_tokens",
                     "max_tokens")
        big = json.dumps({"texts": ["goal " * 20] * 60}).encode()
        assert_error(await client.post("/v1/classify", content=big, headers={"content-type": "application/json"}),
                     413, "payload_too_large")

        async def chunks():  # no content-length: the limit applies while the body streams in
            for _ in range(10):
                yield b" " * 500

        assert_error(await client.post("/v1/classify", content=chunks(), headers={
            "content-type": "application/json"}), 413, "payload_too_large")


async def test_generate_streams_what_the_python_api_samples(app, models):
    request = {"prompt": "Thou", "max_tokens": 40, "temperature": 0.9, "top_k": 12, "top_p": 0.95, "seed": 5}
    expected = models["poet"].generate("Thou", 40, temperature=0.9, top_k=12, top_p=0.95, seed=5)
    async with client_for(app) as client:
        r = await client.post("/v1/generate", json=request)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = parse_sse(r.text)
        plain = (await client.post("/v1/generate", json={**request, "stream": False})).json()
    tokens = [data["text"] for event, data in events if event == "token"]
    assert len(tokens) == 40 and "".join(tokens) == expected
    assert events[-1] == ("done", {"model": "poet", "finish_reason": "length", "tokens": 40, "text": expected})
    assert plain == {"model": "poet", "text": expected, "tokens": 40, "finish_reason": "length"}


async def test_generate_with_a_vanishing_top_p_answers_the_greedy_text(app, models):
    """top_p = 1e-300 is 0 in float32: the top token must still survive (it was a 500: no token left to draw)."""
    greedy = models["poet"].generate("Thou", 20, temperature=0)
    async with client_for(app) as client:
        r = await client.post("/v1/generate", json={"prompt": "Thou", "max_tokens": 20, "temperature": 0.9,
                                                     "top_p": 1e-300, "seed": 2, "stream": False})
    assert r.status_code == 200, r.text
    assert r.json()["text"] == greedy


async def test_generate_stop_string_and_timeout(models):
    sample = models["poet"].generate("Thou", 60, seed=3)
    stop = sample[25:27]
    app = create_app(models)
    async with client_for(app) as client:
        body = (await client.post("/v1/generate", json={"prompt": "Thou", "max_tokens": 60, "seed": 3, "stop": stop,
                                                        "stream": False})).json()
    assert body["text"] == sample[: sample.index(stop)] and body["finish_reason"] == "stop"
    slow = create_app(models, ServeConfig(timeout_s=1e-9))
    async with client_for(slow) as client:
        events = parse_sse((await client.post("/v1/generate", json={"prompt": "Thou", "max_tokens": 50})).text)
    assert events[-1][0] == "done" and events[-1][1]["finish_reason"] == "timeout" and events[-1][1]["tokens"] < 50


async def test_inspect_classifier_reads_every_prefix(app, models):
    clf = models["news"]
    async with client_for(app) as client:
        body = (await client.post("/v1/inspect", json={"text": TEXT, "span": [1, 3]})).json()
        final = (await client.post("/v1/classify", json={"texts": [TEXT], "probabilities": True})).json()
    tokens = body["tokens"]
    assert tokens == TEXT.split() and body["labels"] == clf.labels and not body["truncated"]
    probs = np.array(body["probabilities"])
    prefixes = clf.predict_proba([" ".join(tokens[: t + 1]) for t in range(len(tokens))])
    np.testing.assert_allclose(probs, prefixes, atol=1e-5)  # step t is the model's answer for the text cut at t
    np.testing.assert_allclose([body["final"][label] for label in clf.labels],
                               [final["results"][0]["probabilities"][label] for label in clf.labels], atol=1e-5)
    # Layers × directions, time in token order for both: the top layer's h is the encoder's output.
    assert [(v["layer"], v["direction"]) for v in body["layers"]] == [(0, "forward"), (0, "backward"),
                                                                      (1, "forward"), (1, "backward")]
    assert set(body["layers"][0]["series"]) == {"h", "c", "i", "f", "g", "o"}
    ids = torch.tensor([body["ids"]])
    with torch.no_grad():
        outputs, _, _ = clf.model.encoder(ids, torch.tensor([len(tokens)]))
    top = np.concatenate([body["layers"][2]["series"]["h"], body["layers"][3]["series"]["h"]], axis=1)
    np.testing.assert_allclose(top, outputs[0].numpy(), atol=1e-4)
    sat = body["layers"][0]["saturation"]
    assert set(sat) == {"i", "f", "g", "o"} and len(sat["f"]["left"]) == clf.model.config.hidden_size
    assert body["span_units"] == span_units(body["layers"][0]["series"]["h"], 1, 3)


async def test_inspect_language_model_and_limits(app, models):
    lm = models["poet"]
    text = "Thou art more lovely"
    async with client_for(app) as client:
        body = (await client.post("/v1/inspect", json={"text": text, "model": "poet", "include": ["h"],
                                                       "top_k": 5})).json()
        long = (await client.post("/v1/inspect", json={"text": "x" * 50, "model": "poet"})).json()
        bad_span = await client.post("/v1/inspect", json={"text": "goal", "span": [0, 5]})
    assert body["tokens"] == list(text) and len(body["predictions"]) == len(text)
    assert [(v["layer"], v["direction"]) for v in body["layers"]] == [(0, "forward"), (1, "forward")]
    assert all(set(v["series"]) == {"h"} for v in body["layers"])
    with torch.no_grad():
        logits, _ = lm.model(lm.encode(text).unsqueeze(0))
    probs = logits[0].double().softmax(-1)
    for t, step in enumerate(body["predictions"][:-1]):
        assert step["p_next"] == pytest.approx(float(probs[t, body["ids"][t + 1]]), abs=1e-5)
        assert [c["p"] for c in step["top"]] == sorted((c["p"] for c in step["top"]), reverse=True)
        assert len(step["top"]) == 5 and "<pad>" not in [c["token"] for c in step["top"]]
    assert long["truncated"] and len(long["tokens"]) == 30
    assert_error(bad_span, 422, "validation_error", "span")


async def test_inspect_serves_every_series_the_cells_record_and_names_them(mingru_lm_dir):
    # "cand" is minGRU's own series: once missing from the request schema, so it could not be asked for.
    mini = LanguageModel.load(mingru_lm_dir)
    text = "Thou art"
    async with client_for(create_app({"mini": mini}, ServeConfig())) as client:
        body = (await client.post("/v1/inspect", json={"text": text, "include": ["cand", "z"]})).json()
        unknown = await client.post("/v1/inspect", json={"text": text, "include": ["h", "gates"]})
        schema = (await client.get("/openapi.json")).json()
    assert [set(v["series"]) for v in body["layers"]] == [{"cand", "z"}, {"cand", "z"}]
    with torch.no_grad():
        trace = mini.model.layers[0].trace(mini.model.embedding(mini.encode(text).unsqueeze(0)))
    np.testing.assert_allclose(body["layers"][0]["series"]["cand"], trace[0, 0]["cand"][0].numpy(), atol=1e-4)
    # The page labels its views from the response: every name a trace can hold, in one order, with its meaning.
    assert list(body["series_text"].items()) == list(SERIES.items())
    error = assert_error(unknown, 422, "validation_error")
    assert "include" in json.dumps(error["details"]) and "'cand'" in error["details"][0]["message"]
    item = schema["components"]["schemas"]["InspectRequest"]["properties"]["include"]["anyOf"][0]["items"]
    assert set(item["enum"]) == set(SERIES)
    # Called from Python (``rnnkit inspect``), the same names are the check.
    assert set(inspect_language_model(mini, text, include=["cand"])["layers"][1]["series"]) == {"cand"}
    with pytest.raises(ValueError, match=r"include names unknown series \['gates'\]; choose from \['h', 'c', "):
        inspect_language_model(mini, text, include=["gates"])


async def test_page_docs_and_schema_load_nothing_from_elsewhere(app):
    async with client_for(app) as client:
        page = await client.get("/")
        assert page.status_code == 200 and 'src="static/explorer.js"' in page.text
        for name in ("draw.js", "explorer.js", "explorer.css"):
            asset = await client.get(f"/static/{name}")
            # The only absolute URL is the SVG namespace, a name rather than something fetched.
            assert asset.status_code == 200 and not re.findall(r"https?://(?!www\.w3\.org/2000/svg)", asset.text)
        docs = await client.get("/docs")
        assert docs.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in docs.text
        assert "cdn" not in docs.text.lower()
        assert (await client.get("/docs-assets/swagger-ui-bundle.js")).status_code == 200
        schema = (await client.get("/openapi.json")).json()
    assert {"/v1/classify", "/v1/generate", "/v1/inspect", "/v1/models", "/healthz", "/readyz"} <= set(schema["paths"])


async def test_router_inside_an_existing_app(models):
    from fastapi import FastAPI

    from rnnkit.serve import create_router, install_error_handlers

    mine = FastAPI()

    @mine.get("/hello")
    async def hello():
        return {"hello": "world"}

    service = Service({"news": models["news"]})
    mine.include_router(create_router(service), prefix="/rnn")
    install_error_handlers(mine)
    async with client_for(mine) as client:
        assert (await client.get("/hello")).json() == {"hello": "world"}
        r = await client.post("/rnn/v1/classify", json={"texts": [TEXT]})
        assert r.json()["results"][0]["labels"][0]["label"] == "sport"
        assert_error_shape = (await client.get("/rnn/nothing")).json()["error"]
        assert assert_error_shape["code"] == "not_found"
    await service.close()


async def test_draining_and_busy_answer_503(models):
    service = Service(models, ServeConfig(max_streams=1, timeout_s=0.2))
    app = create_app(None, service=service)
    async with client_for(app) as client:
        await service._slot()  # the only generation/inspection slot is taken
        assert_error(await client.post("/v1/inspect", json={"text": "goal"}), 503, "busy")
        assert_error(await client.post("/v1/generate", json={"prompt": "a", "stream": False}), 503, "busy")
        service._streams.release()
        assert (await client.post("/v1/inspect", json={"text": "goal"})).status_code == 200
        service.draining = True  # what SIGTERM sets while uvicorn lets running requests finish
        assert_error(await client.get("/readyz"), 503, "shutting_down")
        assert_error(await client.post("/v1/classify", json={"texts": ["goal"]}), 503, "shutting_down")
        assert (await client.get("/healthz")).status_code == 200


async def test_the_classify_fast_lane_answers_byte_for_byte_like_the_route(models):
    """create_app answers /v1/classify ahead of FastAPI's routing; a plain router is the reference."""
    from fastapi import FastAPI

    from rnnkit.serve import create_router, install_error_handlers

    service = Service({"news": models["news"]}, ServeConfig(max_texts=4))
    plain = FastAPI()
    plain.include_router(create_router(service))
    install_error_handlers(plain)
    fast = create_app(None, service=service)
    bodies = [{"texts": [TEXT, "bank profit"], "top_k": 2}, {"texts": ["the new phone chip"], "probabilities": True},
              {"texts": ["goal"] * 5}, {"texts": ["goal"], "model": "nope"}, {"texts": ["goal", " "]}, {"texts": []},
              {"texts": ["goal"], "top_k": 9}]
    async with client_for(plain) as reference, client_for(fast) as client:
        for body in bodies:
            headers = {"x-request-id": "same-id"}
            want, got = await reference.post("/v1/classify", json=body, headers=headers), await client.post(
                "/v1/classify", json=body, headers=headers)
            assert (got.status_code, got.headers["content-type"]) == (want.status_code, want.headers["content-type"])
            assert got.json() == want.json() and got.headers["x-request-id"] == "same-id", body
            if want.status_code == 200:
                assert got.content == want.content
    await service.close()


async def test_a_broken_batch_worker_answers_500_and_the_server_recovers(models):
    service = Service({"news": models["news"]}, ServeConfig(max_wait_ms=50))
    app = create_app(None, service=service)
    batcher = service.batchers["news"]
    good = batcher.run_batch
    batcher.run_batch = lambda texts: None  # a model call that breaks the worker, not only its batch
    async with client_for(app) as client:
        replies = await asyncio.wait_for(asyncio.gather(*[client.post(
            "/v1/classify", json={"texts": [TEXT]}, headers={"x-request-id": f"r{i}"}) for i in range(6)]), 10)
        for i, reply in enumerate(replies):
            assert assert_error(reply, 500, "internal_error")["request_id"] == f"r{i}"
        batcher.run_batch = good
        assert (await client.post("/v1/classify", json={"texts": [TEXT]})).status_code == 200
        service.config.timeout_s = 0.05
        batcher.run_batch = lambda texts: (time.sleep(0.3), good(texts))[1]
        r = await client.post("/v1/classify", json={"texts": [TEXT]}, headers={"x-request-id": "slow"})
        assert assert_error(r, 504, "timeout")["request_id"] == "slow"
    await service.close()
