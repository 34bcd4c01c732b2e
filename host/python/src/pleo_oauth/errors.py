"""The package's exceptions.

Lifecycle refusals and errors are raised as `PleoOAuthError` subclasses that
carry the WIT value (`.wit`, in the codec's explicit form) and a typed view
of it. No exception message, `repr` or log line carries a token, a code,
a state or a client secret.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


class PleoOAuthError(Exception):
    """Base of every error this package raises."""


class ComponentError(PleoOAuthError):
    """The component cannot be found, loaded, or lacks an export."""


class ComponentTrap(PleoOAuthError):
    """The component trapped (a bug in it, or a broken host contract).

    The instance it happened in is poisoned: the package drops it and the
    next call runs on a fresh instance.
    """


class StepProtocolError(PleoOAuthError):
    """`operation.next` answered `step-error` (a bug in the host's loop)."""


class WitError(PleoOAuthError):
    """An `err` of a lifecycle call: `.operation` is the call, `.wit` the
    WIT error value (e.g. ``{"reauthenticate": "refresh-token-rejected"}``),
    `.case` its case name."""

    def __init__(self, operation: str, wit: Any) -> None:
        self.operation = operation
        self.wit = wit
        self.case = wit if isinstance(wit, str) else next(iter(wit))
        super().__init__(f"{operation}: {_describe(wit)}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.operation!r}, case={self.case!r})"


def _describe(wit: Any) -> str:
    # Error values carry no secrets (the WIT guarantees it), but keep the
    # message short: the case path and scalar payloads.
    if isinstance(wit, dict) and len(wit) == 1:
        ((case, payload),) = wit.items()
        return f"{case}: {_describe(payload)}" if payload is not None else case
    if isinstance(wit, dict):
        return ", ".join(f"{k}={_describe(v)}" for k, v in wit.items() if v is not None)
    return str(wit)


class Refusal(WitError):
    """`connections.refusal`: no token can be used now (access-token, report).

    `until`: when to ask again, as an aware `datetime` (`wait.until-ms`, or a
    misconfigured client's `retry-at-ms`), else None.
    """

    @property
    def until(self) -> "datetime | None":
        from .types import from_ms

        payload = self.wit.get(self.case) if isinstance(self.wit, dict) else None
        if self.case == "wait":
            return from_ms(payload["until-ms"])
        if self.case == "client-misconfigured":
            return from_ms(payload["retry-at-ms"])
        return None


class ConfigureError(WitError):
    """`connections.configure-error`."""


class StatusError(WitError):
    """`connections.status-error` (status, retry-now)."""


class DisconnectError(WitError):
    """`connections.disconnect-error`."""


class StorageFailure(WitError):
    """A bare `types.storage-error` (get-config, forget, list)."""


class BeginError(WitError):
    """`authorize.begin-error`."""


class CompleteError(WitError):
    """`authorize.complete-error`."""


class VerifierError(WitError):
    """`authorize.verifier-error` (s256-challenge)."""


class UrlError(WitError):
    """`authorize.url-error` (build-url)."""


class ChallengeError(WitError):
    """`classify.challenge-error` (www-authenticate)."""
