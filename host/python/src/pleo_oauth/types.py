"""Typed views of the component's values. Times are aware `datetime`s (UTC).

Inputs (`ConnectionConfig`, `BeginOptions`) are checked when converted to
WIT values: a wrong shape raises `TypeError`/`ValueError` before the
component is called.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Sequence

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MAX_MS = (datetime.max.replace(tzinfo=timezone.utc) - EPOCH) // timedelta(milliseconds=1)


def from_ms(ms: int | None) -> datetime | None:
    """Unix milliseconds -> aware UTC datetime (saturating at datetime.max)."""
    if ms is None:
        return None
    return EPOCH + timedelta(milliseconds=min(ms, _MAX_MS))


def to_ms(when: datetime) -> int:
    if when.tzinfo is None:
        raise ValueError("times must be aware datetimes (with a tzinfo)")
    return (when - EPOCH) // timedelta(milliseconds=1)


class Token(str):
    """A token in a `classify.token_response` verdict: the value itself (a
    `str`, for an `Authorization` header or storage), whose `repr` is
    redacted, so a verdict that is printed or logged shows no token."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Token([redacted])"


def redact_token_set(verdict: Any) -> Any:
    """`verdict` (a `token-outcome` in explicit form) with the access and
    refresh tokens of a `success` as `Token`s."""
    tokens = verdict.get("success") if isinstance(verdict, dict) else None
    if isinstance(tokens, dict):
        for key in ("access-token", "refresh-token"):
            if isinstance(tokens.get(key), str):
                tokens[key] = Token(tokens[key])
    return verdict


class State(str, enum.Enum):
    NEW = "new"
    AUTHORIZING = "authorizing"
    CONNECTED = "connected"
    DEGRADED = "degraded"
    STALLED = "stalled"
    CLIENT_ERROR = "client-error"
    REAUTH_REQUIRED = "reauth-required"
    DISCONNECTED = "disconnected"


class ClientType(str, enum.Enum):
    CONFIDENTIAL = "confidential"
    PUBLIC = "public"


@dataclass(frozen=True)
class CustomEndpoints:
    authorize_url: str
    token_url: str


#: `"production"`, `"staging"` or `CustomEndpoints(...)`.
Environment = Any


@dataclass(frozen=True)
class ConnectionConfig:
    client_id: str
    redirect_uri: str
    scopes: Sequence[str]
    environment: Environment = "production"
    client_type: ClientType = ClientType.CONFIDENTIAL
    issuer: str | None = None
    require_iss: bool = False
    settings: Sequence[tuple[str, str]] = ()
    revocation_url: str | None = None
    refresh_margin_seconds: int | None = None
    max_backoff_seconds: int | None = None
    stall_after_seconds: int | None = None

    def to_wit(self) -> dict[str, Any]:
        env = self.environment
        if isinstance(env, CustomEndpoints):
            env_wit: Any = {"custom": {"authorize-url": env.authorize_url, "token-url": env.token_url}}
        elif env in ("production", "staging"):
            env_wit = env
        else:
            raise ValueError(f"environment: {env!r} is not 'production', 'staging' or CustomEndpoints")
        if isinstance(self.scopes, str):
            raise TypeError("scopes: a list of scope names, not one string")
        return {
            "environment": env_wit,
            "client-id": self.client_id,
            "client-type": ClientType(self.client_type).value,
            "redirect-uri": self.redirect_uri,
            "scopes": list(self.scopes),
            "issuer": self.issuer,
            "require-iss": self.require_iss,
            "settings": [tuple(pair) for pair in self.settings],
            "revocation-url": self.revocation_url,
            "refresh-margin-seconds": self.refresh_margin_seconds,
            "max-backoff-seconds": self.max_backoff_seconds,
            "stall-after-seconds": self.stall_after_seconds,
        }

    @classmethod
    def from_wit(cls, wit: dict[str, Any]) -> "ConnectionConfig":
        env = wit["environment"]
        if isinstance(env, dict):
            custom = env["custom"]
            env = CustomEndpoints(custom["authorize-url"], custom["token-url"])
        return cls(
            client_id=wit["client-id"],
            redirect_uri=wit["redirect-uri"],
            scopes=tuple(wit["scopes"]),
            environment=env,
            client_type=ClientType(wit["client-type"]),
            issuer=wit["issuer"],
            require_iss=wit["require-iss"],
            settings=tuple(tuple(p) for p in wit["settings"]),  # type: ignore[misc]
            revocation_url=wit["revocation-url"],
            refresh_margin_seconds=wit["refresh-margin-seconds"],
            max_backoff_seconds=wit["max-backoff-seconds"],
            stall_after_seconds=wit["stall-after-seconds"],
        )


@dataclass(frozen=True)
class Bearer:
    token: str = field(repr=False)
    expires_at: datetime | None
    scopes: tuple[str, ...]

    @classmethod
    def from_wit(cls, wit: dict[str, Any]) -> "Bearer":
        return cls(wit["token"], from_ms(wit["expires-at-ms"]), tuple(wit["scopes"]))


@dataclass(frozen=True)
class ConnectionStatus:
    state: State
    since: datetime
    reason: str | None
    access_expires_at: datetime | None
    scopes: tuple[str, ...]
    missing_scopes: tuple[str, ...]
    authorization_expires_at: datetime | None
    consecutive_failures: int
    next_retry_at: datetime | None
    last_refresh_at: datetime | None
    last_error: str | None
    refreshing_until: datetime | None
    failing_since: datetime | None
    refresh_outcome_unknown_since: datetime | None
    fresh_token_rejections: int
    next_action: str

    @classmethod
    def from_wit(cls, w: dict[str, Any]) -> "ConnectionStatus":
        return cls(
            state=State(w["state"]),
            since=from_ms(w["since-ms"]),  # type: ignore[arg-type]
            reason=w["reason"],
            access_expires_at=from_ms(w["access-expires-at-ms"]),
            scopes=tuple(w["scopes"]),
            missing_scopes=tuple(w["missing-scopes"]),
            authorization_expires_at=from_ms(w["authorization-expires-at-ms"]),
            consecutive_failures=w["consecutive-failures"],
            next_retry_at=from_ms(w["next-retry-at-ms"]),
            last_refresh_at=from_ms(w["last-refresh-at-ms"]),
            last_error=w["last-error"],
            refreshing_until=from_ms(w["refreshing-until-ms"]),
            failing_since=from_ms(w["failing-since-ms"]),
            refresh_outcome_unknown_since=from_ms(w["refresh-outcome-unknown-since-ms"]),
            fresh_token_rejections=w["fresh-token-rejections"],
            next_action=w["next-action"],
        )


class ApiActionKind(str, enum.Enum):
    PROCEED = "proceed"
    RETRY = "retry"
    INSUFFICIENT_SCOPE = "insufficient-scope"
    FORBIDDEN = "forbidden"
    RATE_LIMITED = "rate-limited"
    TRANSIENT = "transient"
    REJECTED_AFTER_REFRESH = "rejected-after-refresh"


@dataclass(frozen=True)
class ApiAction:
    """What to do after an API response (`connections.api-action`)."""

    kind: ApiActionKind
    #: `RETRY`: the new token to retry with.
    bearer: Bearer | None = None
    #: `INSUFFICIENT_SCOPE`: the scopes the API asked for.
    scopes: tuple[str, ...] = ()
    #: `RATE_LIMITED` / `TRANSIENT`: the server's `Retry-After`, when given.
    retry_at: datetime | None = None

    @classmethod
    def from_wit(cls, w: Any) -> "ApiAction":
        if isinstance(w, str):
            return cls(ApiActionKind(w))
        ((case, payload),) = w.items()
        kind = ApiActionKind(case)
        if kind is ApiActionKind.RETRY:
            return cls(kind, bearer=Bearer.from_wit(payload))
        if kind is ApiActionKind.INSUFFICIENT_SCOPE:
            return cls(kind, scopes=tuple(payload))
        return cls(kind, retry_at=from_ms(payload))


class RevocationKind(str, enum.Enum):
    NOT_REQUESTED = "not-requested"
    NOT_CONFIGURED = "not-configured"
    NO_TOKEN = "no-token"
    REVOKED = "revoked"
    FAILED = "failed"


@dataclass(frozen=True)
class Revocation:
    kind: RevocationKind
    #: `FAILED`: why.
    detail: str | None = None

    @classmethod
    def from_wit(cls, w: Any) -> "Revocation":
        if isinstance(w, str):
            return cls(RevocationKind(w))
        ((case, payload),) = w.items()
        return cls(RevocationKind(case), payload)


@dataclass(frozen=True)
class BeginOptions:
    extra_scopes: Sequence[str] = ()
    return_to: str | None = None
    extra_params: Sequence[tuple[str, str]] = ()
    ttl_seconds: int | None = None

    def to_wit(self) -> dict[str, Any]:
        if isinstance(self.extra_scopes, str):
            raise TypeError("extra_scopes: a list of scope names, not one string")
        return {
            "extra-scopes": list(self.extra_scopes),
            "return-to": self.return_to,
            "extra-params": [tuple(p) for p in self.extra_params],
            "ttl-seconds": self.ttl_seconds,
        }


@dataclass(frozen=True)
class Authorization:
    #: Where to send the user. It carries the state: do not log it.
    url: str = field(repr=False)
    expires_at: datetime
    scopes: tuple[str, ...]

    @classmethod
    def from_wit(cls, w: dict[str, Any]) -> "Authorization":
        return cls(w["url"], from_ms(w["expires-at-ms"]), tuple(w["scopes"]))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Completed:
    connection: str
    return_to: str | None
    scopes: tuple[str, ...]
    recovered: bool

    @classmethod
    def from_wit(cls, w: dict[str, Any]) -> "Completed":
        return cls(w["connection"], w["return-to"], tuple(w["scopes"]), w["recovered"])


@dataclass(frozen=True)
class ConnectionSummary:
    connection: str
    state: State
    reason: str | None


@dataclass(frozen=True)
class ConnectionPage:
    connections: tuple[ConnectionSummary, ...]
    next_after: str | None

    @classmethod
    def from_wit(cls, w: dict[str, Any]) -> "ConnectionPage":
        return cls(
            tuple(ConnectionSummary(c["connection"], State(c["state"]), c["reason"]) for c in w["connections"]),
            w["next-after"],
        )


@dataclass(frozen=True)
class LogEvent:
    """`log.event`: carries no secret."""

    at: datetime
    level: str
    kind: str
    connection: str | None
    fields: tuple[tuple[str, str], ...]
    message: str

    @classmethod
    def from_wit(cls, w: dict[str, Any]) -> "LogEvent":
        return cls(
            from_ms(w["at-ms"]),  # type: ignore[arg-type]
            w["level"], w["kind"], w["connection"],
            tuple((f["key"], f["value"]) for f in w["fields"]), w["message"],
        )


@dataclass(frozen=True)
class UrlParams:
    """`authorize.url-params` (for `build_url`)."""

    authorize_url: str
    client_id: str
    redirect_uri: str
    scopes: Sequence[str]
    state: str = field(repr=False)
    code_challenge: str
    extra_params: Sequence[tuple[str, str]] = ()

    def to_wit(self) -> dict[str, Any]:
        if isinstance(self.scopes, str):
            raise TypeError("scopes: a list of scope names, not one string")
        return {
            "authorize-url": self.authorize_url,
            "client-id": self.client_id,
            "redirect-uri": self.redirect_uri,
            "scopes": list(self.scopes),
            "state": self.state,
            "code-challenge": self.code_challenge,
            "extra-params": [tuple(p) for p in self.extra_params],
        }
