"""Load test of `rnnkit serve` on loopback: classify latency and throughput, micro-batching, first-token latency.

    .venv/bin/python benchmarks/serve.py                       # default-size models with random weights (≈ 1-2 min)
    .venv/bin/python benchmarks/serve.py --classifier runs/classifier --lm runs/lm

It starts the server as its own process (`rnnkit serve ... --port 0`, on 127.0.0.1 only) and
talks to it over keep-alive HTTP/1.1 connections from a small asyncio client in this process
(plain sockets, so the client costs little next to the server). Every phase is bounded in count
and in time. Phases:

* classify, 1 client: one 50-token text per request, one request at a time (p50 / p99 / requests/s);
* classify, 32 clients: 32 connections each sending one request at a time, with micro-batching
  as configured, against a second server started with --max-batch 1 (no batching), and against a
  third started with --workers N (N processes on one socket); each server also gets its own
  1-client phase, and a 32-client rate is divided by the 1-client rate of the same server;
  the phases take turns for several rounds, so the ratios compare like with like;
* generate: streamed requests one at a time; time from sending the request to the first token event.

Speed does not depend on the weights, so without --classifier/--lm the script saves untrained
models of the default sizes (classifier: GRU 128 bidirectional, embeddings 50; language model:
GRU 2 x 384, characters) to a temporary folder. The machine may be shared: the figures are
what this run measured, and the ratios are measured side by side in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HOST = "127.0.0.1"  # loopback only, always


def make_models(folder: Path) -> tuple[Path, Path]:
    import torch

    from rnnkit.api.classifier import Classifier
    from rnnkit.api.language_model import LanguageModel
    from rnnkit.data import CharTokenizer, Vocabulary, WordTokenizer
    from rnnkit.models.classifier import RNNClassifier
    from rnnkit.models.config import ClassifierConfig, LanguageModelConfig
    from rnnkit.models.language_model import RNNLanguageModel

    torch.manual_seed(0)
    words = [f"w{i}" for i in range(5000)]
    vocab = Vocabulary.build({w: 1 for w in words})
    labels = ["business", "entertainment", "politics", "sport", "tech"]
    clf = Classifier(RNNClassifier(ClassifierConfig(), len(vocab), len(labels), vocab.pad_id), WordTokenizer(), vocab,
                     labels, None)
    clf.save(folder / "classifier" / "model")
    chars = Vocabulary.build([list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .,;:!?'-\n")])
    lm = LanguageModel(RNNLanguageModel(LanguageModelConfig(), len(chars), chars.pad_id), CharTokenizer(), chars)
    lm.save(folder / "lm" / "model")
    return folder / "classifier", folder / "lm"


def fifty_token_text(classifier: Path) -> str:
    """50 words from the classifier's own vocabulary (not <unk>), so the text is one a user might send."""
    from rnnkit.saved.folders import resolve_model_path

    vocab = json.loads((resolve_model_path(classifier) / "config.json").read_text())["vocab"]
    tokens = [t for t in vocab["tokens"][vocab["num_specials"]:] if t.isalnum()]
    rng = random.Random(0)
    return " ".join(rng.choice(tokens) for _ in range(50))


def start_server(models: list[str], extra: list[str]) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-m", "rnnkit", "serve", *models, "--host", HOST, "--port", "0",
                             "--log-level", "warning", *extra], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            break
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if found:
            return proc, int(found.group(1))
    proc.kill()
    raise RuntimeError("the server did not start")


class Connection:
    """One keep-alive HTTP/1.1 connection: POST JSON, read the whole reply (or the stream up to a marker)."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection(HOST, port))

    def send(self, path: str, body: bytes) -> None:
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
                          f"Content-Length: {len(body)}\r\n\r\n".encode() + body)

    async def _headers(self) -> tuple[int, dict]:
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        return status, headers

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        self.send(path, body)
        status, headers = await self._headers()
        if "content-length" in headers:
            return status, await self.reader.readexactly(int(headers["content-length"]))
        return status, (await self._chunked())[0]

    async def _chunked(self, until: bytes | None = None) -> tuple[bytes, bool]:
        """Chunks until the last one, or until ``until`` has arrived: (data, whether the body ended)."""
        data = b""
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
            data += (await self.reader.readexactly(size + 2))[:-2]
            if size == 0:
                return data, True
            if until is not None and until in data:
                return data, False

    async def first_event(self, path: str, body: bytes, marker: bytes) -> tuple[float, bytes]:
        """Seconds until ``marker`` arrives, and the whole stream."""
        start = time.perf_counter()
        self.send(path, body)
        status, _ = await self._headers()
        assert status == 200, status
        head, ended = await self._chunked(until=marker)
        first = time.perf_counter() - start
        return first, head + (b"" if ended else (await self._chunked())[0])

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def classify_load(port: int, text: str, clients: int, requests: int, seconds: float) -> dict:
    body = json.dumps({"texts": [text]}).encode()
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    per_client = requests // clients

    async def client(conn: Connection) -> None:
        nonlocal errors
        for _ in range(per_client):
            if time.perf_counter() > deadline:
                break
            start = time.perf_counter()
            status, _ = await conn.post("/v1/classify", body)
            latencies.append(time.perf_counter() - start)
            errors += status != 200

    # The connections open before the clock starts, and each warms up the worker process that accepted it (the
    # first forward passes allocate and pick kernels): the phase measures requests, not connects and first calls.
    conns = [await Connection.open(port) for _ in range(clients)]
    try:
        for conn in conns:
            for _ in range(max(1, 20 // clients)):
                await conn.post("/v1/classify", body)
        start = time.perf_counter()
        await asyncio.gather(*[client(conn) for conn in conns])
        wall = time.perf_counter() - start
    finally:
        for conn in conns:
            await conn.close()
    return {"clients": clients, "requests": len(latencies), "errors": errors, "seconds": wall,
            "rps": len(latencies) / wall, "latencies": latencies}


def batching(port: int, workers: int = 1) -> dict:
    """The classifier's micro-batching counters, summed over the worker processes (each answers /readyz alone)."""
    seen: dict[int, dict] = {}
    for _ in range(50 * workers):
        with urllib.request.urlopen(f"http://{HOST}:{port}/readyz", timeout=30) as reply:
            ready = json.loads(reply.read())
        seen[ready["pid"]] = next(iter(ready["batching"].values()))
        if len(seen) == workers:
            break
    if len(seen) < workers:
        raise RuntimeError(f"only {len(seen)} of {workers} workers answered /readyz")
    return {key: sum(stats[key] for stats in seen.values()) for key in ("requests", "batches")}


def percentiles(values: list[float]) -> dict:
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return {"p50_ms": statistics.median(ordered) * 1000, "p99_ms": pick(0.99)}


async def first_tokens(port: int, requests: int, seconds: float) -> dict:
    conn = await Connection.open(port)
    times, deadline = [], time.perf_counter() + seconds
    for i in range(requests + 3):
        if time.perf_counter() > deadline:
            break
        body = json.dumps({"prompt": "Shall I compare thee to a summer's day?\n", "max_tokens": 20, "seed": i}).encode()
        first, stream = await conn.first_event("/v1/generate", body, b"event: token")
        assert b"event: done" in stream
        if i >= 3:  # the first requests warm up
            times.append(first)
    await conn.close()
    return {"requests": len(times), **percentiles(times)}


def phases(workers: int) -> list[tuple[str, str, int]]:
    """(name, server, clients); each server's 32-client phases are compared with its own 1-client phase."""
    out = [("1 client", "batching", 1), ("32 clients, micro-batching", "batching", 32),
           ("1 client, --max-batch 1", "single", 1), ("32 clients, no batching (--max-batch 1)", "single", 32)]
    if workers > 1:
        out += [(f"1 client, --workers {workers}", "workers", 1),
                (f"32 clients, micro-batching, --workers {workers}", "workers", 32)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classifier", help="a saved classifier (default: an untrained one of the default size)")
    parser.add_argument("--lm", help="a saved language model (default: an untrained one of the default size)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the three classify phases (default: 5)")
    parser.add_argument("--requests", type=int, default=640, help="requests per 32-client phase and round "
                        "(a 1-client phase sends a third of that; default: 640)")
    parser.add_argument("--seconds", type=float, default=30, help="time limit per phase (default: 30)")
    parser.add_argument("--threads", type=int, default=None, help="the servers' --threads (default: rnnkit serve's: "
                        "torch's choice with one worker, cores // workers with several)")
    parser.add_argument("--workers", type=int, default=2, help="also measure a server with this many worker "
                        "processes (its own 1-client and 32-client phases; 1 leaves them out; default: 2)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.classifier and args.lm:
            clf, lm = Path(args.classifier), Path(args.lm)
        else:
            made = make_models(Path(tmp))
            clf, lm = Path(args.classifier or made[0]), Path(args.lm or made[1])
        text = fifty_token_text(clf)
        extra = [] if args.threads is None else ["--threads", str(args.threads)]
        servers = {"batching": start_server([str(clf), str(lm)], extra),
                   "single": start_server([str(clf), str(lm)], ["--max-batch", "1", *extra])}
        if args.workers > 1:
            servers["workers"] = start_server([str(clf), str(lm)], ["--workers", str(args.workers), *extra])
        plan = phases(args.workers)
        results: dict[str, list[dict]] = {name: [] for name, _, _ in plan}
        try:
            # The phases take turns, round after round, so a change in the machine's load hits them alike.
            for _ in range(args.rounds):
                for name, server, clients in plan:
                    port = servers[server][1]
                    processes = args.workers if server == "workers" else 1
                    before = batching(port, processes)
                    count = args.requests if clients > 1 else args.requests // 3
                    result = asyncio.run(classify_load(port, text, clients, count, args.seconds))
                    after = batching(port, processes)
                    result["per_batch"] = (after["requests"] - before["requests"]) / max(
                        1, after["batches"] - before["batches"])
                    results[name].append(result)
            first = asyncio.run(first_tokens(servers["batching"][1], 30, args.seconds))
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(timeout=60)
    report(results, plan, first, args.threads)


def report(results: dict[str, list[dict]], plan, first: dict, threads: int | None) -> None:
    baseline = {server: name for name, server, clients in plan if clients == 1}
    print(f"classify one 50-token text per request; servers on {HOST} with --threads {threads or 'default'}; "
          f"{os.cpu_count()} CPUs, shared machine (load average {os.getloadavg()[0]:.2f} at the end); "
          f"{len(results[plan[0][0]])} rounds")
    print(f"{'phase':48} {'requests':>8} {'errors':>6} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'× 1 client':>10} "
          f"{'× fastest':>9} {'req/batch':>9}")
    singles = [results[name] for name, _, clients in plan if clients == 1]
    fastest = [max(runs[i]["rps"] for runs in singles) for i in range(len(singles[0]))]
    for name, server, _ in plan:
        runs, sequential = results[name], results[baseline[server]]
        latencies = [x for r in runs for x in r["latencies"]]
        rps = statistics.median(r["rps"] for r in runs)
        # Ratio to the same server's 1-client phase of the same round, median over rounds.
        ratio = statistics.median(r["rps"] / s["rps"] for r, s in zip(runs, sequential, strict=True))
        # The strictest comparison: the fastest 1-client phase of that round, whichever server ran it.
        strict = statistics.median(r["rps"] / f for r, f in zip(runs, fastest, strict=True))
        per_batch = statistics.mean(r["per_batch"] for r in runs)
        stats = percentiles(latencies)
        print(f"{name:48} {len(latencies):>8} {sum(r['errors'] for r in runs):>6} {stats['p50_ms']:>8.2f} "
              f"{stats['p99_ms']:>8.2f} {rps:>8.1f} {ratio:>10.2f} {strict:>9.2f} {per_batch:>9.1f}")
    print("(req/s: median over rounds; × 1 client: median over rounds of the ratio to the 1-client phase of the same "
          "server in that round; × fastest: the same against that round's fastest 1-client phase of any server; "
          "req/batch: requests per forward pass, from the server's counters)")
    print(f"generate, streamed, first token: p50 {first['p50_ms']:.2f} ms, p99 {first['p99_ms']:.2f} ms "
          f"over {first['requests']} requests (prompt 40 characters)")


if __name__ == "__main__":
    main()
