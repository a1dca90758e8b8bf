"""The schemathesis run of tests/serve/test_schema_fuzz.py, as its own process: ``python fuzz_client.py BASE_URL N``.

A separate process because Hypothesis refuses to draw floats in a process whose CPU flushes subnormals
to zero, and loading rnnkit's fused engine (built with -ffast-math) switches that on for the whole
pytest process. This process imports neither torch nor rnnkit; the server it calls runs the models.
Prints one JSON line: the status codes seen per operation and mode, and the first failure if any.
"""

from __future__ import annotations

import json
import sys

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode


def check(strategy, codes: list[int], examples: int):
    """A Hypothesis test over ``strategy``'s requests, recording each status code in ``codes``."""

    @given(case=strategy)
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
              database=None, print_blob=False)
    def run(case):
        response = case.call(timeout=30)
        codes.append(response.status_code)
        problem = None
        if response.status_code >= 500:
            problem = "server error"
        elif response.status_code >= 400:
            error = response.json().get("error", {})
            if error.get("status") != response.status_code or not error.get("code") or not error.get("message"):
                problem = "error body not in the shared shape"
        assert problem is None, f"{problem}: {case.method} {case.path} {case.body!r} -> " \
                                f"{response.status_code} {response.text[:300]}"

    return run


def main(base_url: str, examples: int) -> int:
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    seen: dict[str, list[int]] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        # The schema's own examples first (requests a client would copy from /docs), then drawn ones.
        strategies = [("examples", strategy) for strategy in operation.get_strategies_from_examples()]
        strategies += [(mode.value, operation.as_strategy(mode)) for mode in GenerationMode]
        for mode, strategy in strategies:
            try:
                check(strategy, seen.setdefault(f"{label} {mode}", []), examples)()
            except Unsatisfiable:
                pass  # no invalid request exists for an operation without parameters (GET /healthz)
            except AssertionError as failure:
                print(json.dumps({"seen": seen, "failure": str(failure)[:2000]}))
                return 1
    print(json.dumps({"seen": {k: sorted(set(v)) for k, v in seen.items()}, "failure": None}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
