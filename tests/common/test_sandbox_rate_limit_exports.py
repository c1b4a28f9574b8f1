"""`switchboard sandbox` prints export lines; the rate limits among them are the simulators' own budgets."""

from __future__ import annotations

import pytest

from pipelines.local_sandbox import start_sandboxes
from sources.chatwoot import settings_from_config


def test_the_export_lines_match_the_simulators_budgets(monkeypatch: pytest.MonkeyPatch) -> None:
    boxes = start_sandboxes(
        size="small", seed=5, chatwoot_overrides={"rate_limit_per_minute": 300},
        sendblue_overrides={"messages_rate_limit": 50, "messages_rate_window_seconds": 5},
    )
    with boxes:
        env = boxes.env()
    assert env["SOURCES__CHATWOOT__RATE_LIMIT_PER_MINUTE"] == "300"
    assert env["SOURCES__CHATWOOT__RATE_LIMIT_WINDOW_SECONDS"] == "60"
    assert env["SOURCES__SENDBLUE__MESSAGES_RATE_LIMIT"] == "50"
    assert env["SOURCES__SENDBLUE__MESSAGES_RATE_WINDOW_SECONDS"] == "5"
    assert env["SOURCES__SENDBLUE__RATE_LIMIT_PER_MINUTE"] == "0"  # the simulator limits no other endpoint
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = settings_from_config()
    assert (settings.rate_limit_per_minute, settings.rate_limit_window_seconds) == (300, 60)
