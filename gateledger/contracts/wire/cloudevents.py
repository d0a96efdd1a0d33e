"""CloudEvents 1.0 (structured JSON mode) for custom gateways."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from gateledger.contracts.wire.base import UtcTime, WireModel


class CloudEvent(WireModel):
    """A CloudEvent in structured mode; extension attributes are kept as extras."""

    specversion: str = Field(pattern=r"^1\.0$")
    id: str = Field(min_length=1)
    source: str = Field(min_length=1)
    type: str = Field(min_length=1)
    time: UtcTime | None = None
    subject: str | None = None
    datacontenttype: str | None = None
    dataschema: str | None = None
    data: Any = None
    data_base64: str | None = None
