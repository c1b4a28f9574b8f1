"""Both simulators on loopback, with the config that points switchboard at them.

Used by `switchboard sandbox` (foreground), `switchboard demo` and the product tests. The sandbox
credentials are fixed and public (see the README), so printing them is fine; real credentials never pass here.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any

from pipelines.errors import CliError
from sandbox.server import RunningServer, serve_in_thread


@dataclass
class LocalSandboxes:
    chatwoot: RunningServer
    sendblue: RunningServer
    size: str
    seed: int
    credentials: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        """dlt config (as environment variables) that points both sources at these simulators, with the
        rate limits they enforce, so a load runs at their budgets from its first request."""
        return {
            "SOURCES__CHATWOOT__BASE_URL": self.chatwoot.url,
            "SOURCES__CHATWOOT__ACCOUNT_ID": self.credentials["chatwoot_account_id"],
            "SOURCES__CHATWOOT__API_ACCESS_TOKEN": self.credentials["chatwoot_api_access_token"],
            **self.rate_limit_env(),
            "SOURCES__SENDBLUE__BASE_URL": self.sendblue.url,
            "SOURCES__SENDBLUE__API_KEY_ID": self.credentials["sendblue_api_key_id"],
            "SOURCES__SENDBLUE__API_SECRET_KEY": self.credentials["sendblue_api_secret_key"],
        }

    def rate_limit_env(self) -> dict[str, str]:
        """The sources' rate-limit settings that match the simulators' own budgets (a budget of 0 is off)."""
        chatwoot = self.chatwoot.state.budget("per_minute")
        messages = self.sendblue.state.budget("messages")
        contacts = self.sendblue.state.budget("contacts")
        values = {
            "SOURCES__CHATWOOT__RATE_LIMIT_PER_MINUTE": str(chatwoot.limit) if chatwoot.limit > 0 else "auto",
            "SOURCES__CHATWOOT__RATE_LIMIT_WINDOW_SECONDS": f"{chatwoot.window_seconds:g}",
        }
        if messages.limit > 0:
            values["SOURCES__SENDBLUE__MESSAGES_RATE_LIMIT"] = str(messages.limit)
            values["SOURCES__SENDBLUE__MESSAGES_RATE_WINDOW_SECONDS"] = f"{messages.window_seconds:g}"
        # Sendblue documents no limit on the other endpoints: the client limits them only if the simulator does
        values["SOURCES__SENDBLUE__RATE_LIMIT_PER_MINUTE"] = (
            str(max(1, int(contacts.limit * 60 / contacts.window_seconds))) if contacts.limit > 0 else "0"
        )
        return values

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
    for option, port in (("--chatwoot-port", chatwoot_port), ("--sendblue-port", sendblue_port)):
        check_port(option, port)
    if chatwoot_port and chatwoot_port == sendblue_port:
        raise CliError(
            f"--chatwoot-port and --sendblue-port are both {chatwoot_port}: give each its own port"
        )
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


def check_port(option: str, port: int) -> None:
    """A port the sandbox can listen on at 127.0.0.1 (0: any free one), or a one-line error."""
    if not 0 <= port <= 65535:
        raise CliError(f"{option} {port} is not a port: use 1-65535, or 0 for any free port")
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise CliError(
                f"{option} {port}: cannot listen on 127.0.0.1:{port} ({exc.strerror or exc})"
            ) from None
