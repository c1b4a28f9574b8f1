"""Signature checks, as each API signs its webhook deliveries.

Chatwoot (account webhooks since 4.12): `X-Chatwoot-Signature: sha256=<lowercase hex HMAC-SHA256(secret,
"<X-Chatwoot-Timestamp>.<raw body>")>`, the timestamp in Unix seconds; a timestamp more than 300 s from now
is refused, so a captured delivery cannot be replayed later. Sendblue sends its shared secret itself in
`sb-signing-secret` (no HMAC, no timestamp): compared in constant time. Each check returns None when the
delivery passes, else the reason (never the secret nor the header's value).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

from pydantic import SecretStr

TIMESTAMP_TOLERANCE_SECONDS = 300


def chatwoot_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The header value Chatwoot sends for `body` at `timestamp` (also what the sandbox signs with)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def check_chatwoot(
    secret: SecretStr | None,
    allow_unsigned: bool,
    headers: Mapping[str, str],
    body: bytes,
    now: float | None = None,
) -> str | None:
    if secret is None:
        # servers before 4.12 sign nothing; accepting that must be a deliberate choice
        return None if allow_unsigned else "no sources.chatwoot.webhook_secret configured"
    signature = headers.get("x-chatwoot-signature", "")
    timestamp = headers.get("x-chatwoot-timestamp", "")
    if not signature or not timestamp:
        return "unsigned delivery"
    try:
        sent = int(timestamp.strip())
    except ValueError:
        return "malformed timestamp"
    if abs((time.time() if now is None else now) - sent) > TIMESTAMP_TOLERANCE_SECONDS:
        return "timestamp more than 300 s from now"
    expected = chatwoot_signature(secret.get_secret_value(), timestamp.strip(), body)
    if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
        return "bad signature"
    return None


def check_sendblue(secret: SecretStr | None, allow_unsigned: bool, headers: Mapping[str, str]) -> str | None:
    if secret is None:
        return None if allow_unsigned else "no sources.sendblue.webhook_secret configured"
    given = headers.get("sb-signing-secret")
    if not given:
        return "unsigned delivery"
    if not hmac.compare_digest(given.encode(), secret.get_secret_value().encode()):
        return "bad signing secret"
    return None
