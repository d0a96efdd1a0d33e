"""What the normalize stage's state keys and stored statuses mean, shared by its state machines.

State is persisted (faust table, JSON), so a status is stored as a small int; these names are the
only place its values are spelled.
"""

from __future__ import annotations

from typing import Any, Final

# Where a finding of the AxonFlow join stands (``una``: unaudited, ``orph``: orphan audit,
# ``u``: untapped trail row).
NOT_RAISED: Final = 0  # not (yet) due; raised when its timer fires
RAISED: Final = 1  # out, and may still be withdrawn
WITHDRAWN: Final = 2  # raised, then shown wrong by a late record: withdrawn
NOT_NEEDED: Final = 3  # the trail row's context was already tapped when it arrived: never raised


def tenant_of(key: str, st: dict[str, Any]) -> str:
    """The tenant of an exchange or join state (both keys start with it after the kind)."""
    return st.get("tn") or key.split("|", 2)[1]
