"""Certificate expiry warnings: the pure decision (model/expiry.py) and the program's warnings.

The program tests run the real program under mocks whose pulumi-tls makes real certificates with
real validity times, and read what the program sent to the engine's log (the mock engine writes
it to the `pulumi-program` logger).
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

import pytest
from program import LOCALLY_SIGNED_CERT, SELF_SIGNED_CERT, run_program
from pulumi.runtime.rpc import UNKNOWN
from tls_mock import TlsMock

from model import expiry
from model.settings import SettingsError, load_settings

NOW = datetime.datetime(2026, 6, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
REQUIRED = {"dnsZone": "example.com", "cloudflareZoneId": "0" * 32}
LEAF_CERTS = {
    *(f"etcd-{n}-{kind}" for n in (1, 2, 3) for kind in ("server", "peer")),
    "kube-apiserver-etcd-client", "etcd-operator", "kube-etcd-healthcheck-client",
}
SHORT_LIVED = {"certValidityHours": 24, "certEarlyRenewalHours": 0}


def at(days: float) -> str:
    """An RFC 3339 time `days` after NOW, as pulumi-tls writes it."""
    return (NOW + datetime.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def names(found: list[expiry.ExpiringCertificate]) -> list[str]:
    return [cert.name for cert in found]


# --- the pure decision ----------------------------------------------------------------------

def test_a_certificate_expiring_within_the_window_warns() -> None:
    found = expiry.expiring({"etcd-1-server": at(10)}, NOW, 30)
    assert names(found) == ["etcd-1-server"]
    assert found[0].remaining == datetime.timedelta(days=10)
    assert not found[0].expired


def test_a_certificate_expiring_after_the_window_does_not_warn() -> None:
    assert expiry.expiring({"etcd-1-server": at(30.01)}, NOW, 30) == []


def test_a_certificate_expiring_exactly_at_the_window_edge_warns() -> None:
    assert names(expiry.expiring({"client-ca": at(30)}, NOW, 30)) == ["client-ca"]


def test_an_expired_certificate_warns_as_expired() -> None:
    (cert,) = expiry.expiring({"etcd-1-peer": at(-2)}, NOW, 30)
    assert cert.expired
    assert "EXPIRED at 2026-05-30T12:00:00Z" in expiry.warning_message("main", cert, 30)


def test_a_certificate_whose_expiry_is_unknown_never_warns() -> None:
    # At preview, a certificate that is not created yet has no expiry time.
    assert expiry.expiring({"etcd-4-server": None, "etcd-4-peer": None}, NOW, 30) == []


def test_zero_warning_days_turns_the_warning_off() -> None:
    assert expiry.expiring({"etcd-1-server": at(-1), "etcd-2-server": at(1)}, NOW, 0) == []


def test_warnings_come_soonest_first() -> None:
    found = expiry.expiring({"b": at(20), "a": at(5), "c": at(400), "d": at(-1), "e": None},
                            NOW, 30)
    assert names(found) == ["d", "a", "b"]


def test_pulumi_tls_times_with_a_z_suffix_are_read_as_utc() -> None:
    assert expiry.parse_time("2026-06-11T12:00:00Z") == NOW + datetime.timedelta(days=10)
    assert expiry.parse_time("2026-06-11T14:00:00+02:00") == NOW + datetime.timedelta(days=10)


@pytest.mark.parametrize("value", ["2026-06-11T12:00:00", "next tuesday", ""])
def test_a_time_without_an_offset_or_not_a_time_is_rejected(value: str) -> None:
    with pytest.raises(ValueError, match="RFC 3339"):
        expiry.parse_time(value)


def test_a_naive_now_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        expiry.expiring({"a": at(1)}, NOW.replace(tzinfo=None), 30)


def test_a_negative_warning_window_is_rejected() -> None:
    with pytest.raises(ValueError, match="warning_days"):
        expiry.expiring({"a": at(1)}, NOW, -1)


def test_the_warning_names_the_cluster_certificate_time_and_what_to_do() -> None:
    (cert,) = expiry.expiring({"etcd-2-server": at(3.5)}, NOW, 30)
    message = expiry.warning_message("prod", cert, 30)
    assert message.startswith("etcd cluster prod: certificate etcd-2-server expires at "
                              "2026-06-05T00:00:00Z, in 3.5 days")
    assert "certExpiryWarningDays = 30" in message
    assert "one member at a time" in message


# --- the setting ----------------------------------------------------------------------------

def test_cert_expiry_warning_days_defaults_to_thirty() -> None:
    assert load_settings(REQUIRED, "prod").cert_expiry_warning_days == 30
    assert load_settings({**REQUIRED, "certExpiryWarningDays": "0"}, "prod").cert_expiry_warning_days == 0


@pytest.mark.parametrize("days", [-1, 3651])
def test_cert_expiry_warning_days_must_be_between_zero_and_ten_years(days: int) -> None:
    with pytest.raises(SettingsError, match=f"certExpiryWarningDays = {days}: must be between 0 and 3650"):
        load_settings({**REQUIRED, "certExpiryWarningDays": days}, "prod")


# --- the program's warnings -----------------------------------------------------------------

class UnknownExpiryTls(TlsMock):
    """pulumi-tls whose certificates for some names have no expiry yet (as at preview before
    they are created): the engine's unknown value instead of `validityEndTime`."""

    def __init__(self, unknown: set[str]) -> None:
        super().__init__()
        self.unknown = unknown

    def new_resource(self, resource_type: str, name: str,
                     inputs: Any) -> tuple[str, dict[str, Any]]:
        resource_id, outputs = super().new_resource(resource_type, name, inputs)
        if resource_type in (SELF_SIGNED_CERT, LOCALLY_SIGNED_CERT) and \
                name.removeprefix("main-pki-").removesuffix("-cert") in self.unknown:
            outputs["validityEndTime"] = UNKNOWN
        return resource_id, outputs


def program_warnings(caplog: pytest.LogCaptureFixture, config: dict[str, Any],
                     tls: TlsMock | None = None) -> dict[str, str]:
    """Run the program afresh (not the session's cached runs); its warnings by certificate."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pulumi-program"):
        run_program(config, tls=tls)
    warnings = [record.getMessage() for record in caplog.records
                if record.name == "pulumi-program" and record.levelno == logging.WARNING
                # The dev stack's other warning (rolloutVia none) is tests/test_program_rollout.py's.
                and "rolloutVia = none" not in record.getMessage()]
    by_cert: dict[str, str] = {}
    for message in warnings:
        assert message.startswith("etcd cluster main: certificate "), message
        by_cert[message.split()[4]] = message
    assert len(by_cert) == len(warnings), warnings
    return by_cert


def test_preview_warns_for_each_certificate_expiring_within_the_window(
        caplog: pytest.LogCaptureFixture) -> None:
    # Member and client certificates live one day; the CAs keep their ten years.
    warnings = program_warnings(caplog, SHORT_LIVED)
    assert set(warnings) == LEAF_CERTS
    for message in warnings.values():
        assert ", in 1.0 days (warning window: certExpiryWarningDays = 30)" in message


def test_the_default_validities_give_no_expiry_warning(caplog: pytest.LogCaptureFixture) -> None:
    assert program_warnings(caplog, {}) == {}


def test_a_zero_warning_window_gives_no_expiry_warning(caplog: pytest.LogCaptureFixture) -> None:
    assert program_warnings(caplog, {**SHORT_LIVED, "certExpiryWarningDays": 0}) == {}


def test_certificates_not_created_yet_do_not_warn_and_do_not_hold_back_the_others(
        caplog: pytest.LogCaptureFixture) -> None:
    not_created = {"etcd-2-server", "etcd-2-peer"}
    warnings = program_warnings(caplog, SHORT_LIVED, tls=UnknownExpiryTls(not_created))
    assert set(warnings) == LEAF_CERTS - not_created
