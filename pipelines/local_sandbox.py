"""Both simulators on loopback, with the config that points switchboard at them.

Used by `switchboard sandbox` (foreground), `switchboard demo` and the product tests. The sandbox
credentials are fixed and public (SPEC §4), so printing them is fine; real credentials never pass here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sandbox.server import RunningServer, serve_in_thread


@dataclass
class LocalSandboxes:
    chatwoot: RunningServer
    sendblue: RunningServer
    size: str
    seed: int
    credentials: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        """dlt config (as environment variables) that points both sources at these simulators."""
        return {
            "SOURCES__CHATWOOT__BASE_URL": self.chatwoot.url,
            "SOURCES__CHATWOOT__ACCOUNT_ID": self.credentials["chatwoot_account_id"],
            "SOURCES__CHATWOOT__API_ACCESS_TOKEN": self.credentials["chatwoot_api_access_token"],
            "SOURCES__SENDBLUE__BASE_URL": self.sendblue.url,
            "SOURCES__SENDBLUE__API_KEY_ID": self.credentials["sendblue_api_key_id"],
            "SOURCES__SENDBLUE__API_SECRET_KEY": self.credentials["sendblue_api_secret_key"],
        }

    def stop(self) -> None:
        for server in (self.chatwoot, self.sendblue):
            server.stop()

    def __enter__(self) -> LocalSandboxes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_sandboxes(
    size: str = "small",
    seed: int = 0,
    chatwoot_port: int = 0,
    sendblue_port: int = 0,
    chatwoot_overrides: dict[str, Any] | None = None,
    sendblue_overrides: dict[str, Any] | None = None,
) -> LocalSandboxes:
    """Generate both data sets and serve them on 127.0.0.1 (port 0 picks a free port)."""
    import sandbox.chatwoot as chatwoot_sandbox
    import sandbox.sendblue as sendblue_sandbox

    chatwoot_app = chatwoot_sandbox.create_app(size=size, seed=seed, **(chatwoot_overrides or {}))
    sendblue_app = sendblue_sandbox.create_app(size=size, seed=seed, **(sendblue_overrides or {}))
    chatwoot = serve_in_thread(chatwoot_app, port=chatwoot_port)
    try:
        sendblue = serve_in_thread(sendblue_app, port=sendblue_port)
    except Exception:
        chatwoot.stop()
        raise
    credentials = {
        "chatwoot_account_id": str(chatwoot_sandbox.ACCOUNT_ID),
        "chatwoot_api_access_token": str(chatwoot_sandbox.API_TOKEN),
        "sendblue_api_key_id": str(sendblue_sandbox.API_KEY_ID),
        "sendblue_api_secret_key": str(sendblue_sandbox.API_SECRET_KEY),
    }
    return LocalSandboxes(chatwoot, sendblue, size, seed, credentials)
