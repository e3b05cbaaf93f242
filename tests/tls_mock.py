"""A pulumi-tls stand-in for Pulumi mocks that makes REAL keys and certificates.

What the Pulumi engine would get from the tls provider (terraform-provider-tls, which pulumi-tls
wraps), made here with `cryptography` from the inputs the program registers, so tests can check
chains, SANs and key usages for real instead of trusting strings.

Followed from the provider (internal/provider/common_key.go, common_cert.go and the resources):
- `PrivateKey`: `algorithm` RSA | ECDSA | ED25519; `ecdsaCurve` P224 | P256 | P384 | P521 with the
  provider's default P224 when unset; `rsaBits` default 2048. `privateKeyPem` is the
  "traditional" encoding Go's x509 package writes ("RSA PRIVATE KEY" = PKCS#1, "EC PRIVATE KEY"
  = SEC 1; ED25519 has only PKCS#8), `privateKeyPemPkcs8` is PKCS#8, the OpenSSH forms are empty
  for P224 (x/crypto/ssh has no P224).
- certificates: serial a random 128-bit number; NotBefore now, NotAfter now + validity hours;
  `allowedUses` names map onto KeyUsage bits and ExtendedKeyUsage OIDs exactly as the provider's
  two tables do; BasicConstraints always present (critical), cA from `isCaCertificate`;
  KeyUsage critical, the rest not; a CA, or `setSubjectKeyId`, gets a SubjectKeyIdentifier (SHA-1
  as the provider computes it); a locally signed certificate gets AuthorityKeyIdentifier = the
  CA's SubjectKeyIdentifier (what Go's x509.CreateCertificate does); SANs come from `dnsNames`,
  `ipAddresses`, `uris` (from the CSR for locally signed certificates); signature hash as Go picks
  it (SHA-256 for RSA, P224 and P256, SHA-384 for P384, SHA-512 for P521, none for ED25519).
- `validityStartTime` / `validityEndTime` are RFC 3339 (UTC, whole seconds, equal to the
  certificate's notBefore / notAfter).

Anything the provider would refuse (unknown curve or algorithm, unknown allowed use, a CA key that
does not belong to the CA certificate, a CSR whose signature does not verify, a missing required
input) raises `TlsMockError`, which fails the resource registration and therefore the test. Two
refusals are stricter than the provider, which only warns: signing with a certificate that is not
a CA, and a CA with an empty subject is refused as the provider does.

`TlsMock(reuse_keys=True)` is a cheaper variant for benchmarks only: one key per algorithm and
size, reused by every PrivateKey (certificates are still made and signed for real). Tests use the
default, which generates a fresh key for every resource and caches nothing.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import secrets
import threading
from collections.abc import Mapping
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PRIVATE_KEY = "tls:index/privateKey:PrivateKey"
SELF_SIGNED_CERT = "tls:index/selfSignedCert:SelfSignedCert"
CERT_REQUEST = "tls:index/certRequest:CertRequest"
LOCALLY_SIGNED_CERT = "tls:index/locallySignedCert:LocallySignedCert"
TLS_TYPES = (PRIVATE_KEY, SELF_SIGNED_CERT, CERT_REQUEST, LOCALLY_SIGNED_CERT)

CURVES: dict[str, ec.EllipticCurve] = {
    "P224": ec.SECP224R1(),
    "P256": ec.SECP256R1(),
    "P384": ec.SECP384R1(),
    "P521": ec.SECP521R1(),
}
# pulumi-tls (terraform-provider-tls) defaults: ECDSA without a curve is P224, RSA is 2048 bits.
DEFAULT_CURVE = "P224"
DEFAULT_RSA_BITS = 2048

# The provider's `keyUsages` table: allowed_uses name -> x509.KeyUsage field.
KEY_USAGES: dict[str, str] = {
    "digital_signature": "digital_signature",
    "content_commitment": "content_commitment",
    "key_encipherment": "key_encipherment",
    "data_encipherment": "data_encipherment",
    "key_agreement": "key_agreement",
    "cert_signing": "key_cert_sign",
    "crl_signing": "crl_sign",
    "encipher_only": "encipher_only",
    "decipher_only": "decipher_only",
}
# The provider's `extendedKeyUsages` table: allowed_uses name -> OID.
EXTENDED_KEY_USAGES: dict[str, x509.ObjectIdentifier] = {
    "any_extended": ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
    "server_auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "client_auth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "code_signing": ExtendedKeyUsageOID.CODE_SIGNING,
    "email_protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "ipsec_end_system": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.5"),
    "ipsec_tunnel": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.6"),
    "ipsec_user": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.7"),
    "timestamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "ocsp_signing": ExtendedKeyUsageOID.OCSP_SIGNING,
    "microsoft_server_gated_crypto": x509.ObjectIdentifier("1.3.6.1.4.1.311.10.3.3"),
    "netscape_server_gated_crypto": x509.ObjectIdentifier("2.16.840.1.113730.4.1"),
    "microsoft_commercial_code_signing": x509.ObjectIdentifier("1.3.6.1.4.1.311.2.1.22"),
    "microsoft_kernel_code_signing": x509.ObjectIdentifier("1.3.6.1.4.1.311.61.1.1"),
}

# Pulumi's wire marker for a secret value (what MockResourceArgs.inputs may still contain).
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"

PrivateKeyTypes = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKeyTypes = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


class TlsMockError(ValueError):
    """The tls provider would refuse these inputs (or they reveal a wiring bug)."""


def unwrap_secrets(value: Any) -> Any:
    """Deeply replace Pulumi's wire-format secret wrappers by their plain values."""
    if isinstance(value, Mapping):
        if value.get(_SIG_KEY) == _SECRET_SIG:
            return unwrap_secrets(value.get("value"))
        return {key: unwrap_secrets(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(item) for item in value]
    return value


def _required(inputs: Mapping[str, Any], key: str, resource: str) -> Any:
    value = inputs.get(key)
    if value is None or value == "":
        raise TlsMockError(f"{resource}: required input {key!r} is missing")
    return value


def _whole_number(inputs: Mapping[str, Any], key: str, resource: str, default: int | None = None,
                  minimum: int = 0) -> int:
    value = inputs.get(key)
    if value is None:
        if default is None:
            raise TlsMockError(f"{resource}: required input {key!r} is missing")
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise TlsMockError(f"{resource}: {key} must be a whole number, got {value!r}")
    if int(value) < minimum:
        raise TlsMockError(f"{resource}: {key} must be at least {minimum}, got {value!r}")
    return int(value)


def _strings(inputs: Mapping[str, Any], key: str, resource: str) -> list[str]:
    value = inputs.get(key) or []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TlsMockError(f"{resource}: {key} must be a list of strings, got {value!r}")
    return list(value)


# --- keys -----------------------------------------------------------------------------------

def _algorithm_of(key: PrivateKeyTypes | PublicKeyTypes) -> str:
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return "RSA"
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return "ECDSA"
    return "ED25519"


def _curve_name(curve: ec.EllipticCurve) -> str:
    for name, known in CURVES.items():
        if known.name == curve.name:
            return name
    raise TlsMockError(f"unsupported curve {curve.name}")


def generate_key(algorithm: str, ecdsa_curve: str | None = None,
                 rsa_bits: int | None = None) -> PrivateKeyTypes:
    """A new key as the provider's keyGenerators make it; refuses what the provider refuses."""
    if algorithm == "ECDSA":
        curve = ecdsa_curve or DEFAULT_CURVE
        if curve not in CURVES:
            raise TlsMockError(f"PrivateKey: invalid ECDSA curve {curve!r}; supported values are: "
                               f"{', '.join(CURVES)}")
        return ec.generate_private_key(CURVES[curve])
    if algorithm == "RSA":
        bits = rsa_bits or DEFAULT_RSA_BITS
        if bits < 1024 or bits > 16384:
            raise TlsMockError(f"PrivateKey: rsa_bits {bits} is not a usable RSA key size")
        return rsa.generate_private_key(public_exponent=65537, key_size=bits)
    if algorithm == "ED25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise TlsMockError(f"PrivateKey: invalid algorithm {algorithm!r}; supported values are: "
                       "RSA, ECDSA, ED25519")


def private_key_pem(key: PrivateKeyTypes) -> str:
    """The provider's `private_key_pem`: PKCS#1 for RSA, SEC 1 for ECDSA, PKCS#8 for ED25519."""
    form = (serialization.PrivateFormat.PKCS8 if isinstance(key, ed25519.Ed25519PrivateKey)
            else serialization.PrivateFormat.TraditionalOpenSSL)
    return key.private_bytes(serialization.Encoding.PEM, form,
                             serialization.NoEncryption()).decode()


def load_private_key(pem: str, resource: str) -> PrivateKeyTypes:
    """Parse a private key PEM the way the provider does (RSA, EC and PKCS#8 preambles)."""
    if not isinstance(pem, str) or "PRIVATE KEY-----" not in pem:
        raise TlsMockError(f"{resource}: not a private key PEM: {str(pem)[:40]!r}")
    block_type = pem.split("-----BEGIN ", 1)[1].split("-----", 1)[0]
    if block_type not in ("RSA PRIVATE KEY", "EC PRIVATE KEY", "PRIVATE KEY"):
        raise TlsMockError(f"{resource}: unable to determine parser for PEM preamble {block_type!r}")
    # No full RSA key validation (about 0.2 s per 4096-bit key, every time a certificate resource
    # reads a key): the keys come from this mock, and Go's parser does no such check either.
    key = serialization.load_pem_private_key(pem.encode(), password=None,
                                             unsafe_skip_rsa_key_validation=True)
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey,
                            ed25519.Ed25519PrivateKey)):
        raise TlsMockError(f"{resource}: unsupported private key type {type(key).__name__}")
    return key


def _public_pem(key: PublicKeyTypes) -> str:
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _openssh(key: PrivateKeyTypes) -> tuple[str, str, str, str]:
    """(private OpenSSH PEM, authorized_keys line, MD5 and SHA256 fingerprints); empty for P224."""
    if isinstance(key, ec.EllipticCurvePrivateKey) and _curve_name(key.curve) == "P224":
        return "", "", "", ""
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    blob = base64.b64decode(public.split()[1])
    md5 = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    md5_text = ":".join(md5[i:i + 2] for i in range(0, len(md5), 2))
    sha = "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return private, public + "\n", md5_text, sha


# --- certificates ---------------------------------------------------------------------------

def _signature_hash(key: PrivateKeyTypes) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512 | None:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        curve = _curve_name(key.curve)
        if curve == "P384":
            return hashes.SHA384()
        if curve == "P521":
            return hashes.SHA512()
    return hashes.SHA256()


def subject_name(subject: Mapping[str, Any] | None, resource: str) -> x509.Name:
    """pkix.Name.ToRDNSequence order: C, ST, L, street, postal code, O, OU, CN, serial; email."""
    subject = subject or {}
    known = {"commonName", "country", "emailAddress", "locality", "organization",
             "organizationalUnit", "postalCode", "province", "serialNumber", "streetAddresses"}
    unknown = set(subject) - known
    if unknown:
        raise TlsMockError(f"{resource}: unknown subject fields {sorted(unknown)}")
    attributes: list[x509.NameAttribute[str]] = []

    def add(oid: x509.ObjectIdentifier, value: Any) -> None:
        if value:
            attributes.append(x509.NameAttribute(oid, str(value)))

    add(NameOID.COUNTRY_NAME, subject.get("country"))
    add(NameOID.STATE_OR_PROVINCE_NAME, subject.get("province"))
    add(NameOID.LOCALITY_NAME, subject.get("locality"))
    for street in subject.get("streetAddresses") or []:
        add(NameOID.STREET_ADDRESS, street)
    add(NameOID.POSTAL_CODE, subject.get("postalCode"))
    add(NameOID.ORGANIZATION_NAME, subject.get("organization"))
    add(NameOID.ORGANIZATIONAL_UNIT_NAME, subject.get("organizationalUnit"))
    add(NameOID.COMMON_NAME, subject.get("commonName"))
    add(NameOID.SERIAL_NUMBER, subject.get("serialNumber"))
    add(NameOID.EMAIL_ADDRESS, subject.get("emailAddress"))
    return x509.Name(attributes)


def _general_names(dns_names: list[str], ip_addresses: list[str], uris: list[str],
                   resource: str) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    for address in ip_addresses:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(address)))
        except ValueError as error:
            raise TlsMockError(f"{resource}: invalid IP address {address!r}: {error}") from None
    names += [x509.UniformResourceIdentifier(uri) for uri in uris]
    return names


def subject_key_id(public_key: PublicKeyTypes) -> bytes:
    """generateSubjectKeyID: SHA-1 of PKCS#1 (RSA), of the uncompressed point (ECDSA), of the
    DER OCTET STRING of the raw key (ED25519)."""
    if isinstance(public_key, rsa.RSAPublicKey):
        data = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        data = public_key.public_bytes(serialization.Encoding.X962,
                                       serialization.PublicFormat.UncompressedPoint)
    else:
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        data = bytes([0x04, len(raw)]) + raw
    return hashlib.sha1(data, usedforsecurity=False).digest()


def _rfc3339(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _public_key_matches(private_key: PrivateKeyTypes, public_key: Any) -> bool:
    def spki(key: Any) -> bytes:
        data: bytes = key.public_bytes(serialization.Encoding.DER,
                                       serialization.PublicFormat.SubjectPublicKeyInfo)
        return data
    return spki(private_key.public_key()) == spki(public_key)


def _verify_signature(issuer_public_key: Any, signature: bytes, data: bytes,
                      hash_algorithm: hashes.HashAlgorithm | None) -> None:
    if isinstance(issuer_public_key, rsa.RSAPublicKey):
        assert hash_algorithm is not None
        issuer_public_key.verify(signature, data, padding.PKCS1v15(), hash_algorithm)
    elif isinstance(issuer_public_key, ec.EllipticCurvePublicKey):
        assert hash_algorithm is not None
        issuer_public_key.verify(signature, data, ec.ECDSA(hash_algorithm))
    elif isinstance(issuer_public_key, ed25519.Ed25519PublicKey):
        issuer_public_key.verify(signature, data)
    else:
        raise TlsMockError(f"unsupported public key type {type(issuer_public_key).__name__}")


def _create_certificate(resource: str, inputs: Mapping[str, Any], *, subject: x509.Name,
                        public_key: PublicKeyTypes, general_names: list[x509.GeneralName],
                        signer: PrivateKeyTypes,
                        issuer: x509.Certificate | None) -> dict[str, Any]:
    """common_cert.go createCertificate; `issuer` None means self-signed."""
    hours = _whole_number(inputs, "validityPeriodHours", resource)
    _whole_number(inputs, "earlyRenewalHours", resource, default=0)
    uses = _strings(inputs, "allowedUses", resource)
    unknown = [use for use in uses if use not in KEY_USAGES and use not in EXTENDED_KEY_USAGES]
    if unknown:
        raise TlsMockError(f"{resource}: unknown allowed_uses {unknown}; the provider accepts "
                           f"{', '.join(sorted([*KEY_USAGES, *EXTENDED_KEY_USAGES]))}")
    is_ca = bool(inputs.get("isCaCertificate"))
    if is_ca and len(subject) == 0:
        raise TlsMockError(f"{resource}: Invalid Certificate Subject: must contain at least one "
                           "Distinguished Name when creating Certificate Authority (CA)")

    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    not_after = now + datetime.timedelta(hours=hours)
    serial = 0
    while serial == 0:
        serial = secrets.randbits(128)
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(issuer.subject if issuer is not None else subject)
               .public_key(public_key)
               .serial_number(serial)
               .not_valid_before(now)
               .not_valid_after(not_after))

    bits = {field: False for field in KEY_USAGES.values()}
    for use in uses:
        if use in KEY_USAGES:
            bits[KEY_USAGES[use]] = True
    if any(bits.values()):
        builder = builder.add_extension(x509.KeyUsage(**bits), critical=True)
    extended = list(dict.fromkeys(EXTENDED_KEY_USAGES[use] for use in uses
                                  if use in EXTENDED_KEY_USAGES))
    if extended:
        builder = builder.add_extension(x509.ExtendedKeyUsage(extended), critical=False)

    max_path = inputs.get("maxPathLength")
    path_length = int(max_path) if is_ca and max_path is not None and int(max_path) > 0 else None
    builder = builder.add_extension(x509.BasicConstraints(ca=is_ca, path_length=path_length),
                                    critical=True)
    own_key_id: bytes | None = None
    if is_ca or inputs.get("setSubjectKeyId"):
        own_key_id = subject_key_id(public_key)
        builder = builder.add_extension(x509.SubjectKeyIdentifier(own_key_id), critical=False)

    authority_key_id: bytes | None = None
    if issuer is not None:
        try:
            ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
            authority_key_id = ski.value.digest
        except x509.ExtensionNotFound:
            authority_key_id = None
    elif inputs.get("setAuthorityKeyId"):
        if own_key_id is None:
            raise TlsMockError(f"{resource}: Invalid Certificate Authority: could not determine "
                               "Authority Key Identifier")
        authority_key_id = own_key_id
    if issuer is not None and issuer.subject == subject and not inputs.get("setAuthorityKeyId"):
        authority_key_id = None  # Go omits it when issuer and subject are the same name
    if authority_key_id is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier(authority_key_id, None, None), critical=False)

    if general_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(general_names),
                                        critical=len(subject) == 0)

    certificate = builder.sign(signer, _signature_hash(signer))
    return {
        "id": str(serial),
        "certPem": certificate.public_bytes(serialization.Encoding.PEM).decode(),
        "validityStartTime": _rfc3339(now),
        "validityEndTime": _rfc3339(not_after),
        "readyForRenewal": False,
    }


def _one_of(inputs: Mapping[str, Any], key: str, resource: str) -> str:
    plain, write_only = inputs.get(key), inputs.get(f"{key}Wo")
    if bool(plain) == bool(write_only):
        raise TlsMockError(f"{resource}: exactly one of {key} or {key}Wo must be set")
    value = plain or write_only
    assert isinstance(value, str)
    return value


def load_certificate(pem: Any, resource: str) -> x509.Certificate:
    if not isinstance(pem, str) or not pem.startswith("-----BEGIN CERTIFICATE-----"):
        raise TlsMockError(f"{resource}: invalid PEM type, expected \"CERTIFICATE\": "
                           f"{str(pem)[:40]!r}")
    certificates = x509.load_pem_x509_certificates(pem.encode())
    if len(certificates) != 1:
        raise TlsMockError(f"{resource}: expected one certificate, found {len(certificates)}")
    return certificates[0]


class TlsMock:
    """Outputs of the four pulumi-tls resources, made for real. Thread-safe (Pulumi registers
    resources from an executor's threads)."""

    def __init__(self, reuse_keys: bool = False) -> None:
        self.reuse_keys = reuse_keys
        self._pool: dict[tuple[str, str | None, int | None], PrivateKeyTypes] = {}
        self._lock = threading.Lock()
        self.keys_generated = 0

    def handles(self, resource_type: str) -> bool:
        return resource_type in TLS_TYPES

    def new_resource(self, resource_type: str, name: str,
                     inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """(id, outputs) for a tls resource; outputs include the inputs as the engine's state does."""
        plain = unwrap_secrets(dict(inputs))
        resource = f"{resource_type.rsplit(':', 1)[-1]} {name!r}"
        if resource_type == PRIVATE_KEY:
            computed = self._private_key(resource, plain)
        elif resource_type == SELF_SIGNED_CERT:
            computed = self._self_signed(resource, plain)
        elif resource_type == CERT_REQUEST:
            computed = self._cert_request(resource, plain)
        elif resource_type == LOCALLY_SIGNED_CERT:
            computed = self._locally_signed(resource, plain)
        else:
            raise TlsMockError(f"not a pulumi-tls resource type: {resource_type}")
        resource_id = computed.pop("id")
        # Inputs keep their (possibly secret-wrapped) form, so secret inputs stay secret outputs.
        return resource_id, {**dict(inputs), **computed}

    def _private_key(self, resource: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        algorithm = _required(inputs, "algorithm", resource)
        curve = inputs.get("ecdsaCurve")
        bits = inputs.get("rsaBits")
        if algorithm == "ECDSA" and curve is not None and curve not in CURVES:
            raise TlsMockError(f"{resource}: invalid ECDSA curve {curve!r}; supported values are: "
                               f"{', '.join(CURVES)}")
        rsa_bits = None if bits is None else _whole_number(inputs, "rsaBits", resource)
        if self.reuse_keys:
            pool_key = (algorithm, curve, rsa_bits)
            with self._lock:
                key = self._pool.get(pool_key)
                if key is None:
                    key = self._pool[pool_key] = generate_key(algorithm, curve, rsa_bits)
                    self.keys_generated += 1
        else:
            key = generate_key(algorithm, curve, rsa_bits)
            with self._lock:
                self.keys_generated += 1
        public = key.public_key()
        ssh_private, ssh_public, md5, sha256 = _openssh(key)
        der = public.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
        return {
            "id": hashlib.sha1(der, usedforsecurity=False).hexdigest(),
            "algorithm": algorithm,
            "ecdsaCurve": (_curve_name(key.curve) if isinstance(key, ec.EllipticCurvePrivateKey)
                           else curve or DEFAULT_CURVE),
            "rsaBits": key.key_size if isinstance(key, rsa.RSAPrivateKey) else rsa_bits or DEFAULT_RSA_BITS,
            "privateKeyPem": private_key_pem(key),
            "privateKeyPemPkcs8": key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()).decode(),
            "privateKeyOpenssh": ssh_private,
            "publicKeyPem": _public_pem(public),
            "publicKeyOpenssh": ssh_public,
            "publicKeyFingerprintMd5": md5,
            "publicKeyFingerprintSha256": sha256,
        }

    def _self_signed(self, resource: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        key = load_private_key(_one_of(inputs, "privateKeyPem", resource), resource)
        _required(inputs, "allowedUses", resource)
        names = _general_names(_strings(inputs, "dnsNames", resource),
                               _strings(inputs, "ipAddresses", resource),
                               _strings(inputs, "uris", resource), resource)
        outputs = _create_certificate(
            resource, inputs, subject=subject_name(inputs.get("subject"), resource),
            public_key=key.public_key(), general_names=names, signer=key, issuer=None)
        outputs["keyAlgorithm"] = _algorithm_of(key)
        return outputs

    def _cert_request(self, resource: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        key = load_private_key(_one_of(inputs, "privateKeyPem", resource), resource)
        builder = x509.CertificateSigningRequestBuilder().subject_name(
            subject_name(inputs.get("subject"), resource))
        names = _general_names(_strings(inputs, "dnsNames", resource),
                               _strings(inputs, "ipAddresses", resource),
                               _strings(inputs, "uris", resource), resource)
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        request = builder.sign(key, _signature_hash(key))
        pem = request.public_bytes(serialization.Encoding.PEM).decode()
        return {
            "id": hashlib.sha1(request.public_bytes(serialization.Encoding.DER),
                               usedforsecurity=False).hexdigest(),
            "certRequestPem": pem,
            "keyAlgorithm": _algorithm_of(key),
        }

    def _locally_signed(self, resource: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        request_pem = _required(inputs, "certRequestPem", resource)
        if not isinstance(request_pem, str) or "BEGIN CERTIFICATE REQUEST" not in request_pem:
            raise TlsMockError(f"{resource}: invalid PEM type, expected \"CERTIFICATE REQUEST\"")
        request = x509.load_pem_x509_csr(request_pem.encode())
        if not request.is_signature_valid:
            raise TlsMockError(f"{resource}: the certificate request's signature does not verify")
        ca_key = load_private_key(_one_of(inputs, "caPrivateKeyPem", resource), resource)
        ca_cert = load_certificate(_required(inputs, "caCertPem", resource), resource)
        if not _public_key_matches(ca_key, ca_cert.public_key()):
            raise TlsMockError(f"{resource}: x509: provided PrivateKey doesn't match parent's "
                               "PublicKey (caPrivateKeyPem is not the key of caCertPem)")
        try:
            constraints = ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value
            is_ca = constraints.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            raise TlsMockError(f"{resource}: caCertPem ({ca_cert.subject.rfc4514_string()}) is not "
                               "a Certificate Authority; the signed certificate would not validate")
        try:
            san = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            names: list[x509.GeneralName] = list(san)
        except x509.ExtensionNotFound:
            names = []
        public_key = request.public_key()
        if not isinstance(public_key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey,
                                       ed25519.Ed25519PublicKey)):
            raise TlsMockError(f"{resource}: unsupported public key in the request")
        outputs = _create_certificate(
            resource, inputs, subject=request.subject, public_key=public_key,
            general_names=names, signer=ca_key, issuer=ca_cert)
        outputs["caKeyAlgorithm"] = _algorithm_of(ca_key)
        # Go verifies what it signed with the parent's key; so do we.
        issued = load_certificate(outputs["certPem"], resource)
        try:
            _verify_signature(ca_cert.public_key(), issued.signature, issued.tbs_certificate_bytes,
                              issued.signature_hash_algorithm)
        except InvalidSignature:
            raise TlsMockError(f"{resource}: signature over the certificate does not verify "
                               "with the CA certificate's key") from None
        return outputs
