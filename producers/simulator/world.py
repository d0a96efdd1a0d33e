"""The simulated world: tenants, users, agents, MCP servers with their tools, and models; and the
knobs (``Mix``) that say what the traffic is made of.

The one place tests and benchmarks take tenants, users, servers, tools and models from: the traffic
generator, the processors' tests and benchmarks (through it) and the dashboards' rows (from the world
directly, for data sets too large to send through the pipeline) all read this.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

MCP_SERVERS: dict[str, list[str]] = {
    "github": ["search_issues", "create_issue", "get_pull_request", "list_commits"],
    "slack": ["post_message", "search_messages", "list_channels"],
    "postgres": ["query", "list_tables", "describe_table"],
    "jira": ["create_ticket", "search_tickets", "transition_ticket"],
    "filesystem": ["read_file", "write_file", "list_directory"],
    "salesforce": ["query_accounts", "update_opportunity"],
}


@dataclass(frozen=True)
class Model:
    provider: str
    name: str
    input_tokens: int  # typical prompt size
    output_tokens: int  # typical completion size


MODELS: list[Model] = [
    Model("openai", "gpt-4o", 1800, 400),
    Model("openai", "gpt-4o-mini", 1200, 300),
    Model("openai", "gpt-4.1", 2500, 500),
    Model("anthropic", "claude-sonnet-4-5", 3000, 700),
    Model("anthropic", "claude-haiku-4-5", 1500, 300),
    Model("google", "gemini-2.5-pro", 2800, 600),
    Model("google", "gemini-2.5-flash", 1600, 350),
    Model("mistral", "mistral-large-latest", 2000, 450),
    Model("bedrock", "anthropic.claude-3-5-sonnet-20241022-v2:0", 2600, 550),
]

AGENTS = ["support-bot", "code-assistant", "sales-copilot", "data-analyst", "ops-agent"]
CLIENTS = [("Cursor", "1.7.2"), ("VS Code", "1.105.0"), ("Claude Desktop", "0.14.1"), ("obot-chat", "0.24.0")]
POLICIES = ["pii_detection", "sql_injection", "prompt_injection", "cost_guard", "data_exfiltration"]
FRAMEWORKS = ["langgraph", "crewai", "openai-agents"]
TENANT_NAMES = ["acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka"]


@dataclass(frozen=True)
class Mix:
    """What the traffic is made of; the defaults are the simulator's usual mix (and its usual bytes)."""

    users: tuple[int, int] = (5, 15)  # users per tenant, fewest and most
    # Share of LLM calls a custom gateway reports (CloudEvents) instead of AxonFlow; None: 30 % for
    # the third tenant, none for the others.
    custom_gateway: float | None = None
    obot_llm: float = 0.3  # per interaction: also a chat through Obot's LLM gateway
    llm_failures: float = 0.03  # LLM calls that fail (no completion tokens)
    # Pre-check verdicts, relative weights: approved, blocked, budget_blocked (HTTP 402), require_approval.
    verdicts: tuple[float, float, float, float] = (88, 7, 3, 2)
    tool_calls: tuple[int, ...] = (0, 1, 1, 2, 2, 3)  # tool calls per interaction, one drawn uniformly
    tool_rejections: float = 0.05  # tool calls a webhook filter rejects
    tool_errors: float = 0.04  # tool calls (not rejected) that fail upstream
    zero_token_tenant: bool = True  # the second tenant runs the Obot version that records zero tokens


@dataclass(frozen=True)
class Tenant:
    name: str
    users: list[str]
    agents: list[str]
    servers: list[str]
    models: list[Model]
    # This tenant's Obot records zero tokens on every LLM call (a known upstream defect).
    zero_token_defect: bool = False
    # Share of this tenant's LLM calls that go through a custom gateway (CloudEvents) instead of AxonFlow.
    custom_gateway_share: float = 0.0


def tenant_name(i: int) -> str:
    """The name of the ``i``-th tenant."""
    return TENANT_NAMES[i] if i < len(TENANT_NAMES) else f"tenant{i}"


def build_world(rng: random.Random, tenants: int, mix: Mix | None = None) -> list[Tenant]:
    """Tenants with their own users, agents, MCP servers and models (deterministic for the rng)."""
    mix = mix or Mix()
    world = []
    for i in range(tenants):
        name = tenant_name(i)
        users = [f"{name}-user-{j:02d}" for j in range(rng.randint(*mix.users))]
        world.append(
            Tenant(
                name=name,
                users=users,
                agents=rng.sample(AGENTS, rng.randint(2, len(AGENTS))),
                servers=rng.sample(list(MCP_SERVERS), rng.randint(3, len(MCP_SERVERS))),
                models=rng.sample(MODELS, rng.randint(3, 6)),
                zero_token_defect=mix.zero_token_tenant and i == 1,  # one install runs the defective Obot
                custom_gateway_share=mix.custom_gateway if mix.custom_gateway is not None else 0.3 if i == 2 else 0.0,
            )
        )
    return world
