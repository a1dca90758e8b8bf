"""Running the app under uvicorn, with a shutdown that lets in-flight requests finish.

On SIGINT/SIGTERM uvicorn stops accepting connections and waits (up to ``graceful_timeout_s``)
for the requests it is serving, streams included; meanwhile ``/readyz`` answers 503 and new
requests on kept-alive connections get a 503 ``shutting_down``, so a load balancer moves on.
With ``workers`` > 1 the same happens in every worker process (see workers.py); both run uvicorn_server.py's.
"""

from __future__ import annotations

import dataclasses
import errno
import ipaddress
import socket
import sys
from pathlib import Path

from rnnkit.serve.config import LOOPBACK, ServeConfig
from rnnkit.serve.models import ModelRegistry
from rnnkit.serve.service import Service
from rnnkit.serve.uvicorn_server import draining_server


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_address(host: str, port: int) -> None:
    """The port is valid and ``host:port`` can be listened on now: checked before any model loads.

    Bound and let go at once, as uvicorn binds (SO_REUSEADDR), so a port in use by another server is refused in
    one line here rather than by uvicorn after every model has loaded.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an integer in [0, 65535], got {port!r}")
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as err:
        reason = "address already in use (another server is listening there)" if err.errno == errno.EADDRINUSE \
            else (err.strerror or str(err))
        raise ValueError(f"cannot listen on {where}: {reason}") from err


def warn_if_exposed(host: str) -> None:
    if is_loopback(host):
        return
    try:
        everywhere = ipaddress.ip_address(host).is_unspecified
    except ValueError:
        everywhere = False
    reach = "every network interface of this machine: any machine that can reach it" if everywhere else \
        "other machines"
    print(f"rnnkit serve: warning: listening on {host}, reachable from {reach}; there is no authentication",
          file=sys.stderr)


def serve(models, host: str = LOOPBACK, port: int = 8000, config: ServeConfig | None = None,
          log_level: str = "info", on_ready=None) -> int:
    """Load the models and serve until interrupted; the exit status. ``on_ready(port)``: once requests are served.

    With ``config.workers`` > 1, ``models`` must be saved folders (paths, ``NAME=PATH`` specs, or a registry
    loaded from folders): every worker process loads its own copy.
    """
    check_address(host, port)
    config = config or ServeConfig()
    warn_if_exposed(host)
    if config.workers > 1:
        from rnnkit.serve.workers import default_threads, serve_workers

        if config.threads is None:
            config = dataclasses.replace(config, threads=default_threads(config.workers))
        return serve_workers(_specs(models), host, port, config, log_level, on_ready)
    if config.threads is not None:
        import torch

        torch.set_num_threads(config.threads)
    service = Service(models, config)
    draining_server(service, config, log_level, on_ready, host=host, port=port).run()
    return 0


def _specs(models) -> list[str]:
    """``NAME=PATH`` (or a plain path) for each model, so that every worker process can load it."""
    if isinstance(models, str | Path):
        models = [models]
    if isinstance(models, ModelRegistry):
        in_memory = [m.name for m in models if m.path == "<in memory>"]
        if in_memory:
            raise ValueError(f"workers > 1 needs models saved in folders (each worker loads its own copy); "
                             f"{in_memory} are in memory")
        return [f"{m.name}={m.path}" for m in models]
    if isinstance(models, list | tuple) and all(isinstance(m, str | Path) for m in models):
        return [str(m) for m in models]
    raise ValueError("workers > 1 needs model folders (paths or NAME=PATH), not loaded models")
