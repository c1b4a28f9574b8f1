"""The alternatives `make bench` compares switchboard with, on Chatwoot contacts and their labels.

- `rest_api_peer`: dlt's declarative `rest_api` source configured as a dlt user would from the API
  docs: contacts paged by page number until an empty page, a per-contact `labels` child resource
  (`parallelized`), the token as an API-key header, merge on `id`. dlt's own retry (429 included) applies.
  The labels child cannot carry the contact id (`include_from_parent` fails on a list of strings).
- `httpx_loop_peer`: a plain sequential httpx loop: every contacts page, then each contact's labels,
  written to DuckDB with executemany.

Each returns the rows it loaded, so the harness can set them against the sandbox's ground truth.
"""

from __future__ import annotations

import os
from typing import Any

import dlt
import duckdb
import httpx


def rest_api_peer(base_url: str, account_id: int, token: str, db_path: str, pipelines_dir: str) -> dict[str, Any]:
    from dlt.sources.rest_api import rest_api_source

    source = rest_api_source(
        {
            "client": {
                "base_url": f"{base_url}/api/v1/accounts/{account_id}/",
                "auth": {"type": "api_key", "name": "api_access_token", "api_key": token, "location": "header"},
            },
            "resource_defaults": {"write_disposition": "merge"},
            "resources": [
                {
                    "name": "contacts",
                    "primary_key": "id",
                    "endpoint": {
                        "path": "contacts",
                        "data_selector": "payload",
                        "paginator": {"type": "page_number", "base_page": 1, "page_param": "page",
                                      "total_path": None, "stop_after_empty_page": True},
                    },
                },
                {
                    "name": "contact_labels",
                    "parallelized": True,
                    "endpoint": {
                        "path": "contacts/{resources.contacts.id}/labels",
                        "data_selector": "payload",
                        "paginator": "single_page",
                    },
                    # the payload is a list of strings: `include_from_parent` fails on those ('str' object has no
                    # attribute 'update'), so the rows carry the label alone, without the contact's id
                    "processing_steps": [{"map": lambda label: {"label": label}}],  # type: ignore[dict-item]
                },
            ],
        }
    )
    pipeline = dlt.pipeline(
        "bench_rest_api", pipelines_dir=pipelines_dir, destination=dlt.destinations.duckdb(db_path),
        dataset_name="peer",
    )
    pipeline.run(source)
    with duckdb.connect(db_path, read_only=True) as con:
        contacts = {row[0] for row in con.sql("SELECT id FROM peer.contacts").fetchall()}
        columns = {row[0] for row in con.sql("DESCRIBE peer.contact_labels").fetchall()}
        key = "_contacts_id" if "_contacts_id" in columns else None
        pairs = (
            {(int(a), str(b)) for a, b in con.sql(f"SELECT {key}, label FROM peer.contact_labels").fetchall()}
            if key else set()
        )
        label_rows = con.sql("SELECT count(*) FROM peer.contact_labels").fetchall()[0][0]
    return {"contacts": contacts, "pairs": pairs, "label_rows": int(label_rows), "labels_keyed": key is not None}


def httpx_loop_peer(base_url: str, account_id: int, token: str, db_path: str) -> dict[str, Any]:
    root = f"{base_url}/api/v1/accounts/{account_id}"
    contacts: dict[int, dict[str, Any]] = {}
    pairs: set[tuple[int, str]] = set()
    with httpx.Client(headers={"api_access_token": token}, timeout=30) as client:
        page = 1
        while True:
            response = client.get(f"{root}/contacts", params={"page": page})
            response.raise_for_status()
            payload = response.json()["payload"]
            if not payload:
                break
            for contact in payload:
                contacts[contact["id"]] = contact
            page += 1
        for contact_id in contacts:
            response = client.get(f"{root}/contacts/{contact_id}/labels")
            response.raise_for_status()
            pairs.update((contact_id, label) for label in response.json()["payload"])
    with duckdb.connect(db_path) as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS loop")
        con.execute("CREATE OR REPLACE TABLE loop.contacts (id BIGINT PRIMARY KEY, name VARCHAR, email VARCHAR)")
        con.executemany("INSERT INTO loop.contacts VALUES (?, ?, ?)",
                        [(c["id"], c.get("name"), c.get("email")) for c in contacts.values()])
        con.execute("CREATE OR REPLACE TABLE loop.contact_labels (contact_id BIGINT, label VARCHAR)")
        con.executemany("INSERT INTO loop.contact_labels VALUES (?, ?)", sorted(pairs))
    return {"contacts": set(contacts), "pairs": pairs, "label_rows": len(pairs), "labels_keyed": True}


if __name__ == "__main__":  # a quick look against a running sandbox: BASE_URL=... python benchmarks/peers.py
    import tempfile

    with tempfile.TemporaryDirectory() as work:
        found = rest_api_peer(os.environ["BASE_URL"], 1, "sandbox-chatwoot-token", f"{work}/p.duckdb", work)
        print(len(found["contacts"]), len(found["pairs"]), found["label_rows"], found["labels_keyed"])
