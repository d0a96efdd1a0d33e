"""The ingest app's routes (producers/ingest/server.py): every format has a path clients post it to."""

from __future__ import annotations

import asyncio

from gateledger import jsonutil
from gateledger.settings import Settings
from gateledger.topics import Format
from producers.ingest.server import INGEST_ROUTE, ingest_path
from tests import samples
from tests.producers.ingestutil import ingest_client


def test_every_format_is_accepted_at_the_path_a_client_is_given(settings: Settings) -> None:
    """What the simulator's deliveries (and any client) post to is what the app routes, for every format."""

    async def main() -> None:
        async with ingest_client(settings) as http:
            for fmt in Format:
                record = samples.ALL_FORMATS[fmt]()
                # The webhook filter takes one JSON-RPC message per request, as Obot sends it; the rest batches.
                body = record if fmt == Format.OBOT_WEBHOOK else [record]
                r = await http.post(ingest_path(fmt), data=jsonutil.dumps(body),
                                    headers={"Content-Type": "application/json"})
                assert r.status == 200, (fmt, ingest_path(fmt), r.status, await r.text())

    asyncio.run(main())


def test_formats_without_a_route_of_their_own_take_the_generic_one() -> None:
    assert ingest_path(Format.AXONFLOW_LLM_CALL) == INGEST_ROUTE.format(format="axonflow-llm-call")
    assert ingest_path(Format.OBOT_AUDIT) == "/api/mcp-audit-logs"  # Obot's own path: a shim only changes host
