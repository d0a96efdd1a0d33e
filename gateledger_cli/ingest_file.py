"""`gateledger ingest`: publish a file of upstream records through the producer path."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from gateledger.kafka import BrokerNotConfigured, ensure_gateledger_topics, resolve
from gateledger.masking import Masker, masking_salt
from gateledger.settings import Settings
from producers.accept import formats
from producers.accept import RawRecord, accept, parse_body, parse_lines
from producers.accept import IngestContext
from producers.publisher import PublishError, Publisher

BATCH = 1000


def files_of(path: Path) -> list[Path]:
    """The file itself, or every ``*.jsonl`` / ``*.json`` under a folder (an Obot export bucket
    mirrors as ``<prefix>/YYYY/MM/DD/<name>-<time>.jsonl``), in name order."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".jsonl", ".json"))
    return [path]


def _records(path: Path) -> tuple[list[RawRecord], bool]:
    """The file's records, and whether they are lines (True) or elements of one JSON array."""
    data = sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
    if data.lstrip()[:1] == b"[":
        return parse_body(data), False
    return list(parse_lines(data.splitlines())), True


async def ingest_file(fmt: str, path: Path, *, tenant: str, install: str) -> int:
    """Publish; print each rejected record's line and reason. Exit code 1 if any was rejected."""
    if fmt not in formats():
        raise click.UsageError(f"unknown format {fmt!r}; one of: {', '.join(formats())}")
    settings = Settings()
    try:
        target = resolve(settings.kafka, settings.core)
    except BrokerNotConfigured as exc:
        raise click.ClickException(str(exc)) from None
    masker = Masker(salt=masking_salt(settings.core.data_dir))
    ctx = IngestContext(masker=masker, tenant=tenant, install=install)
    await ensure_gateledger_topics(settings.kafka, target)
    accepted = rejected = 0
    try:
        async with Publisher(settings.kafka, target) as publisher:
            for file in files_of(path):
                records, is_lines = _records(file)
                for start in range(0, len(records), BATCH):
                    result = await accept(publisher, fmt, records[start : start + BATCH], ctx,
                                          origin=f"file:{file.name}")
                    accepted += result.accepted
                    for r in result.rejections:
                        where = f"line {r.index + 1}" if is_lines else f"record {r.index}"
                        click.echo(f"{file}: {where}: {r.reason}: {r.message}", err=True)
                    rejected += len(result.rejections)
    except PublishError as exc:
        raise click.ClickException(f"{exc} ({accepted} records were published before the failure)") from None
    click.echo(f"published {accepted} {fmt} event(s); rejected {rejected} (dead-lettered)")
    return 1 if rejected else 0
