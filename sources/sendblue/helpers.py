"""What the dlt resources and the CLI need around the client: the messages walk shared with
`conversations`, and the library functions `check_connection` and `discover`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import httpx

from sources.common import settings as common_settings
from sources.common.errors import ConfigError
from sources.common.paging import WalkReport
from sources.sendblue.client import SendblueClient
from sources.sendblue.conversations import ConversationBuilder
from sources.sendblue.endpoints import STREAMS
from sources.sendblue.settings import API_NAME, SendblueSettings

log = logging.getLogger("switchboard.sendblue")


def current_load_id() -> str | None:
    """The load package being extracted, which every resource of one extraction shares."""
    try:
        import dlt

        return str(dlt.current.load_package_state()["load_id"])
    except Exception:  # outside an extraction
        return None


def selected_resources() -> list[str]:
    """Names of the resources dlt is extracting now (empty outside an extraction)."""
    try:
        import dlt

        return list(dlt.current.source().selected_resources)
    except Exception:  # not inside a source extraction (e.g. a resource run on its own)
        return []


@dataclass
class SharedMessageWalk:
    """The messages resource's walk, offered to `conversations` so one pass over the list serves both.

    The messages generator decides at its start whether the conversations builder can ride along: its walk
    must cover everything conversations has not yet accounted for (it starts no later than the
    conversations cursor, or at the very beginning) and must not stop at an upper bound.
    """

    builder: ConversationBuilder | None = None
    load_id: str | None = None  # the extraction this walk belongs to
    finished: bool = False
    complete: bool = False

    def begin(
        self,
        *,
        walk_start: datetime | None,
        bounded_above: bool,
        conversations_state: dict[str, Any],
        baseline: datetime | None,
        conversations_selected: bool,
    ) -> None:
        self.builder, self.finished, self.complete = None, False, False
        self.load_id = current_load_id()
        if bounded_above or not conversations_selected:
            return
        state_builder = ConversationBuilder.from_state(conversations_state, full=False)
        covered_from = state_builder.cursor or baseline
        if walk_start is None:
            self.builder = ConversationBuilder(full=True)
        elif covered_from is not None and walk_start <= covered_from:
            self.builder = state_builder

    def observe(self, page: list[dict[str, Any]]) -> None:
        if self.builder is not None:
            self.builder.observe(page)

    def end(self, complete: bool) -> None:
        self.finished = True
        self.complete = complete

    def done_in_this_extraction(self) -> bool:
        return self.finished and self.load_id == current_load_id()


SECRET_KEYS = ("api_key_id", "api_secret_key")
CHECK_TIMEOUT_SECONDS = 5.0  # connect and read, for `check` only


def build_settings(values: dict[str, Any]) -> SendblueSettings:
    """SendblueSettings from config values (None or "" = not set: the default applies), or a one-line
    ConfigError naming the key and its environment variable. Never echoes a secret."""
    return common_settings.build_settings(
        SendblueSettings,
        "sendblue",
        values,
        required=SECRET_KEYS,
        secret_keys=SECRET_KEYS,
        error=partial(ConfigError, api=API_NAME),
    )


def settings_from_config(**overrides: Any) -> SendblueSettings:
    """Resolve `[sources.sendblue]` from dlt's providers (config.toml, secrets.toml, env vars)."""
    return build_settings(common_settings.config_values(SendblueSettings, "sendblue", SECRET_KEYS, **overrides))


def discover() -> list[dict[str, Any]]:
    """Each Sendblue stream: table, primary key, write disposition, cursor and columns. No network."""
    return [stream.describe() for stream in STREAMS.values()]


def check_connection(
    settings: SendblueSettings | None = None, *, transport: httpx.AsyncBaseTransport | None = None
) -> str:
    """The cheapest authenticated call (the contact count). Returns "ok"; raises the typed error otherwise,
    whose message is one human line (bad credentials, unreachable host, refused URL).

    One attempt with a short timeout: a check answers at once, where a load's retries with backoff would
    spend half a minute on a host that is down."""
    settings = settings or settings_from_config()
    probe = settings.model_copy(
        update={"max_retries": 0, "timeout": min(settings.timeout, CHECK_TIMEOUT_SECONDS)}
    )
    with SendblueClient(probe, transport=transport) as client:
        client.count_contacts()
    return "ok"


def contact_pages(client: SendblueClient, state: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
    """Every listed contact, then tombstones for the contacts that are gone.

    Sendblue has no change feed for contacts, so each run walks them all. Phones loaded before and missing
    from a complete walk are looked up one by one: a 404 yields a tombstone (`_deleted` true, which the
    hard_delete hint turns into a DELETE), a contact that still exists is loaded from that lookup.
    `state["phones"]` holds the phones loaded so far; a walk that could not finish deletes nothing.
    """
    known = set(state.get("phones") or ())
    seen: set[str] = set()
    skipped = 0

    def keyed(page: list[dict[str, Any]]) -> list[dict[str, Any]]:
        nonlocal skipped
        rows = [r for r in page if r.get("phone")]
        skipped += len(page) - len(rows)
        seen.update(r["phone"] for r in rows)
        return rows

    for page in client.iter_contacts():
        rows = keyed(page)
        if rows:
            yield rows
    report: WalkReport = client.aclient.last_contacts_walk
    total = client.count_contacts()
    if report.undated or total > len(seen) + skipped:
        for page in client.iter_contacts_without_created_at(skip=seen):
            rows = keyed(page)
            if rows:
                yield rows
    if skipped:
        log.warning("Sendblue: %d contacts without a phone number were skipped (phone is the key)", skipped)
    complete = not (report.stuck_timestamps or report.truncated_at_cap or report.reordered_ties)
    if not complete:
        log.warning(
            "Sendblue: the contacts walk could not read every contact (%s); no contact is marked deleted",
            report,
        )
        state["phones"] = sorted(known | seen)
    else:
        found: set[str] = set()
        tombstones = []
        for phone in sorted(known - seen):
            contact = client.get_contact(phone)
            if contact is None:
                tombstones.append({"phone": phone, "_deleted": True})
            elif contact.get("phone"):
                found.add(contact["phone"])
                yield [contact]
        if tombstones:
            yield tombstones
        state["phones"] = sorted(seen | found)
    listed = len(seen) + skipped
    if total != listed:
        log.warning(
            "Sendblue reports %d contacts (GET /api/v2/contacts/count) but the list gave %d; contacts created "
            "or deleted during the run, or an API inconsistency, explain a difference",
            total,
            listed,
        )


def chunks(rows: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]
