"""Validation of the TLS settings: the key algorithm and the certificates' lifetimes."""

from __future__ import annotations

from typing import Any

from model.settings.parsing import Reader, check_range
from model.settings.types import KEY_ALGORITHMS


def check_tls(c: Reader) -> dict[str, Any]:
    key_algorithm = c.value("keyAlgorithm")
    if key_algorithm not in KEY_ALGORITHMS:
        c.problem("keyAlgorithm", key_algorithm, f"must be one of {', '.join(KEY_ALGORITHMS)} "
                  "(ecdsa-p256 is the default and what kubeadm uses for etcd).")
        key_algorithm = "ecdsa-p256"

    ca_validity = c.value("caValidityHours")
    cert_validity = c.value("certValidityHours")
    early_renewal = c.value("certEarlyRenewalHours")
    check_range(c, "certValidityHours", cert_validity, 24, 10 * 8760,
                "member and client certificates live from 1 day to 10 years.")
    check_range(c, "caValidityHours", ca_validity, cert_validity, 30 * 8760,
                "a CA must outlive the certificates it signs (certValidityHours) and at most 30 years.")
    check_range(c, "certEarlyRenewalHours", early_renewal, 0, max(cert_validity - 1, 0),
                "renewal must start before the certificate expires.")
    expiry_warning_days = c.value("certExpiryWarningDays")
    check_range(c, "certExpiryWarningDays", expiry_warning_days, 0, 3650,
                "days before a certificate's expiry that preview starts warning (0 turns it off).")
    return {"key_algorithm": key_algorithm, "ca_validity_hours": ca_validity,
            "cert_validity_hours": cert_validity, "cert_early_renewal_hours": early_renewal,
            "cert_expiry_warning_days": expiry_warning_days}
