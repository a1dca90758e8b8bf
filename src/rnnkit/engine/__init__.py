"""Back ends that run a recurrent stack, behind one registry (see ``registry``)."""

from rnnkit.engine import fused, native, reference  # noqa: F401  (importing registers them)
from rnnkit.engine.registry import available_backends, register_backend, resolve_backend

__all__ = ["available_backends", "register_backend", "resolve_backend"]
