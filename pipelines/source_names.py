"""The sources switchboard loads, and the one check of a source name a user typed."""

from __future__ import annotations

import importlib
from types import ModuleType

from pipelines.errors import CliError

SOURCE_NAMES = ("chatwoot", "sendblue")


def check_source_name(source: str, *, or_all: bool = False) -> str:
    """`source` if it names a source (or is `all`, where `or_all`), else a CliError listing the choices."""
    if source in SOURCE_NAMES or (or_all and source == "all"):
        return source
    choices = "chatwoot, sendblue or all" if or_all else "chatwoot or sendblue"
    raise CliError(f"unknown source {source!r}: choose {choices}")


def source_module(source: str) -> ModuleType:
    """The package of a source (`sources.<source>`): its dlt source, client, settings and discover."""
    return importlib.import_module(f"sources.{check_source_name(source)}")
