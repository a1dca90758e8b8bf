"""``rnnkit serve --workers N``: N processes, each with its own copy of the models and its own micro-batcher.

Why processes: at many concurrent clients one process is bound by Python (HTTP handling and the
recurrent loop's per-step dispatch share one interpreter lock), so a second core helps only through a
second interpreter. The parent binds the listening socket once and starts the workers (spawned, not
forked: torch's thread pools do not survive a fork); each accepts from the shared socket.

Control goes through a pipe per worker rather than signals: the workers sit in their own process
group, so a Ctrl-C in the terminal reaches the parent alone, which asks every worker to drain (the
same graceful shutdown as one process: /readyz answers 503, running requests and streams finish); a
second Ctrl-C forces them. A worker whose parent vanished (killed) sees its pipe close and drains
too. A worker that dies is reported and replaced; one that dies before it is ready stops the server.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from multiprocessing.connection import wait

_STOP, _FORCE, _READY = "stop", "force", "ready"


def default_threads(workers: int) -> int:
    """Torch threads per worker so that workers × threads does not exceed the cores this process may use."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // workers)


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say they are TCP,
    # and with Nagle on, a response written as headers then body waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _worker(index: int, specs: list[str], config, log_level: str, sock: socket.socket, conn) -> None:
    """One worker process: load the models, then serve from the shared socket until told to stop."""
    if hasattr(os, "setpgid"):
        os.setpgid(0, 0)  # out of the terminal's process group: Ctrl-C is the parent's to pass on
    try:
        import torch

        from rnnkit.serve.models import ModelRegistry
        from rnnkit.serve.service import Service
        from rnnkit.serve.uvicorn_server import draining_server

        torch.set_num_threads(config.threads)
        service = Service(ModelRegistry.from_specs(specs), config)
        server = draining_server(service, config, log_level, on_ready=lambda port: conn.send((_READY, os.getpid())))
    except KeyboardInterrupt:
        return

    def listen() -> None:
        try:
            while True:
                order = conn.recv()
                server.stop(force=order == _FORCE)
        except (EOFError, OSError):
            server.stop(force=False)  # the parent is gone: nobody would restart or stop this worker

    threading.Thread(target=listen, name="rnnkit-worker-control", daemon=True).start()
    server.run(sockets=[sock])


class _Worker:
    def __init__(self, index: int, ctx, args: tuple):
        self.index, self.ready = index, False
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker, args=(index, *args, child), name=f"rnnkit-serve-{index}")
        self.process.start()
        child.close()

    def tell(self, order: str) -> None:
        try:
            self.conn.send(order)
        except (OSError, ValueError):
            pass  # it has already gone


def serve_workers(specs: list[str], host: str, port: int, config, log_level: str, on_ready=None) -> int:
    """Run ``config.workers`` worker processes on one socket until SIGINT/SIGTERM; the exit status."""
    sock = bind(host, port)
    ctx = multiprocessing.get_context("spawn")
    args = (specs, config, log_level, sock)
    stop: list[int] = []
    previous = {sig: signal.signal(sig, lambda sig, frame: stop.append(sig)) for sig in (signal.SIGINT, signal.SIGTERM)}
    workers = [_Worker(i, ctx, args) for i in range(config.workers)]
    announced, status = False, 0
    try:
        while not stop:
            for worker in workers:
                while worker.conn.poll():
                    try:
                        message, _pid = worker.conn.recv()
                    except (EOFError, OSError):
                        break
                    worker.ready = message == _READY
            if not announced and all(w.ready for w in workers):
                announced = True
                pids = ", ".join(str(w.process.pid) for w in workers)
                print(f"rnnkit serve: {len(workers)} workers (pids {pids}), {config.threads} torch thread(s) each",
                      file=sys.stderr, flush=True)
                if on_ready is not None:
                    on_ready(sock.getsockname()[1])
            for i, worker in enumerate(workers):
                if worker.process.is_alive():
                    continue
                code = worker.process.exitcode
                if not worker.ready:
                    print(f"rnnkit serve: worker {worker.index} (pid {worker.process.pid}) stopped before it was "
                          f"ready (exit code {code}); stopping", file=sys.stderr, flush=True)
                    status = 1
                    stop.append(signal.SIGTERM)
                    break
                print(f"rnnkit serve: worker {worker.index} (pid {worker.process.pid}) died (exit code {code}); "
                      "starting a new one", file=sys.stderr, flush=True)
                worker.conn.close()
                workers[i] = _Worker(worker.index, ctx, args)
            if not stop:
                wait([w.process.sentinel for w in workers] + [w.conn for w in workers], timeout=0.5)
        _shut_down(workers, stop, config.graceful_timeout_s)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for worker in workers:
            if worker.process.is_alive():
                worker.process.kill()
            worker.conn.close()
        sock.close()
    return status


def _shut_down(workers: list[_Worker], stop: list[int], graceful_s: float) -> None:
    """Ask every worker to drain; a second Ctrl-C (or the grace period running out) forces them."""
    for worker in workers:
        worker.tell(_STOP)
    seen = len(stop)
    deadline = time.monotonic() + (graceful_s or 0) + 10
    while any(w.process.is_alive() for w in workers) and time.monotonic() < deadline:
        if len(stop) > seen and signal.SIGINT in stop[seen:]:
            seen = len(stop)
            for worker in workers:
                worker.tell(_FORCE)
        wait([w.process.sentinel for w in workers if w.process.is_alive()], timeout=0.2)
