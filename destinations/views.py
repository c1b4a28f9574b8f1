"""The `analytics` views users want on day one, over the loaded `chatwoot` and `sendblue` datasets.

- `analytics.contacts_unified`: one row per person. Chatwoot contacts and Sendblue contacts are
  matched on the E.164 phone (Chatwoot validates `phone_number` as `+[1-9]\\d{1,14}`, Sendblue keys
  contacts by E.164 `phone`; both are stripped of anything but digits and `+` before comparing).
  Columns: `phone`, `matched_in` ('both', 'chatwoot_only', 'sendblue_only'), `chatwoot_contact_id`,
  `sendblue_phone`, `sendblue_contact_id`, `name`, `chatwoot_name`, `sendblue_first_name`,
  `sendblue_last_name`, `email`, `company_name`, `chatwoot_labels` and `sendblue_tags` (arrays, sorted),
  `chatwoot_blocked`, `sendblue_opt_out`, `opted_out` (true when Sendblue has the number opted out).
  Chatwoot contacts without a phone appear once each as 'chatwoot_only'.
- `analytics.conversation_activity`: one row per UTC day and source ('chatwoot' or 'sendblue') with
  `conversations` (distinct conversations with a message that day), `messages`, `inbound`, `outbound`.
  Chatwoot `message_type` 0 is inbound, 1 (outgoing) and 3 (template) outbound; 2 (activity) and
  private notes are not messages to or from a customer and are left out. Sendblue uses `is_outbound`
  and the day of `date_sent` (`date_updated` while a message is still queued).

The SQL is plain (CTEs, LEFT/FULL JOIN, `array_agg ... ORDER BY`, `AT TIME ZONE`), which DuckDB and
Postgres both run. Columns a load did not create (dlt adds a column only once a value was seen) are
read as NULL, so the views exist on any data. Views are dropped and created again (Postgres refuses
`CREATE OR REPLACE VIEW` when the column list changes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ANALYTICS = "analytics"


@dataclass
class ViewsResult:
    created: list[str] = field(default_factory=list)
    note: str | None = None


class _Schema:
    """Qualified names and column lists, read through a dlt SQL client."""

    def __init__(self, client: Any):
        self.client = client
        self._columns: dict[tuple[str, str], set[str] | None] = {}

    def qualified(self, dataset: str, table: str | None = None) -> str:
        return ".".join(self.client.make_qualified_table_name_path(table, dataset_name=dataset))

    def quote(self, name: str) -> str:
        return str(self.client.capabilities.escape_identifier(name))

    def columns(self, dataset: str, table: str) -> set[str] | None:
        """The table's column names, or None when it does not exist."""
        key = (dataset, table)
        if key not in self._columns:
            from dlt.destinations.exceptions import DatabaseUndefinedRelation

            try:
                with self.client.execute_query(
                    f"SELECT * FROM {self.qualified(dataset, table)} WHERE 1 = 0"
                ) as cur:
                    description = getattr(cur, "description", None) or cur.native_cursor.description
                    self._columns[key] = {str(col[0]).lower() for col in description}
            except DatabaseUndefinedRelation:
                self._columns[key] = None
        return self._columns[key]

    def column_or_null(
        self, dataset: str, table: str, alias: str, column: str, sql_type: str = "VARCHAR"
    ) -> str:
        if column in (self.columns(dataset, table) or set()):
            return f"{alias}.{self.quote(column)}"
        return f"CAST(NULL AS {sql_type})"

    def not_deleted(self, dataset: str, table: str, alias: str) -> str:
        if "_deleted" in (self.columns(dataset, table) or set()):
            return f"NOT COALESCE({alias}.{self.quote('_deleted')}, FALSE)"
        return "TRUE"


def _digits_plus(expr: str) -> str:
    return f"NULLIF(REGEXP_REPLACE({expr}, '[^0-9+]', '', 'g'), '')"


def contacts_unified_sql(s: _Schema, cw: str, sb: str) -> str:
    cw_contacts, sb_contacts = s.qualified(cw, "contacts"), s.qualified(sb, "contacts")
    col = s.column_or_null
    cw_labels = (
        f"SELECT l.{s.quote('contact_id')} AS contact_id, ARRAY_AGG(l.{s.quote('label')} ORDER BY "
        f"l.{s.quote('label')}) AS labels FROM {s.qualified(cw, 'contact_labels')} l GROUP BY l.{s.quote('contact_id')}"
        if s.columns(cw, "contact_labels") is not None
        else "SELECT CAST(NULL AS BIGINT) AS contact_id, CAST(NULL AS VARCHAR[]) AS labels WHERE FALSE"
    )
    sb_tags = (
        f"SELECT t.{s.quote('phone')} AS phone, ARRAY_AGG(t.{s.quote('tag')} ORDER BY t.{s.quote('tag')}) "
        f"AS tags FROM {s.qualified(sb, 'contact_tags')} t GROUP BY t.{s.quote('phone')}"
        if s.columns(sb, "contact_tags") is not None
        else "SELECT CAST(NULL AS VARCHAR) AS phone, CAST(NULL AS VARCHAR[]) AS tags WHERE FALSE"
    )
    return f"""
WITH cw_labels AS ({cw_labels}),
sb_tags AS ({sb_tags}),
cw AS (
    SELECT c.{s.quote("id")} AS chatwoot_contact_id,
           {_digits_plus(col(cw, "contacts", "c", "phone_number"))} AS phone,
           {col(cw, "contacts", "c", "name")} AS chatwoot_name,
           {col(cw, "contacts", "c", "email")} AS email,
           {col(cw, "contacts", "c", "blocked", "BOOLEAN")} AS chatwoot_blocked,
           cl.labels AS chatwoot_labels
    FROM {cw_contacts} c
    LEFT JOIN cw_labels cl ON cl.contact_id = c.{s.quote("id")}
    WHERE {s.not_deleted(cw, "contacts", "c")}
),
sb AS (
    SELECT c.{s.quote("phone")} AS sendblue_phone,
           {_digits_plus("c." + s.quote("phone"))} AS phone,
           {col(sb, "contacts", "c", "contact_id")} AS sendblue_contact_id,
           {col(sb, "contacts", "c", "first_name")} AS sendblue_first_name,
           {col(sb, "contacts", "c", "last_name")} AS sendblue_last_name,
           {col(sb, "contacts", "c", "company_name")} AS company_name,
           {col(sb, "contacts", "c", "opt_out", "BOOLEAN")} AS sendblue_opt_out,
           st.tags AS sendblue_tags
    FROM {sb_contacts} c
    LEFT JOIN sb_tags st ON st.phone = c.{s.quote("phone")}
    WHERE {s.not_deleted(sb, "contacts", "c")}
)
SELECT COALESCE(cw.phone, sb.phone) AS phone,
       CASE WHEN cw.chatwoot_contact_id IS NOT NULL AND sb.sendblue_phone IS NOT NULL THEN 'both'
            WHEN cw.chatwoot_contact_id IS NOT NULL THEN 'chatwoot_only'
            ELSE 'sendblue_only' END AS matched_in,
       cw.chatwoot_contact_id,
       sb.sendblue_phone,
       sb.sendblue_contact_id,
       COALESCE(NULLIF(TRIM(cw.chatwoot_name), ''),
                NULLIF(TRIM(CONCAT_WS(' ', sb.sendblue_first_name, sb.sendblue_last_name)), '')) AS name,
       cw.chatwoot_name,
       sb.sendblue_first_name,
       sb.sendblue_last_name,
       cw.email,
       sb.company_name,
       cw.chatwoot_labels,
       sb.sendblue_tags,
       cw.chatwoot_blocked,
       sb.sendblue_opt_out,
       COALESCE(sb.sendblue_opt_out, FALSE) AS opted_out
FROM cw
FULL OUTER JOIN sb ON cw.phone = sb.phone
"""


def conversation_activity_sql(s: _Schema, cw: str, sb: str) -> str:
    parts: list[str] = []
    cw_cols = s.columns(cw, "messages")
    if cw_cols is not None:
        private = "AND NOT COALESCE(m.private, FALSE)" if "private" in cw_cols else ""
        parts.append(
            f"""
    SELECT CAST(m.created_at AT TIME ZONE 'UTC' AS DATE) AS day,
           'chatwoot' AS source,
           CAST(m.conversation_id AS VARCHAR) AS conversation_key,
           CASE WHEN m.message_type = 0 THEN 1 ELSE 0 END AS inbound,
           CASE WHEN m.message_type IN (1, 3) THEN 1 ELSE 0 END AS outbound
    FROM {s.qualified(cw, "messages")} m
    WHERE m.message_type IN (0, 1, 3) {private} AND {s.not_deleted(cw, "messages", "m")}"""
        )
    sb_cols = s.columns(sb, "messages")
    if sb_cols is not None:
        # a queued message has no date_sent yet: it counts on the day it was last updated
        sent = "COALESCE(m.date_sent, m.date_updated)" if "date_sent" in sb_cols else "m.date_updated"
        if "conversation_id" in sb_cols:
            thread = "m.conversation_id"
        else:
            group = s.column_or_null(sb, "messages", "m", "group_id")
            thread = f"COALESCE(NULLIF({group}, ''), CONCAT_WS(':', m.sendblue_number, m.number))"
        parts.append(
            f"""
    SELECT CAST({sent} AT TIME ZONE 'UTC' AS DATE) AS day,
           'sendblue' AS source,
           CAST({thread} AS VARCHAR) AS conversation_key,
           CASE WHEN m.is_outbound THEN 0 ELSE 1 END AS inbound,
           CASE WHEN m.is_outbound THEN 1 ELSE 0 END AS outbound
    FROM {s.qualified(sb, "messages")} m
    WHERE {sent} IS NOT NULL AND {s.not_deleted(sb, "messages", "m")}"""
        )
    union = "\n    UNION ALL".join(parts)
    return f"""
WITH activity AS ({union}
)
SELECT day, source,
       COUNT(DISTINCT conversation_key) AS conversations,
       COUNT(*) AS messages,
       SUM(inbound) AS inbound,
       SUM(outbound) AS outbound
FROM activity
GROUP BY day, source
"""


def create_analytics_views(
    client: Any,
    chatwoot_dataset: str = "chatwoot",
    sendblue_dataset: str = "sendblue",
    analytics_dataset: str = ANALYTICS,
) -> ViewsResult:
    """(Re)create the views when both sources' contacts are loaded; otherwise say why not.

    `client` is an open dlt SQL client (`pipeline.sql_client()`) on the warehouse holding both datasets.
    """
    s = _Schema(client)
    missing = [
        f"{ds}.contacts" for ds in (chatwoot_dataset, sendblue_dataset) if s.columns(ds, "contacts") is None
    ]
    if missing:
        return ViewsResult(note=f"analytics views need both sources loaded; missing {', '.join(missing)}")
    builders: list[tuple[str, Callable[[_Schema, str, str], str]]] = [
        ("contacts_unified", contacts_unified_sql)
    ]
    if (
        s.columns(chatwoot_dataset, "messages") is not None
        or s.columns(sendblue_dataset, "messages") is not None
    ):
        builders.append(("conversation_activity", conversation_activity_sql))
    client.execute_sql(f"CREATE SCHEMA IF NOT EXISTS {s.qualified(analytics_dataset)}")
    created = []
    for name, build in builders:
        view = s.qualified(analytics_dataset, name)
        body = build(s, chatwoot_dataset, sendblue_dataset)
        client.execute_sql(f"DROP VIEW IF EXISTS {view}")
        client.execute_sql(f"CREATE VIEW {view} AS {body}")
        created.append(f"{analytics_dataset}.{name}")
    return ViewsResult(created=created)
