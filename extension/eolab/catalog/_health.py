"""Member health: telling a sick member from a bad request (failure kinds, ejection policy and its cap,
``Retry-After``). Pure; :mod:`._members` applies it to live members."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


class MemberError(Exception):
    """A member did not deliver.

    ``kind``: timeout | busy | unreachable | http | rejected | not_found | malformed | rate_limited.
    ``reason`` starts with the category users read in ``eolab:member_errors``.
    """

    def __init__(self, member: str, kind: str, reason: str, status: int | None = None,
                 retry_after: float | None = None):
        super().__init__(f"{member}: {reason}")
        self.member = member
        self.kind = kind
        self.reason = reason
        self.status = status
        self.retry_after = retry_after
        self.busy: bool | None = None  # the member had other requests of the broker in flight

    @property
    def unhealthy(self) -> bool:
        """May count towards ejection (whether it does is :class:`HealthPolicy`'s call)."""
        return self.kind in ("timeout", "unreachable", "http", "malformed")

    @property
    def transient(self) -> bool:
        """No answer because the member was busy (load, not sickness): it may answer a moment later."""
        return self.kind == "busy" or (self.kind == "timeout" and bool(self.busy))


def error_reason(kind: str, detail: str) -> str:
    category = {"timeout": "timeout", "busy": "timeout", "unreachable": "down", "http": "refused this query",
                "rejected": "refused this query", "not_found": "refused this query",
                "malformed": "malformed answer", "rate_limited": "rate limited"}[kind]
    return f"{category}: {detail}"


@dataclass
class Health:
    ok: bool = True
    reason: str = ""
    until: float = 0.0
    probing: bool = False
    failures: int = 0                                    # consecutive failures that count
    confirming: bool = False                             # a probe decides whether they eject
    requests: set = field(default_factory=set)           # distinct request keys among them


@dataclass(frozen=True)
class HealthPolicy:
    """When a failure ejects a member (pure; Envoy's outlier detection is the model).

    - connection refused/reset (``unreachable``): at once;
    - 5xx, malformed answers and timeouts: ``consecutive`` failures (no success between) coming from
      at least ``distinct`` different requests, and then a failed probe of the member's landing page
      (requests that break a healthy member's search do not break its landing page); a timeout
      counts only when the member was not busy with other requests of the broker (a slow answer
      under load is not a sick member);
    - 4xx, 404, rate limiting, waiting for a free slot: never.
    """

    consecutive: int = 3
    distinct: int = 2

    def counts(self, error: MemberError, busy: bool) -> bool:
        if not error.unhealthy:
            return False
        return not (error.kind == "timeout" and busy)

    def ejects(self, error: MemberError, failures: int, distinct_requests: int) -> bool:
        if error.kind == "unreachable":
            return True
        return failures >= self.consecutive and distinct_requests >= self.distinct


def max_ejected(n_members: int, share: float = 0.5) -> int:
    """How many members may be ejected at once: never all of them (a lone member is never ejected)."""
    if n_members <= 1:
        return 0
    return max(1, min(n_members - 1, int(n_members * share)))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds to wait (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        from email.utils import parsedate_to_datetime

        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    import datetime as _dt

    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    current = now if now is not None else time.time()
    return max(0.0, when.timestamp() - current)

