"""SRE overview: is the pipeline keeping up, what is failing, how fast are the MCP servers and LLMs."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard

from dashboards import variables
from dashboards.board import FULL, HALF, STAT, Board
from dashboards.panels import (
    COUNT,
    ERROR_RATE,
    GOOD_BAD,
    LATENCY_MS,
    MS,
    OPS,
    PERCENT,
    bars_per_interval,
    ch_table,
    ch_timeseries,
    prom,
    stat_panel,
    table_panel,
    timeseries_panel,
)
from dashboards.sql import (
    ANY_INTERVAL,
    DELAY_QUANTILES,
    HOURLY_INTERVAL,
    LATENCY_QUANTILES,
    ROLLUP_INTERVAL,
    TENANT,
    TIME,
    any_of,
    calls,
    delays,
    landings,
    latest,
)
from gateledger.tables import Table

UID = "gateledger-sre"
SERVER = any_of("mcp_server_id", "server")
MODEL = any_of("model", "model")
MCP_FAILED = "status IN ('failure', 'timeout')"  # denied is an authorization outcome, not an error
LAG_STEPS = [(None, "green"), (1000, "yellow"), (10000, "red")]

# Output tables whose rows are emitted as soon as their events are seen (interactions and findings wait
# for timeouts on purpose, so their delay says nothing about pipeline health).
DELAY_TABLES = (Table.MCP_CALLS, Table.LLM_CALLS, Table.POLICY_DECISIONS, Table.WEBHOOK_DECISIONS, Table.COST_LEDGER)


# Whole hours come from calls_per_hour: in the panels over time when the interval is whole hours, always
# in the others (_IN_RANGE).
MCP_CALLS = calls("mcp", TENANT, SERVER, hours=HOURLY_INTERVAL)
LLM_CALLS = calls("llm", TENANT, MODEL, hours=HOURLY_INTERVAL)
MCP_CALLS_IN_RANGE = calls("mcp", TENANT, SERVER, hours=ANY_INTERVAL)
LLM_CALLS_IN_RANGE = calls("llm", TENANT, MODEL, hours=ANY_INTERVAL)
MCP_FAILED_CALLS = "sumIf(calls, status IN ('failure', 'timeout'))"
# The calls at the moment each server's tool last failed (point lookups on the sorting key): their errors.
LAST_FAILED_MCP_CALLS = latest(
    Table.MCP_CALLS, "time, mcp_server_id, tool_name, status, error", TIME, TENANT, SERVER,
    f"time IN (SELECT max(last_time) FROM {MCP_CALLS_IN_RANGE} WHERE {MCP_FAILED} GROUP BY mcp_server_id, tool_name)",
)

# Distinct raw events per minute with their delay sketches (first landed copy of each event).
RAW_LANDINGS = landings((Table.RAW_EVENTS,), TENANT)
# Their delay sketches alone, per minute or whole hour (delays_per_minute / delays_per_hour).
RAW_DELAYS = delays((Table.RAW_EVENTS,), TENANT)


def build() -> dashboard.Dashboard:
    """The SRE overview dashboard."""
    b = Board(
        UID,
        "gateledger · SRE overview",
        description="Throughput, end-to-end delay, lag, dead letters, errors and latency of the gateledger pipeline.",
        tags=["gateledger", "sre"],
        time_from="now-6h",
        refresh="30s",
        variables=[variables.tenant(), variables.server(), variables.model()],
    )
    _now(b)
    _throughput_and_delay(b)
    _errors(b)
    _mcp_servers_and_tools(b)
    _llm_calls(b)
    return b.build()


def _now(b: Board) -> None:
    """The row "Now"."""
    b.row("Now")
    b.add(
        stat_panel(
            "Events landed",
            ch_table(f"SELECT sum(events) AS events FROM {RAW_LANDINGS}"),
            unit=COUNT,
            description="Distinct upstream events in the time range (raw_events, duplicates collapsed).",
        ),
        STAT,
    )
    b.add(
        stat_panel(
            "Events/s",
            ch_table(
                "SELECT sum(events) / greatest(dateDiff('second', $__fromTime, $__toTime), 1) AS events_per_s "
                f"FROM {RAW_LANDINGS}"
            ),
            unit=OPS,
            decimals=2,
            description="Average event rate over the time range.",
        ),
        STAT,
    )
    b.add(
        stat_panel(
            "Dead letters",
            # A coalesced letter (refusals that kept no body: docs/ingest.md "Refusals") stands for `count`
            # requests; each letter's newest version counts.
            ch_table(f"SELECT sum(count) AS dead_letters FROM {latest(Table.DEAD_LETTERS, 'count', TIME, TENANT)}"),
            unit=COUNT,
            steps=GOOD_BAD,
            description="Records and requests rejected at any stage in the time range (a coalesced dead letter "
                        "counts every request it stands for).",
        ),
        STAT,
    )
    b.add(
        stat_panel(
            "MCP error rate",
            ch_table(
                f"SELECT {MCP_FAILED_CALLS} / greatest(sum(calls), 1) AS error_rate\n"
                f"FROM {MCP_CALLS_IN_RANGE}"
            ),
            unit=PERCENT,
            steps=ERROR_RATE,
            decimals=2,
            description="Share of MCP calls that failed or timed out (denials are counted on the Compliance dashboard).",
        ),
        STAT,
    )
    b.add(
        stat_panel(
            "Sink lag",
            prom("sum(gateledger_sink_consumer_lag_messages)", "lag", instant=True),
            unit=COUNT,
            steps=LAG_STEPS,
            description="Messages on Kafka not yet landed in ClickHouse (all topics).",
        ),
        STAT,
    )
    b.add(
        stat_panel(
            "Sink failing",
            prom("max(gateledger_sink_failing)", "failing", instant=True),
            unit=COUNT,
            steps=GOOD_BAD,
            description="1 while ClickHouse inserts fail and are being retried.",
        ),
        STAT,
    )


def _throughput_and_delay(b: Board) -> None:
    """The row "Throughput and delay"."""
    b.row("Throughput and delay")
    b.add(
        timeseries_panel(
            "Events/s by source and type",
            ch_timeseries(
                "SELECT $__timeInterval(minute) AS t, source, type, sum(events) / $__interval_s AS events_per_s\n"
                f"FROM {RAW_LANDINGS}\n"
                "GROUP BY t, source, type ORDER BY t"
            ),
            unit=OPS,
            stacked=True,
            min_interval=ROLLUP_INTERVAL,
            description="Distinct upstream events per second, by event time.",
        ),
        HALF,
    )
    b.add(
        timeseries_panel(
            "End-to-end delay: event time → landed (raw events)",
            ch_timeseries(
                "SELECT $__timeInterval(minute) AS t,\n"
                f"  {DELAY_QUANTILES}[1] AS p50,\n"
                f"  {DELAY_QUANTILES}[2] AS p95,\n"
                f"  {DELAY_QUANTILES}[3] AS p99\n"
                f"FROM {RAW_DELAYS}\n"
                "GROUP BY t ORDER BY t"
            ),
            unit=MS,
            steps=LATENCY_MS,
            show_thresholds=True,
            min_interval=ROLLUP_INTERVAL,
            description="inserted_at - time of each event's first landed copy: upstream delay + ingest + Kafka + sink.",
        ),
        HALF,
    )
    b.add(
        timeseries_panel(
            "End-to-end delay p95 by output table",
            ch_timeseries(
                f"SELECT $__timeInterval(minute) AS t, output_table, {DELAY_QUANTILES}[2] AS p95_ms\n"
                f"FROM {delays(DELAY_TABLES, TENANT)}\n"
                "GROUP BY t, output_table ORDER BY t"
            ),
            unit=MS,
            steps=LATENCY_MS,
            show_thresholds=True,
            min_interval=ROLLUP_INTERVAL,
            description="Event time → landed in each processed table (through the stream processors).",
        ),
        HALF,
    )
    b.add(
        timeseries_panel(
            "Consumer lag by topic",
            prom("sum by (topic) (gateledger_sink_consumer_lag_messages)", "sink {{topic}}"),
            prom("sum by (topic) (gateledger_processor_consumer_lag_messages)", "processors {{topic}}"),
            unit=COUNT,
            steps=LAG_STEPS,
            show_thresholds=True,
            description="Messages behind the true high watermark, per consumer and topic.",
        ),
        HALF,
    )
    b.add(
        bars_per_interval(
            "Dead letters by stage and reason",
            ch_timeseries(
                "SELECT $__timeInterval(time) AS t, stage, reason, sum(count) AS dead_letters\n"
                f"FROM {latest(Table.DEAD_LETTERS, 'time, stage, reason, count', TIME, TENANT)}\n"
                "GROUP BY t, stage, reason ORDER BY t"
            ),
            unit=COUNT,
            description=f"Everything rejected, by stage and machine-readable reason (replay from gateledger.{Table.DEAD_LETTERS}).",
            rollup=False,
        ),
        HALF,
    )
    b.add(
        timeseries_panel(
            "Ingest rejections and sink retries",
            prom(
                "sum by (source, reason) (rate(gateledger_ingest_rejected_records_total[$__rate_interval]))",
                "rejected {{source}} {{reason}}",
            ),
            prom(
                "sum by (table) (rate(gateledger_sink_insert_retries_total[$__rate_interval]))",
                "retry {{table}}",
            ),
            unit=OPS,
            description="Records refused at ingest and ClickHouse inserts retried, per second.",
        ),
        HALF,
    )


def _errors(b: Board) -> None:
    """The row "Errors"."""
    b.row("Errors")
    b.add(
        timeseries_panel(
            "MCP error rate by server",
            ch_timeseries(
                f"SELECT $__timeInterval(minute) AS t, mcp_server_id AS server, {MCP_FAILED_CALLS} / sum(calls) AS error_rate\n"
                f"FROM {MCP_CALLS}\n"
                "GROUP BY t, server HAVING sum(calls) > 0 ORDER BY t"
            ),
            min_interval=ROLLUP_INTERVAL,
            unit=PERCENT,
            steps=ERROR_RATE,
            show_thresholds=True,
            description="Failed or timed-out MCP calls / all calls, per server.",
        ),
        HALF,
    )
    b.add(
        timeseries_panel(
            "LLM error rate by provider",
            ch_timeseries(
                "SELECT $__timeInterval(minute) AS t, provider, sumIf(calls, status = 'error') / sum(calls) AS error_rate\n"
                f"FROM {LLM_CALLS}\n"
                "GROUP BY t, provider HAVING sum(calls) > 0 ORDER BY t"
            ),
            min_interval=ROLLUP_INTERVAL,
            unit=PERCENT,
            steps=ERROR_RATE,
            show_thresholds=True,
            description="LLM calls that ended in an error / all calls, per provider.",
        ),
        HALF,
    )
    b.add(
        table_panel(
            "Top failing tools",
            ch_table(
                "SELECT server, tool, all_calls AS calls, failures, error_rate, denied, last_error, last_failure FROM (\n"
                "  SELECT mcp_server_id AS server, tool_name AS tool, sum(calls) AS all_calls,\n"
                f"    {MCP_FAILED_CALLS} AS failures, failures / all_calls AS error_rate, sumIf(calls, status = 'denied') AS denied,\n"
                f"    maxIf(last_time, {MCP_FAILED}) AS last_failure\n"
                f"  FROM {MCP_CALLS_IN_RANGE}\n"
                "  GROUP BY server, tool HAVING failures > 0) AS c\n"
                "LEFT JOIN (\n"
                "  SELECT mcp_server_id AS server, tool_name AS tool, argMax(error, time) AS last_error\n"
                f"  FROM {LAST_FAILED_MCP_CALLS}\n"
                f"  WHERE {MCP_FAILED} GROUP BY server, tool) AS f USING (server, tool)\n"
                "ORDER BY failures DESC, error_rate DESC LIMIT 20"
            ),
            description="Tools with the most failed or timed-out calls in the time range.",
            column_units={"error_rate": PERCENT},
            column_steps={"error_rate": ERROR_RATE},
            sort_by="failures",
        ),
        FULL,
    )


def _mcp_servers_and_tools(b: Board) -> None:
    """The row "MCP servers and tools"."""
    b.row("MCP servers and tools")
    b.add(
        timeseries_panel(
            "MCP call latency p50 / p95 / p99 by server",
            ch_timeseries(
                "SELECT $__timeInterval(minute) AS t, mcp_server_id AS server,\n"
                f"  {LATENCY_QUANTILES}[1] AS p50, {LATENCY_QUANTILES}[2] AS p95, {LATENCY_QUANTILES}[3] AS p99\n"
                f"FROM {MCP_CALLS}\n"
                "GROUP BY t, server HAVING sum(timed_calls) > 0 ORDER BY t"
            ),
            min_interval=ROLLUP_INTERVAL,
            unit=MS,
            steps=LATENCY_MS,
            description="Duration of MCP calls (request to response) per server.",
        ),
        HALF,
    )
    b.add(
        table_panel(
            "MCP call latency by server and tool",
            ch_table(
                "SELECT mcp_server_id AS server, tool_name AS tool, sum(timed_calls) AS calls,\n"
                f"  {LATENCY_QUANTILES}[1] AS p50_ms, {LATENCY_QUANTILES}[2] AS p95_ms, {LATENCY_QUANTILES}[3] AS p99_ms\n"
                f"FROM {MCP_CALLS_IN_RANGE}\n"
                "GROUP BY server, tool HAVING calls > 0 ORDER BY p95_ms DESC LIMIT 50"
            ),
            description="Latency percentiles per tool; slowest first.",
            column_units={"p50_ms": MS, "p95_ms": MS, "p99_ms": MS},
            column_steps={"p95_ms": LATENCY_MS},
            sort_by="p95_ms",
        ),
        HALF,
    )


def _llm_calls(b: Board) -> None:
    """The row "LLM calls"."""
    b.row("LLM calls")
    b.add(
        timeseries_panel(
            "LLM latency p95 by provider and model",
            ch_timeseries(
                f"SELECT $__timeInterval(minute) AS t, provider, model, {LATENCY_QUANTILES}[2] AS p95_ms\n"
                f"FROM {LLM_CALLS}\n"
                "GROUP BY t, provider, model HAVING sum(timed_calls) > 0 ORDER BY t"
            ),
            min_interval=ROLLUP_INTERVAL,
            unit=MS,
            steps=LATENCY_MS,
            description="LLM call latency as reported by the gateway, per provider and model.",
        ),
        HALF,
    )
    b.add(
        table_panel(
            "LLM latency by provider and model",
            ch_table(
                "SELECT provider, model, sum(timed_calls) AS calls,\n"
                f"  {LATENCY_QUANTILES}[1] AS p50_ms, {LATENCY_QUANTILES}[2] AS p95_ms, {LATENCY_QUANTILES}[3] AS p99_ms,\n"
                "  sum(timed_output_tokens) / greatest(sum(latency_sum_ms) / 1000, 0.001) AS output_tokens_per_s\n"
                f"FROM {LLM_CALLS_IN_RANGE}\n"
                "GROUP BY provider, model HAVING calls > 0 ORDER BY p95_ms DESC"
            ),
            description="Latency percentiles and output throughput per model.",
            column_units={"p50_ms": MS, "p95_ms": MS, "p99_ms": MS, "output_tokens_per_s": "short"},
            column_steps={"p95_ms": LATENCY_MS},
            sort_by="p95_ms",
        ),
        HALF,
    )
