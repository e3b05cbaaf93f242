"""Which certificates expire soon: the decision behind the preview warning.

Pure: no Pulumi imports. `expiring` takes every certificate's expiry time as pulumi-tls reports it
(`validityEndTime`, RFC 3339) and the current time, and returns those that expire within the
warning window, soonest first. A certificate whose expiry is not known (None: at preview, a
certificate that is not created yet) never warns: it will be issued with a full validity.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass

SECONDS_PER_DAY = 24 * 60 * 60


@dataclass(frozen=True)
class ExpiringCertificate:
    name: str
    expires_at: datetime.datetime
    remaining: datetime.timedelta

    @property
    def expired(self) -> bool:
        return self.remaining <= datetime.timedelta(0)

    @property
    def remaining_days(self) -> float:
        return self.remaining.total_seconds() / SECONDS_PER_DAY


def parse_time(value: str) -> datetime.datetime:
    """An RFC 3339 time as pulumi-tls writes it (`2026-01-02T03:04:05Z`), timezone-aware.

    Python 3.10's `fromisoformat` does not read the `Z` suffix, so it is spelled out first.
    """
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an RFC 3339 time: {value!r}") from None
    if parsed.tzinfo is None:
        raise ValueError(f"RFC 3339 time without a UTC offset: {value!r}")
    return parsed


def expiring(expiry_times: Mapping[str, str | None], now: datetime.datetime,
             warning_days: int) -> list[ExpiringCertificate]:
    """Certificates that expire within `warning_days` of `now` (or already have), soonest first.

    `warning_days` 0 turns the warning off. Unknown expiry times (None) never warn.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (datetime.now(datetime.timezone.utc))")
    if warning_days < 0:
        raise ValueError(f"warning_days must be 0 (off) or positive, not {warning_days}")
    if warning_days == 0:
        return []
    window = datetime.timedelta(days=warning_days)
    found = []
    for name, value in expiry_times.items():
        if value is None:
            continue
        expires_at = parse_time(value)
        remaining = expires_at - now
        if remaining <= window:
            found.append(ExpiringCertificate(name=name, expires_at=expires_at, remaining=remaining))
    return sorted(found, key=lambda cert: (cert.expires_at, cert.name))


def warning_message(cluster: str, cert: ExpiringCertificate, warning_days: int) -> str:
    """The line `pulumi preview` shows for one certificate: what, when, and what to do."""
    when = cert.expires_at.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    status = (f"EXPIRED at {when}" if cert.expired
              else f"expires at {when}, in {cert.remaining_days:.1f} days")
    return (
        f"etcd cluster {cluster}: certificate {cert.name} {status} (warning window: "
        f"certExpiryWarningDays = {warning_days}). Members keep the certificate files their "
        "user-data wrote: re-issue it (pulumi-tls renews within certEarlyRenewalHours of expiry, "
        "or `pulumi up --replace` the certificate) and roll the new files out one member at a "
        "time, checking `etcdctl endpoint health --cluster` between members."
    )
