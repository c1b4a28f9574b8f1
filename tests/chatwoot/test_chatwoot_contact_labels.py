"""contact_labels_mode exact and fast: request bounds from the issue, checked on the sandbox's request log,
on data with non-account labels and contacts mixing both kinds."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any

import pytest

from sources.chatwoot.client import ChatwootClient

LABEL_RESOURCES = ("contacts", "contact_labels")


class LabelTruth:
    """The sandbox's visible (contact, label) pairs and the quantities the bounds are written in."""

    def __init__(self, state: Any):
        with state.lock:
            self.pairs: set[tuple[int, str]] = state.contact_labels()
            self.account: set[str] = state.account_label_titles()
            self.n_contacts = len(state.visible_contacts())
        self.by_contact: dict[int, set[str]] = defaultdict(set)
        for contact_id, label in self.pairs:
            self.by_contact[contact_id].add(label)
        self.labelled = set(self.by_contact)
        self.per_label = Counter(label for _, label in self.pairs)
        # labelled contacts no account-label listing covers: they carry only non-account labels
        self.uncovered = {c for c, labels in self.by_contact.items() if not labels & self.account}
        self.mixed = {
            c for c, labels in self.by_contact.items() if labels & self.account and labels - self.account
        }
        self.extra = {label for c in self.uncovered for label in self.by_contact[c]} - self.account

    def exact_bound(self) -> int:
        n, nl = self.n_contacts, len(self.labelled)
        return math.ceil(n / 15) + math.ceil(nl / 15) + nl + 2

    def fast_bound(self) -> int:
        listed = self.account | self.extra
        return (
            math.ceil(self.n_contacts / 15)
            + sum(math.ceil(self.per_label[label] / 15) for label in listed)
            + math.ceil(len(self.labelled) / 15)
            + len(self.uncovered)
            + 2
        )

    def fast_blind_spot(self) -> set[tuple[int, str]]:
        """Pairs fast mode cannot see: a covered contact's non-account label no uncovered contact carries."""
        return {
            (c, label)
            for c in self.labelled - self.uncovered
            for label in self.by_contact[c] - self.account - self.extra
        }


def label_pairs(warehouse: Any) -> set[tuple[int, str]]:
    return set(warehouse.rows("SELECT contact_id, label FROM chatwoot.contact_labels"))


@pytest.fixture
def labelled_sandbox(chatwoot_server):
    # more labelled contacts than the default so each kind shows up several times
    server = chatwoot_server("small", seed=8, labelled_contacts=90)
    truth = LabelTruth(server.state)
    assert truth.uncovered and truth.mixed, "the sandbox must hold non-account and mixed labels"
    return server, truth


def test_exact_mode_equals_truth_within_its_request_bound(labelled_sandbox, warehouse, settings_for):
    server, truth = labelled_sandbox
    warehouse.load(settings_for(server.url, contact_labels_mode="exact"), resources=LABEL_RESOURCES)

    assert label_pairs(warehouse) == truth.pairs
    total = len(server.state.log.entries)
    assert total <= truth.exact_bound()
    # the labels of exactly the labelled contacts were read, each once
    reads = server.state.log.matching(route="/contacts/{id}/labels")
    assert sorted(int(r.path.split("/")[-2]) for r in reads) == sorted(truth.labelled)
    print(f"exact: {total} requests, bound {truth.exact_bound()}")


def test_fast_mode_stays_within_its_bound_and_misses_only_its_blind_spot(
    labelled_sandbox, warehouse, settings_for
):
    server, truth = labelled_sandbox
    warehouse.load(settings_for(server.url, contact_labels_mode="fast"), resources=LABEL_RESOURCES)

    total = len(server.state.log.entries)
    assert total <= truth.fast_bound()
    reads = server.state.log.matching(route="/contacts/{id}/labels")
    assert sorted(int(r.path.split("/")[-2]) for r in reads) == sorted(truth.uncovered)
    loaded = label_pairs(warehouse)
    assert loaded <= truth.pairs
    assert truth.pairs - loaded == truth.fast_blind_spot()
    print(f"fast: {total} requests, bound {truth.fast_bound()}, exact bound {truth.exact_bound()}")


def test_fast_mode_equals_truth_without_mixed_contacts(labelled_sandbox, warehouse, settings_for):
    server, truth = labelled_sandbox
    settings = settings_for(server.url, contact_labels_mode="fast")
    # make every mixed contact carry account labels only, through the API (POST replaces the set)
    with ChatwootClient(settings) as client:
        for contact_id in sorted(truth.mixed):
            kept = sorted(truth.by_contact[contact_id] & truth.account)
            assert client.set_contact_labels(contact_id, kept) == kept
    truth = LabelTruth(server.state)
    assert not truth.mixed and truth.uncovered
    server.state.log.clear()

    warehouse.load(settings, resources=LABEL_RESOURCES)

    assert label_pairs(warehouse) == truth.pairs
    assert len(server.state.log.entries) <= truth.fast_bound()


def test_fast_mode_blind_spot_and_exact_mode_sees_it(labelled_sandbox, warehouse, settings_for):
    server, truth = labelled_sandbox
    covered = min(truth.labelled - truth.uncovered - truth.mixed)
    account_label = sorted(truth.by_contact[covered])[0]
    with ChatwootClient(settings_for(server.url)) as client:
        client.set_contact_labels(covered, [account_label, "seen-nowhere-else"])

    warehouse.load(settings_for(server.url, contact_labels_mode="fast"), resources=("contact_labels",))
    assert (covered, "seen-nowhere-else") not in label_pairs(warehouse)

    warehouse.load(settings_for(server.url, contact_labels_mode="exact"), resources=("contact_labels",))
    assert (covered, "seen-nowhere-else") in label_pairs(warehouse)
    assert label_pairs(warehouse) == LabelTruth(server.state).pairs
