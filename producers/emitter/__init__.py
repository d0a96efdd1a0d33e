"""A small emitter library for custom gateways: CloudEvents into gateledger's ``POST /v1/cloudevents``.

    from producers.emitter import Emitter, make_event

    with Emitter("http://gateledger:8480", token="...") as em:
        em.emit(make_event("gateledger.llm.call", {"provider": "openai", "model": "gpt-4o",
                                                  "input_tokens": 120, "output_tokens": 30},
                           source="acme/gateway", id=call_id, tenant="acme",
                           request_id=request_id, traceparent=traceparent))

``Emitter`` is blocking (standard library only, a background thread); ``AsyncEmitter`` is its
asyncio twin. Both batch (``application/cloudevents-batch+json``), retry while gateledger answers
503/429/5xx or is unreachable (honouring ``Retry-After``), split a batch on 413, and report
events gateledger refused through ``on_error`` (background) or ``EmitError`` (``flush``).
"""

from producers.emitter.aio import AsyncEmitter
from producers.emitter.events import EmitError, RetryPolicy, make_event
from producers.emitter.sync import Emitter

__all__ = ["AsyncEmitter", "EmitError", "Emitter", "RetryPolicy", "make_event"]
