"""Running the app under uvicorn, with a shutdown that lets in-flight requests finish.

On SIGINT/SIGTERM uvicorn stops accepting connections and waits (up to ``graceful_timeout_s``)
for the requests it is serving, streams included; meanwhile ``/readyz`` answers 503 and new
requests on kept-alive connections get a 503 ``shutting_down``, so a load balancer moves on.
"""

from __future__ import annotations

import ipaddress
import sys

import uvicorn

from rnnkit.serve.app import create_app
from rnnkit.serve.config import LOOPBACK, ServeConfig
from rnnkit.serve.service import Service


class _DrainingServer(uvicorn.Server):
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


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(models, host: str = LOOPBACK, port: int = 8000, config: ServeConfig | None = None,
          log_level: str = "info", on_ready=None) -> None:
    """Load the models and serve until interrupted. ``on_ready(port)`` is called once the socket listens."""
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an integer in [0, 65535], got {port!r}")
    config = config or ServeConfig()
    if config.threads is not None:
        import torch

        torch.set_num_threads(config.threads)
    service = Service(models, config)
    app = create_app(None, service=service)
    if not is_loopback(host):
        print(f"rnnkit serve: listening on {host}, reachable from other machines; there is no authentication",
              file=sys.stderr)
    uv_config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False,
                               timeout_graceful_shutdown=config.graceful_timeout_s or None,
                               timeout_keep_alive=5)
    _DrainingServer(uv_config, service, on_ready).run()
