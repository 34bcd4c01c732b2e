"""A Python host for the pleo-oauth WebAssembly component (wasmtime-py)."""

from .client import Authorize, Classify, Clock, Connections, PleoOAuth, SystemClock, log_to_logging
from .errors import (
    BeginError, ChallengeError, CompleteError, ComponentError, ComponentTrap, ConfigureError,
    DisconnectError, PleoOAuthError, Refusal, StatusError, StepProtocolError, StorageFailure,
    UrlError, VerifierError, WitError,
)
from .http import Http, HttpRequest, HttpResponse, HttpxHttp, TransportError
from .storage import (
    Conflict, Corrupt, Entry, MemoryStorage, OutcomeUnknown, SqliteStorage, Storage, StorageError, Unavailable,
)
from .types import (
    ApiAction, ApiActionKind, Authorization, BeginOptions, Bearer, ClientType, Completed, ConnectionConfig,
    ConnectionPage, ConnectionStatus, ConnectionSummary, CustomEndpoints, LogEvent, Revocation,
    RevocationKind, State, Token, UrlParams, from_ms, to_ms,
)

__all__ = [name for name in dir() if not name.startswith("_")]
__version__ = "0.3.0"
