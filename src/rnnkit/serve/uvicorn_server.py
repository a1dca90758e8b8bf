"""The uvicorn server both serving paths run: one process (server.py) and each worker process (workers.py).

On SIGINT/SIGTERM uvicorn stops accepting connections and waits (up to ``graceful_timeout_s``) for the requests it
is serving; ``service.draining`` makes ``/readyz`` answer 503 meanwhile.
"""

from __future__ import annotations

import uvicorn

from rnnkit.serve.app import create_app
from rnnkit.serve.config import ServeConfig
from rnnkit.serve.service import Service


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, service: Service, on_ready=None):
        super().__init__(config)
        self.service, self.on_ready = service, on_ready

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self.on_ready is not None and self.servers:
            self.on_ready(self.servers[0].sockets[0].getsockname()[1])

    def handle_exit(self, sig, frame) -> None:
        self.service.draining = True
        super().handle_exit(sig, frame)

    def stop(self, force: bool = False) -> None:
        """Drain (or, with ``force``, stop now); callable from another thread: it only sets flags."""
        self.service.draining = True
        self.should_exit = True
        self.force_exit = self.force_exit or force


def uvicorn_config(app, config: ServeConfig, log_level: str, **where) -> uvicorn.Config:
    return uvicorn.Config(app, log_level=log_level, access_log=False,
                          timeout_graceful_shutdown=config.graceful_timeout_s or None, timeout_keep_alive=5, **where)


def draining_server(service: Service, config: ServeConfig, log_level: str, on_ready=None, **where) -> DrainingServer:
    """The app for ``service`` under a DrainingServer; ``where``: host and port, or nothing for a shared socket."""
    return DrainingServer(uvicorn_config(create_app(None, service=service), config, log_level, **where), service,
                          on_ready)
