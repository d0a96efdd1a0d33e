"""A dataquery type for the ``grafana-clickhouse-datasource`` plugin (the foundation SDK has none).

Plugs into the SDK like its own query types: a ``Dataquery`` variant with ``to_json`` /
``from_json``, a builder panels accept in ``with_target``, and a runtime registration so dashboards
read back from JSON keep the type. Only the raw-SQL editor is modelled: every panel is SQL we wrote.
"""

from __future__ import annotations

import typing
from enum import StrEnum

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants

from dashboards.datasources import CLICKHOUSE_TYPE, CLICKHOUSE_UID


class QueryType(StrEnum):
    """What the plugin turns the result into."""

    TIMESERIES = "timeseries"
    TABLE = "table"
    LOGS = "logs"


# The plugin's own `format` codes; they must agree with `queryType` or Grafana renders the wrong frame.
FORMAT: dict[QueryType, int] = {QueryType.TIMESERIES: 0, QueryType.TABLE: 1, QueryType.LOGS: 2}


class ClickHouseQuery(cogvariants.Dataquery):
    """One raw-SQL target of the ClickHouse datasource."""

    def __init__(
        self,
        ref_id: str = "A",
        raw_sql: str = "",
        query_type: QueryType = QueryType.TABLE,
        datasource_uid: str = CLICKHOUSE_UID,
        hide: bool | None = None,
    ) -> None:
        self.ref_id = ref_id
        self.raw_sql = raw_sql
        self.query_type = QueryType(query_type)
        self.datasource_uid = datasource_uid
        self.hide = hide

    def to_json(self) -> dict[str, object]:
        """The target as Grafana stores it."""
        payload: dict[str, object] = {
            "refId": self.ref_id,
            "datasource": {"type": CLICKHOUSE_TYPE, "uid": self.datasource_uid},
            "editorType": "sql",
            "rawSql": self.raw_sql,
            "queryType": str(self.query_type),
            "format": FORMAT[self.query_type],
        }
        if self.hide is not None:
            payload["hide"] = self.hide
        return payload

    @classmethod
    def from_json(cls, data: dict[str, typing.Any]) -> typing.Self:
        """Read a target back (the inverse of ``to_json``)."""
        return cls(
            ref_id=data.get("refId", "A"),
            raw_sql=data.get("rawSql", ""),
            query_type=QueryType(data.get("queryType", QueryType.TABLE)),
            datasource_uid=(data.get("datasource") or {}).get("uid", CLICKHOUSE_UID),
            hide=data.get("hide"),
        )


class ClickHouse(cogbuilder.Builder[ClickHouseQuery]):
    """Builder of a ClickHouse raw-SQL target."""

    def __init__(self, sql: str, query_type: QueryType = QueryType.TABLE) -> None:
        self._internal = ClickHouseQuery(raw_sql=sql, query_type=query_type)

    def build(self) -> ClickHouseQuery:
        """The target."""
        return self._internal

    def ref_id(self, ref_id: str) -> typing.Self:
        """Set the refId (unique within a panel)."""
        self._internal.ref_id = ref_id
        return self

    def datasource_uid(self, uid: str) -> typing.Self:
        """Query another ClickHouse datasource than the provisioned one."""
        self._internal.datasource_uid = uid
        return self

    def hide(self, hide: bool) -> typing.Self:
        """Hide the target's result (used by alert rules' intermediate queries)."""
        self._internal.hide = hide
        return self


def register() -> None:
    """Let the SDK runtime decode ClickHouse targets found in dashboard JSON."""
    cogruntime.register_dataquery_variant(
        cogruntime.DataqueryConfig(identifier=CLICKHOUSE_TYPE, from_json_hook=ClickHouseQuery.from_json)
    )


register()
