"""Chatwoot constants. The settings model with every default is `client.ChatwootSettings`; the endpoint
and stream tables are in `endpoints.py`.
"""

from __future__ import annotations

from typing import Any

API_NAME = "Chatwoot"

# "auto" rate limiting starts at 120/min (2 requests a second, under any server's budget) and learns up.
AUTO_RATE_LIMIT_START = 120

# The `is_present` condition on `labels` that finds every contact carrying any label, account label or not.
LABELLED_CONTACTS_FILTER: list[dict[str, Any]] = [
    {"attribute_key": "labels", "filter_operator": "is_present", "values": [], "query_operator": None}
]


# message_type is an integer enum in REST responses (the messages index renders the raw column).
MESSAGE_TYPE_NAMES = {0: "incoming", 1: "outgoing", 2: "activity", 3: "template"}

