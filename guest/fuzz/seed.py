#!/usr/bin/env python3
"""Seeds guest/fuzz/corpus/<target>/ from tests/vectors/*.json, in the byte layout
each fuzz target reads. Run it once before `cargo +nightly fuzz run`; the corpus
is not committed (it is rebuilt from the vectors)."""
import hashlib, json, os, sys

# The repository root: two folders above this file.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
V = os.path.join(ROOT, "tests/vectors")
OUT = os.path.join(ROOT, "guest/fuzz/corpus")
MAX = {"token_response": 8192}
counts = {}


def load(name):
    return json.load(open(os.path.join(V, name)))


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    if len(data) > MAX.get(target, 4096):
        return
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, hashlib.sha1(data).hexdigest())
    if not os.path.exists(path):
        open(path, "wb").write(data)
        counts[target] = counts.get(target, 0) + 1


def body_bytes(body):
    if body is None:
        return b""
    if "text" in body:
        return body["text"].encode()
    if "hex" in body:
        return bytes.fromhex(body["hex"])
    r = body["repeat"]
    return (r["text"] * r["count"]).encode()


# token_response: [status idx][flags: bit0 grant, bit1 retry-after][len][value] body
TOKEN_STATUSES = [200, 400, 401, 429, 500, 503]


def token_seed(response, grant):
    status = response["status"]
    if status in TOKEN_STATUSES:
        idx = TOKEN_STATUSES.index(status)
    else:
        idx = {2: 0, 4: 1, 5: 4}.get(status // 100, 0)
    flags = 0 if grant == "refresh-token" else 1
    retry = [v for n, v in response.get("headers", []) if n.lower() == "retry-after"]
    head = bytes([idx])
    if retry:
        value = retry[0].encode()[:255]
        head += bytes([flags | 2, len(value)]) + value
    else:
        head += bytes([flags])
    return head + body_bytes(response.get("body"))


responses = []  # (response, grant)
for case in load("token-response.json")["cases"]:
    if "response" in case["input"]:
        responses.append((case["input"]["response"], case["grant"]))
for case in load("callback.json")["cases"]:
    te = case.get("token-endpoint")
    for answer in te if isinstance(te, list) else [te] if te else []:
        if "response" in answer:
            responses.append((answer["response"], "authorization-code"))
lifecycle = load("lifecycle.json")["cases"]
for case in lifecycle:
    for step in case["steps"]:
        if isinstance(step, dict) and "token-endpoint" in step:
            for answer in step["token-endpoint"]:
                if "response" in answer:
                    responses.append((answer["response"], "refresh-token"))
for response, grant in responses:
    for g in (grant, "authorization-code" if grant == "refresh-token" else "refresh-token"):
        put("token_response", token_seed(response, g))

# api_response: [status idx][flags: bit0 attempt] then lines "W..", "R..", other
API_STATUSES = [401, 403, 429, 503, 200, 408]
LETTER = {"WWW-Authenticate": "W", "www-authenticate": "w", "Retry-After": "R", "retry-after": "r"}


def api_seed(status, headers, attempt):
    if status in API_STATUSES:
        idx = API_STATUSES.index(status)
    else:
        idx = 3 if status // 100 == 5 else 4
    lines = []
    for name, value in headers:
        letter = LETTER.get(name) or ({"www-authenticate": "W", "retry-after": "R"}.get(name.lower()))
        lines.append(letter + value if letter else "X" + name + ": " + value)
    return bytes([idx, 0 if attempt == "first" else 1]) + "\n".join(lines).encode()


heads = []
for case in load("api-response.json")["cases"]:
    if "response" in case["input"]:
        r = case["input"]["response"]
        heads.append((r["status"], r.get("headers", []), case["attempt"]))
for case in lifecycle:
    for step in case["steps"]:
        if isinstance(step, dict) and "report" in step:
            r = step["report"]
            heads.append((r["status"], r.get("headers", []), "first"))
www = load("www-authenticate.json")["cases"]
for case in www:
    heads.append((403, [["WWW-Authenticate", v] for v in case["values"]], "first"))
for status, headers, attempt in heads:
    put("api_response", api_seed(status, headers, attempt))

# retry_after: the value itself
retry_values = [c["value"] for c in load("retry-after.json")["cases"]]
for response, _ in responses:
    retry_values += [v for n, v in response.get("headers", []) if n.lower() == "retry-after"]
for _, headers, _ in heads:
    retry_values += [v for n, v in headers if n.lower() == "retry-after"]
for value in retry_values:
    put("retry_after", value)

# callback_url: the callback query strings and full redirect URLs
STATE = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
for case in load("callback.json")["cases"]:
    cb = case["callback"].replace("{state}", STATE)
    put("callback_url", cb)
    if "://" not in cb:
        put("callback_url", "?" + cb)
        put("callback_url", "https://app.example/callback?" + cb)
for case in load("authorize.json")["cases"]:
    exp = case.get("build-url", {}).get("expect", {})
    if "ok" in exp:
        put("callback_url", exp["ok"])

# stored_records: [type % 4] JSON. 0 TokensRecord, 1 FlowRecord, 2 Status, 3 ConnectionConfig
DEFAULT_CONFIG = {"environment": "staging", "client-id": "client-123", "client-type": "confidential",
                  "redirect-uri": "https://app.example/callback", "scopes": ["users:read", "export-jobs:write"],
                  "issuer": None, "require-iss": False, "settings": [["ledger", "4000"]]}
configs = [dict(DEFAULT_CONFIG)]
for case in lifecycle + load("callback.json")["cases"]:
    if case.get("config"):
        configs.append({**DEFAULT_CONFIG, **case["config"]})
configs.append({**DEFAULT_CONFIG, "environment": {"custom": {
    "authorize-url": "https://auth.example/oauth/authorize", "token-url": "https://auth.example/oauth/token"}},
    "revocation-url": "https://auth.example/oauth/revoke", "refresh-margin-seconds": 60,
    "max-backoff-seconds": 300, "stall-after-seconds": 86400})
for config in configs:
    put("stored_records", b"\x03" + json.dumps(config, separators=(",", ":")).encode())

NOW = 1700000000000
for case in lifecycle:
    for step in case["steps"]:
        if isinstance(step, dict) and "connect" in step:
            c = step["connect"]
            rec = {"access-token": c.get("access-token") or "AT-1", "refresh-token": c.get("refresh-token"),
                   "expires-at-ms": NOW + 1000 * c["expires-in"] if c.get("expires-in") else None,
                   "scopes": DEFAULT_CONFIG["scopes"], "obtained-at-ms": NOW}
            put("stored_records", b"\x00" + json.dumps(rec).encode())
            put("stored_records", b"\x00" + json.dumps({**rec, "after-unauthorized": True, "unconfirmed": False}).encode())
put("stored_records", b"\x01" + json.dumps({
    "connection": "c1", "state-hash": "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU",
    "verifier": "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", "scopes": ["users:read", "expenses:read"],
    "redirect-uri": "https://app.example/callback", "return-to": "/settings/pleo",
    "created-at-ms": NOW, "expires-at-ms": NOW + 600000}).encode())
put("stored_records", b"\x01" + json.dumps({
    "connection": "c1", "state-hash": "x", "verifier": "v", "scopes": [], "redirect-uri": "https://a/cb",
    "return-to": None, "created-at-ms": 0, "expires-at-ms": 18446744073709551615}).encode())
states = set()
reasons = set()
for case in lifecycle + load("callback.json")["cases"]:
    for step in case.get("steps", []) + ([{"status": case["expect"]}] if "expect" in case and "state" in case["expect"] else []):
        if isinstance(step, dict) and "status" in step and isinstance(step["status"], dict):
            if step["status"].get("state"):
                states.add(step["status"]["state"])
            if step["status"].get("reason"):
                reasons.add(step["status"]["reason"])
reasons.add("access-revoked")
for state in sorted(states) or ["connected"]:
    put("stored_records", b"\x02" + json.dumps({"state": state, "since-ms": NOW}).encode())
for reason in sorted(reasons):
    put("stored_records", b"\x02" + json.dumps({
        "state": "reauth-required", "since-ms": NOW, "reason": reason, "flow": "47DEQpj8HBSa",
        "missing-scopes": ["expenses:read"], "failures": 3, "next-retry-ms": NOW + 5000,
        "last-refresh-ms": NOW - 1000, "last-error": "invalid_grant", "client-error": None,
        "failing-since-ms": NOW - 60000, "stalled": False,
        "in-flight": {"token-hash": "abc", "since-ms": NOW, "cause": "timeout"},
        "fresh-rejections": 1}).encode())

print(counts, file=sys.stderr)
