"""End to end against the project's mock of Pleo, over real HTTP, with SQLite.

Needs the mock running (see `MOCK_HELP`) and `PLEO_OAUTH_MOCK_URL`,
`PLEO_OAUTH_MOCK_CLIENT_ID`, `PLEO_OAUTH_MOCK_CLIENT_SECRET`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from pleo_oauth import (
    ApiActionKind, ConnectionConfig, CustomEndpoints, HttpxHttp, PleoOAuth, Refusal, RevocationKind,
    SqliteStorage, State, SystemClock, log_to_logging,
)

from conftest import require_steps

MOCK_HELP = (
    "start the mock of Pleo and export its address and client, e.g.\n"
    "  export PLEO_OAUTH_MOCK_CLIENT_ID=py-e2e PLEO_OAUTH_MOCK_CLIENT_SECRET=$(openssl rand -hex 16)\n"
    "  PLEO_OAUTH_CLIENT_SECRET=$PLEO_OAUTH_MOCK_CLIENT_SECRET pleo-oauth mock-server --json --port 0 "
    "--consent auto --client-id $PLEO_OAUTH_MOCK_CLIENT_ID &\n"
    "  export PLEO_OAUTH_MOCK_URL=<the \"url\" of the JSON line it prints>"
)
CONNECTION = "e2e"
REDIRECT = "http://127.0.0.1:8765/callback"


def mock_env() -> tuple[str, str, str]:
    names = ("PLEO_OAUTH_MOCK_URL", "PLEO_OAUTH_MOCK_CLIENT_ID", "PLEO_OAUTH_MOCK_CLIENT_SECRET")
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        pytest.fail(f"{', '.join(missing)} not set: {MOCK_HELP}")
    url, client, secret = (os.environ[n] for n in names)
    return url.rstrip("/"), client, secret


STATES: list[str] = []


class OffsetClock(SystemClock):
    def __init__(self) -> None:
        self.offset_ms = 0

    def now_ms(self) -> int:
        return super().now_ms() + self.offset_ms


async def connect(oauth: PleoOAuth, web: httpx.AsyncClient) -> None:
    authorization = await oauth.authorize.begin(CONNECTION)
    STATES.extend(parse_qs(urlsplit(authorization.url).query)["state"])
    consent = await web.get(authorization.url)  # auto-consent: a redirect back to us
    assert consent.status_code in (302, 303), f"the mock answered {consent.status_code}"
    location = consent.headers["location"]
    assert location.startswith(REDIRECT)
    completed = await oauth.authorize.complete(location, CONNECTION)
    assert completed.connection == CONNECTION


async def call_api(web: httpx.AsyncClient, base: str, token: str) -> httpx.Response:
    return await web.get(f"{base}/v2/users", headers={"Authorization": f"Bearer {token}"})


async def test_connect_refresh_revoke_reauthenticate(loaded, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    require_steps(loaded)
    base, client_id, secret = mock_env()
    caplog.set_level(logging.DEBUG, logger="pleo_oauth")
    events = []

    def log(event) -> None:
        events.append(event)
        log_to_logging(event)

    http = HttpxHttp(lambda cid: secret if cid == client_id else None)
    storage = SqliteStorage(tmp_path / "pleo-oauth.sqlite3")
    clock = OffsetClock()  # the system clock, moved forward when the test lets an hour pass
    oauth = await PleoOAuth.load(storage=storage, http=http, log=log, clock=clock)
    seen: list[str] = []  # everything the platform would print or log
    async with httpx.AsyncClient(follow_redirects=False, trust_env=False) as web:
        config = ConnectionConfig(
            client_id=client_id, redirect_uri=REDIRECT, scopes=["users:read"],
            environment=CustomEndpoints(f"{base}/oauth/authorize", f"{base}/oauth/token"),
            revocation_url=f"{base}/oauth/revoke",
        )
        await oauth.connections.configure(CONNECTION, config)

        # connect
        await connect(oauth, web)
        first = await oauth.connections.access_token(CONNECTION)
        seen.append(repr(first))
        assert (await call_api(web, base, first.token)).status_code == 200
        action = await oauth.connections.report(CONNECTION, first.token, 200)
        assert action.kind is ApiActionKind.PROCEED

        # the access token dies at the server: the API's 401 refreshes, with rotation
        assert (await web.post(f"{base}/_mock/expire-access-tokens")).is_success
        rejected = await call_api(web, base, first.token)
        assert rejected.status_code == 401
        action = await oauth.connections.report(CONNECTION, first.token, 401, list(rejected.headers.multi_items()))
        seen.append(repr(action))
        assert action.kind is ApiActionKind.RETRY and action.bearer is not None
        second = action.bearer
        assert second.token != first.token
        assert (await call_api(web, base, second.token)).status_code == 200
        assert (await oauth.connections.access_token(CONNECTION)).token == second.token

        # an hour later the token has expired: the gate refreshes, with rotation
        assert (await web.post(f"{base}/_mock/expire-access-tokens")).is_success
        clock.offset_ms += 3_600_000
        third = await oauth.connections.access_token(CONNECTION)
        assert third.token not in (first.token, second.token)
        assert (await call_api(web, base, third.token)).status_code == 200
        stats = (await web.get(f"{base}/_mock/stats")).json()
        seen.append(repr(stats))

        # the user revokes access: detected at the next refresh, re-authentication asked for
        assert (await web.post(f"{base}/_mock/revoke-grants")).is_success
        assert (await web.post(f"{base}/_mock/expire-access-tokens")).is_success
        assert (await call_api(web, base, third.token)).status_code == 401
        clock.offset_ms += 3_600_000
        with pytest.raises(Refusal) as refusal:
            await oauth.connections.access_token(CONNECTION)
        seen.append(repr(refusal.value) + str(refusal.value))
        assert refusal.value.wit == {"reauthenticate": "refresh-token-rejected"}
        status = await oauth.connections.status(CONNECTION)
        seen.append(repr(status))
        assert status.state is State.REAUTH_REQUIRED
        assert status.reason == "refresh-token-rejected"
        assert await oauth.connections.get_config(CONNECTION) == ConnectionConfig.from_wit(config.to_wit())

        # reconnect: a working token again
        await connect(oauth, web)
        fourth = await oauth.connections.access_token(CONNECTION)
        assert fourth.token not in (first.token, second.token, third.token)
        assert (await call_api(web, base, fourth.token)).status_code == 200
        assert (await oauth.connections.status(CONNECTION)).state is State.CONNECTED
        revocation = await oauth.connections.disconnect(CONNECTION, revoke=True)
        assert revocation.kind is RevocationKind.REVOKED
        assert (await call_api(web, base, fourth.token)).status_code == 401

        # no token, code, state or secret in anything logged or printed
        issued = (await web.get(f"{base}/_mock/issued-secrets")).json()
    await http.aclose()
    storage.close()
    assert any(e.kind == "connected" for e in events)
    secrets = {s for s in issued if isinstance(s, str) and len(s) >= 8} | {secret, first.token, second.token, third.token, fourth.token, *STATES}
    text = caplog.text + "\n".join(repr(e) for e in events) + "\n".join(seen)
    leaked = [s for s in secrets if s in text]
    assert not leaked, f"{len(leaked)} secret values appear in the logs"
    print(f"e2e: {len(events)} events, {len(secrets)} secret values checked against {len(text)} characters logged")
