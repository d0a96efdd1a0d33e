"""CloudEvents 1.0 (structured JSON mode) for custom gateways.

Rules from cloudevents/spec: ``cloudevents/spec.md`` ("REQUIRED Attributes": ``id``, ``source``,
``specversion`` = ``1.0``, ``type``, each a non-empty string; "OPTIONAL Attributes": ``time`` an RFC
3339 timestamp, ``subject`` and ``dataschema`` non-empty if present; extension attributes allowed)
and ``cloudevents/formats/json-format.md`` (§3.1: binary data travels as ``data_base64``, and
``data`` and ``data_base64`` are mutually exclusive).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from gateledger.contracts.wire.base import UtcTime, WireModel


class CloudEvent(WireModel):
    """A CloudEvent in structured mode; extension attributes are kept as extras."""

    specversion: str = Field(pattern=r"^1\.0$")
    id: str = Field(min_length=1)
    source: str = Field(min_length=1)
    type: str = Field(min_length=1)
    time: UtcTime | None = None
    subject: str | None = Field(default=None, min_length=1)  # spec.md: "If present, MUST be a non-empty string"
    datacontenttype: str | None = None
    dataschema: str | None = Field(default=None, min_length=1)  # spec.md: "If present, MUST be a non-empty URI"
    data: Any = None
    data_base64: str | None = None

    @model_validator(mode="after")
    def _one_data(self) -> CloudEvent:
        # json-format.md §3.1: "the presence of the data and data_base64 members is mutually exclusive"
        if "data" in self.model_fields_set and "data_base64" in self.model_fields_set:
            raise ValueError("data and data_base64 are mutually exclusive (CloudEvents JSON format 3.1)")
        return self
