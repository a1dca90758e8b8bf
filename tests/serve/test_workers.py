"""Pieces of ``rnnkit serve --workers N`` that need no worker process (tests/serve/test_cli_serve.py runs two)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from rnnkit.serve import ServeConfig
from rnnkit.serve.models import ModelRegistry
from rnnkit.serve.server import _specs
from rnnkit.serve.workers import bind, default_threads


def test_the_shared_socket_serves_without_nagle():
    # Sockets created with proto 0 make asyncio skip TCP_NODELAY: every response then waited ~40 ms for an ACK.
    sock = bind("127.0.0.1", 0)
    seen = []

    async def main():
        async def handle(reader, writer):
            seen.append(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(handle, sock=sock)
        _, writer = await asyncio.open_connection(*sock.getsockname())
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.01)
        writer.close()
        server.close()

    asyncio.run(main())
    assert seen and seen[0] != 0


def test_threads_per_worker_and_model_specs(classifier_dir, lm_dir):
    assert default_threads(1) >= default_threads(2) >= 1 and default_threads(10_000) == 1
    registry = ModelRegistry.from_specs([str(classifier_dir), f"bard={lm_dir}"])
    assert _specs(registry) == [f"news={classifier_dir / 'model'}", f"bard={lm_dir / 'model'}"]
    assert _specs(str(lm_dir)) == [str(lm_dir)]
    in_memory = ModelRegistry.of({"news": registry.models["news"].model})
    with pytest.raises(ValueError, match="saved in folders"):
        _specs(in_memory)
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        ServeConfig(workers=0)


def test_the_token_limit_shortcut_never_lets_a_long_text_through():
    """Service skips counting tokens when len(text) × the tokenizer's most tokens per character is within the limit."""
    from rnnkit.data import CharTokenizer, WordTokenizer
    from rnnkit.serve.service import _TOKENS_PER_CHAR

    tricky = ["İ" * 9, "\u0958!" * 7, "\ufb2c" * 5 + "?!" * 4, "a-b'c 1,000.5 x", "e\u0301" * 6, "\U0001d15e" * 3]
    for tokenizer in (WordTokenizer(), WordTokenizer(lowercase=False), CharTokenizer()):
        for text in tricky:
            assert len(tokenizer.tokenize(text)) <= len(text) * _TOKENS_PER_CHAR[type(tokenizer)], (tokenizer, text)


def test_a_worker_told_to_stop_drains_and_a_second_order_forces(classifier_dir):
    import uvicorn

    from rnnkit.serve import Service, create_app
    from rnnkit.serve.uvicorn_server import DrainingServer

    service = Service([str(classifier_dir)])
    server = DrainingServer(uvicorn.Config(create_app(None, service=service)), service)
    server.stop()  # what the parent's "stop" does in each worker: /readyz and new requests answer 503
    assert service.draining and server.should_exit and not server.force_exit
    server.stop(force=True)
    assert server.force_exit
