"""Obot MCP gateway wire formats: flat audit records, the shim's batch variant, AuditLogEvent, LLM audit logs.

Field names are exactly Obot's (camelCase). See shared/reference/wire-formats.md, sections 1-3.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from gateledger.contracts.wire.base import IdStr, UtcTime, WireModel


class ObotWebhookStatus(WireModel):
    """One webhook filter run recorded on an MCP audit record."""

    type: str | None = None  # request / response
    method: str | None = None
    url: str | None = None
    name: str | None = None
    tool: str | None = None
    status: str | None = None  # ok / rejected / mutated
    message: str | None = None


class ObotClientInfo(WireModel):
    """The v0.23 nested ``client`` object."""

    name: str | None = None
    version: str | None = None


class ObotMcpAuditRecord(WireModel):
    """Flat MCP audit record: what the shim sends and what Obot's list API returned up to v0.23."""

    id: int | None = None
    createdAt: UtcTime | None = None
    userID: str | None = None
    apiKey: str | None = None
    mcpID: str | None = None
    mcpServerDisplayName: str | None = None
    mcpServerCatalogEntryName: str | None = None
    powerUserWorkspaceID: str | None = None
    clientName: str | None = None
    clientVersion: str | None = None
    client: ObotClientInfo | None = None
    clientIP: str | None = None
    callType: str = ""
    callIdentifier: str | None = None
    requestMutated: bool | None = None
    responseMutated: bool | None = None
    responseReceived: bool | None = None
    encrypted: bool | None = None
    requestBody: Any = None
    mutatedRequestBody: Any = None
    responseBody: Any = None
    originalResponseBody: Any = None
    responseStatus: int | None = None
    error: str | None = None
    processingTimeMs: int | None = None
    sessionID: str | None = None
    requestID: IdStr | None = None
    userAgent: str | None = None
    requestHeaders: Any = None
    responseHeaders: Any = None
    webhookStatuses: list[ObotWebhookStatus] | None = None
    # Newer Obot storage.
    sourceType: str | None = None
    # ``*uint`` upstream (obot-platform/obot pkg/gateway/types/mcpauditlog.go): a JSON number;
    # strings are still accepted from older tooling.
    apiKeyID: IdStr | None = None
    apiKeyName: str | None = None
    mcpFields: dict[str, Any] | None = None

    def client_name(self) -> str | None:
        """The MCP client name from either the flat or the v0.23 nested shape."""
        return self.clientName or (self.client.name if self.client else None)

    def client_version(self) -> str | None:
        """The MCP client version from either shape."""
        return self.clientVersion or (self.client.version if self.client else None)

    def mcp_field(self, name: str) -> Any:
        """A field that newer Obot storage nests under ``mcpFields``, read from either place."""
        value = getattr(self, name, None)
        if value in (None, "") and self.mcpFields:
            value = self.mcpFields.get(name)
        return value


class ObotShimAuditRecord(ObotMcpAuditRecord):
    """The shim's batch variant: user in ``subject``, server identity in a ``metadata`` map."""

    subject: str | None = None
    metadata: dict[str, Any] | None = None

    def flattened(self) -> ObotMcpAuditRecord:
        """The same record in the flat shape, as Obot's ``convertMCPAuditLog`` reads it.

        obot-platform/obot pkg/api/handlers/mcpgateway/auditlog.go: the user is ``userID``, then
        ``subject``, then ``metadata.userID``; metadata ``api_key_id`` (a positive integer) and
        ``api_key_name`` (pkg/principal/principal.go) become ``apiKeyID`` / ``apiKeyName``; server
        identity fields missing at the top level come from metadata.
        """
        return ObotMcpAuditRecord.model_validate(_flat_shim(self.model_dump(exclude_unset=True)))

    @classmethod
    def flat_from_wire(cls, record: dict[str, Any]) -> ObotMcpAuditRecord:
        """``model_validate(record).flattened()`` validating once: the shim's fields are moved on the
        wire dict and only the flat record is validated (ValidationError as either would raise).

        A ``subject`` or ``metadata`` of another type than the shim's takes the two-step path, so
        the error names the shim's field.
        """
        subject, meta = record.get("subject"), record.get("metadata")
        if not (subject is None or type(subject) is str) or not (meta is None or type(meta) is dict):
            return cls.model_validate(record).flattened()
        return ObotMcpAuditRecord.model_validate(_flat_shim(dict(record)))


def _flat_shim(data: dict[str, Any]) -> dict[str, Any]:
    """A shim record's fields (``data``, changed in place) in the flat shape (``flattened``'s rules)."""
    meta = data.pop("metadata", None) or {}
    subject = data.pop("subject", None)
    if data.get("userID") in (None, ""):
        data["userID"] = subject or meta.get("userID") or data.get("userID")
    key_id = str(meta.get("api_key_id") or "")
    if key_id.isdigit() and int(key_id) > 0:
        data["apiKeyID"], data["apiKeyName"] = key_id, meta.get("api_key_name") or None
    for key in ("mcpID", "mcpServerDisplayName", "mcpServerCatalogEntryName", "powerUserWorkspaceID"):
        if data.get(key) in (None, "") and meta.get(key) not in (None, ""):
            data[key] = meta[key]
    return data


# --- AuditLogEvent (v0.24+) -------------------------------------------------------------------


class AuditTimestamp(WireModel):
    occurredAt: UtcTime | None = None
    recordedAt: UtcTime | None = None
    source: str | None = None  # server / client_reported


class AuditActor(WireModel):
    actorType: str | None = None  # user / device / credential / unknown
    id: str | None = None
    credentialID: str | None = None


class AuditAction(WireModel):
    operation: str | None = None  # = callType
    name: str | None = None  # = callIdentifier
    kind: str | None = None


class AuditTargetRef(WireModel):
    targetType: str | None = None
    id: str | None = None
    name: str | None = None


class AuditTarget(AuditTargetRef):
    parent: AuditTargetRef | None = None


class AuditOutcome(WireModel):
    status: str | None = None  # success / failure / denied / timeout / unknown
    httpStatus: int | None = None
    reason: str | None = None
    error: str | None = None
    durationMs: int | None = None


class AuditTrace(WireModel):
    sessionID: str | None = None
    requestID: IdStr | None = None
    idempotencyKey: str | None = None
    toolUseID: str | None = None
    turnID: str | None = None


class AuditNetwork(WireModel):
    clientIP: str | None = None


class AuditClient(WireModel):
    name: str | None = None
    version: str | None = None
    userAgent: str | None = None


class AuditAgent(WireModel):
    provider: str | None = None
    version: str | None = None
    cliName: str | None = None
    cliVersion: str | None = None
    model: str | None = None
    modelID: str | None = None
    permissionMode: str | None = None


class AuditScope(WireModel):
    powerUserWorkspaceID: str | None = None
    mcpServerCatalogEntryName: str | None = None


class AuditPayload(WireModel):
    headers: Any = None
    body: Any = None
    mutatedBody: Any = None
    originalBody: Any = None
    mutated: bool | None = None


class AuditDetails(WireModel):
    trace: AuditTrace | None = None
    network: AuditNetwork | None = None
    client: AuditClient | None = None
    agent: AuditAgent | None = None
    device: dict[str, Any] | None = None
    scope: AuditScope | None = None
    request: AuditPayload | None = None
    response: AuditPayload | None = None
    webhookStatuses: list[ObotWebhookStatus] | None = None
    startedAt: UtcTime | None = None
    payloadRedacted: bool | None = None


class ObotAuditLogEvent(WireModel):
    """Obot's audit read model from v0.24 on (list, detail and JSONL export)."""

    id: IdStr
    eventType: str | None = None  # mcp_call / local_agent_tool_call
    client: Any = None
    timestamp: AuditTimestamp | None = None
    actor: AuditActor | None = None
    action: AuditAction | None = None
    target: AuditTarget | None = None
    outcome: AuditOutcome | None = None
    details: AuditDetails | None = None


class ObotAuditListPage(WireModel):
    """One page of ``GET /api/mcp-audit-logs`` or ``/api/llm-audit-logs``."""

    items: list[dict[str, Any]] = Field(default_factory=list)
    total: int | None = None
    limit: int | None = None
    offset: int | None = None


# --- LLM gateway audit log --------------------------------------------------------------------


class ObotLlmAuditLog(WireModel):
    """One LLM call through Obot's LLM gateway."""

    id: IdStr
    createdAt: UtcTime | None = None
    duration: int | None = None  # ms
    userID: str | None = None
    # ``*uint`` (obot-platform/obot apiclient/types/llmauditlog.go): a JSON number; strings accepted.
    apiKeyID: IdStr | None = None
    apiKeyName: str | None = None
    modelProvider: str | None = None
    modelID: str | None = None
    targetModel: str | None = None
    reasoningEffort: str | None = None
    requestPath: str | None = None
    requestMethod: str | None = None
    requestHeaders: Any = None
    requestBody: Any = None
    policyModifiedRequestBody: Any = None
    messagePolicyTriggered: Any = None
    responseHeaders: Any = None
    responseBody: Any = None
    responseID: str | None = None
    responseStatus: int | None = None
    outcome: str | None = None  # success / canceled / error
    error: str | None = None
    inputTokens: int | None = None
    outputTokens: int | None = None
    requestID: IdStr | None = None
    userAgent: str | None = None
    clientSessionID: str | None = None
    clientIP: str | None = None
