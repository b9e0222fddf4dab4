"""Map the shim's errors to gRPC status codes, in one place for every servicer."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NoReturn, TypeVar

import grpc

from kwil_sync.shim.catalog import CatalogUnavailable
from kwil_sync.shim.service import InvalidRequest, WrongProvider
from kwil_sync.shim.values import ArgumentError

__all__ = ["answer"]

T = TypeVar("T")
log = logging.getLogger("kwil_sync.shim")

_CODES: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (InvalidRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (ArgumentError, grpc.StatusCode.INVALID_ARGUMENT),
    (WrongProvider, grpc.StatusCode.FAILED_PRECONDITION),
    (CatalogUnavailable, grpc.StatusCode.UNAVAILABLE),
)


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(code, message)
    raise AssertionError("grpc context.abort returned")  # it raises; this keeps mypy honest


def answer(context: grpc.ServicerContext, what: str, call: Callable[[], T]) -> T:
    """Run `call`; turn a known error into its status code and anything else into INTERNAL.

    Args:
        context: The servicer context of the request.
        what: The RPC's name, for the log.
        call: The work; its return value is the answer.
    """
    try:
        return call()
    except Exception as exc:
        for kind, code in _CODES:
            if isinstance(exc, kind):
                log.info("%s refused (%s): %s", what, code.name, exc)
                _abort(context, code, str(exc))
        log.exception("%s failed", what)
        _abort(context, grpc.StatusCode.INTERNAL,
               f"{what} failed inside the shim ({type(exc).__name__}: {exc}); see the shim log")
