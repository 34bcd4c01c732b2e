"""HTTP for the component: one request, one response, no redirects.

A platform plugs its own client in by implementing `Http.send`. Transport
failures are raised as `TransportError` (its `case` is the WIT
`transport-error` case); they are handed to the component, which turns
them into a retry, never a re-authentication.

`HttpxHttp` is the default: `httpx.AsyncClient`, the request's `timeout-ms`
as a total deadline, a body cap, and client authentication added here from
a credentials callback when the component asks for it (`client-auth`): the
client secret never enters the component, a log line or an exception.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Literal, Protocol, Union
from urllib.parse import quote_plus

import httpx


@dataclass(frozen=True)
class HttpRequest:
    method: Literal["get", "post"]
    url: str
    headers: list[tuple[str, str]]
    body: bytes
    timeout_ms: int
    #: When set, authenticate as this client (its secret is the host's).
    client_auth: str | None = None

    def __repr__(self) -> str:  # URLs of token requests carry no secret, bodies do
        return f"HttpRequest({self.method.upper()} {self.url}, body=<{len(self.body)} bytes>)"


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def __repr__(self) -> str:
        return f"HttpResponse({self.status}, body=<{len(self.body)} bytes>)"


TRANSPORT_CASES = (
    "timeout", "connection-refused", "dns", "tls", "body-too-large", "other", "connection-lost", "no-credentials",
)


class TransportError(Exception):
    """No response: `case` is a WIT `transport-error` case."""

    def __init__(self, case: str, detail: str = "") -> None:
        if case not in TRANSPORT_CASES:
            raise ValueError(f"not a transport-error case: {case!r}")
        super().__init__(f"{case}: {detail}" if detail else case)
        self.case = case
        self.detail = detail

    def to_wit(self) -> object:
        return {"other": self.detail or "error"} if self.case == "other" else self.case


class Http(Protocol):
    async def send(self, request: HttpRequest) -> HttpResponse: ...


Secret = Union[str, None]
Credentials = Callable[[str], Union[Secret, Awaitable[Secret]]]


class HttpxHttp:
    """`httpx.AsyncClient` with client authentication from `credentials`.

    `credentials(client_id)` returns the client secret (or an awaitable of
    it), or `None` for a public client: the request then goes unchanged.
    `auth_method` is `"basic"` (`client_secret_basic`, the default) or
    `"post"` (`client_secret_post`).
    """

    def __init__(
        self,
        credentials: Credentials | None = None,
        *,
        client: httpx.AsyncClient | None = None,
        auth_method: Literal["basic", "post"] = "basic",
        max_body_bytes: int = 1 << 20,
    ) -> None:
        self._credentials = credentials
        self._client = client
        self._owned = client is None
        self._auth_method = auth_method
        self._max_body = max_body_bytes

    def __repr__(self) -> str:
        return f"HttpxHttp(auth_method={self._auth_method!r})"

    async def aclose(self) -> None:
        if self._client is not None and self._owned:
            await self._client.aclose()
            self._client = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False)
        return self._client

    async def _secret(self, client_id: str) -> str | None:
        if self._credentials is None:
            return None
        secret = self._credentials(client_id)
        if inspect.isawaitable(secret):
            secret = await secret
        return secret

    async def send(self, request: HttpRequest) -> HttpResponse:
        headers = list(request.headers)
        body = request.body
        if request.client_auth is not None:
            try:
                secret = await self._secret(request.client_auth)
            except Exception:
                raise TransportError("no-credentials", "the credentials callback failed") from None
            if secret is not None:
                if self._auth_method == "basic":
                    pair = f"{quote_plus(request.client_auth)}:{quote_plus(secret)}".encode()
                    headers.append(("Authorization", "Basic " + base64.b64encode(pair).decode()))
                else:
                    extra = f"client_id={quote_plus(request.client_auth)}&client_secret={quote_plus(secret)}"
                    body = body + (b"&" if body else b"") + extra.encode()
        try:
            return await asyncio.wait_for(self._send(request, headers, body), request.timeout_ms / 1000)
        except (asyncio.TimeoutError, httpx.TimeoutException):
            raise TransportError("timeout") from None
        except TransportError:
            raise
        except httpx.ConnectError as e:
            text = str(e).lower()
            if "name or service" in text or "nodename" in text or "getaddrinfo" in text or "name resolution" in text:
                raise TransportError("dns") from None
            if "ssl" in text or "certificate" in text:
                raise TransportError("tls") from None
            raise TransportError("connection-refused") from None
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as e:
            raise TransportError("connection-lost", type(e).__name__) from None
        except httpx.HTTPError as e:
            raise TransportError("other", type(e).__name__) from None

    async def _send(self, request: HttpRequest, headers: list[tuple[str, str]], body: bytes) -> HttpResponse:
        http = self._http()
        req = http.build_request(request.method.upper(), request.url, headers=headers, content=body)
        response = await http.send(req, stream=True)
        try:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self._max_body:
                    raise TransportError("body-too-large")
                chunks.append(chunk)
            return HttpResponse(response.status_code, list(response.headers.multi_items()), b"".join(chunks))
        finally:
            await response.aclose()
