"""Reverse-ETL targets: one class per `[syncs.NAME] target`, each in the module of its name. Adding a
target is one class (its row model, key, remote table, batch limit and writer) and one entry below."""

from __future__ import annotations

from destinations.targets.base import Outcome, RowResult, Target, WorkItem
from destinations.targets.chatwoot_contact_labels import ChatwootContactLabels
from destinations.targets.chatwoot_contacts import ChatwootContacts
from destinations.targets.sendblue_contacts import SendblueContacts
from destinations.targets.sendblue_opt_outs import SendblueOptOuts

TARGETS: dict[str, type[Target]] = {
    cls.name: cls for cls in (SendblueContacts, SendblueOptOuts, ChatwootContacts, ChatwootContactLabels)
}

__all__ = ["TARGETS", "Outcome", "RowResult", "Target", "WorkItem"]
