"""Base class for upstream wire-format models: exact field names, unknown fields kept."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict


class WireModel(BaseModel):
    """An upstream record as sent: extra fields are tolerated and kept (``model_extra``)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, protected_namespaces=())

    def wire_dict(self) -> dict[str, Any]:
        """The record back in its wire shape (original names, extras included, unset fields omitted)."""
        return self.model_dump(mode="json", exclude_unset=True, by_alias=True)


def _id_to_str(v: Any) -> Any:
    # JSON-RPC ids and some upstream ids are numbers on the wire and strings elsewhere.
    if isinstance(v, bool):
        raise ValueError("an id cannot be a boolean")
    if isinstance(v, int | float):
        return str(int(v)) if float(v).is_integer() else str(v)
    return v


def _empty_to_none(v: Any) -> Any:
    return None if v == "" else v


def _to_utc(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)
    return v


IdStr = Annotated[str, BeforeValidator(_id_to_str)]
"""A string id that may arrive as a JSON number."""

UtcTime = Annotated[datetime, BeforeValidator(_empty_to_none), AfterValidator(_to_utc)]
"""An RFC 3339 time; naive values are taken as UTC, all values are converted to UTC."""
