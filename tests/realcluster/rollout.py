"""Day-2 certificate rollout against a real cluster: renewed certificates, the member-side
scripts run as the program would run them, and what each member serves.

- `RenewalPki(run)`: the CAs (certificate and key) of a program run, issuing new server and peer
  certificates the way components/pki.py asks pulumi-tls for them (CN and SANs from the member,
  O=etcd, serverAuth+clientAuth, SKI and AKI), or deliberately wrong ones;
- `MemberScripts(cluster, member)`: run cloudinit/scripts/* as root inside the member's network
  namespace, with the member's paths given through the scripts' environment overrides
  (ETCD_PKI_DIR, ETCDCTL_ENV_FILE, ETCD_OWNER, ETCD_RESTART_COMMAND);
- `served_serial`: the serial a port hands out to a new TLS connection (openssl s_client);
- `Restarts`: the stand-in for `systemctl restart etcd` (a request file that a thread of the
  test answers by stopping and starting the member exactly as the harness does).
"""

from __future__ import annotations

import datetime
import ipaddress
import shlex
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from program import ProgramRun

from realcluster.harness import CLIENT_PORT, PEER_PORT, Cluster, Result, run
from realcluster.member import EtcdMember
from realcluster.tools import tools

REPO = Path(__file__).resolve().parents[2]
SCRIPTS_DIR = REPO / "cloudinit" / "scripts"
GATE = SCRIPTS_DIR / "etcd-cluster-gate"
INSTALL_CERTS = SCRIPTS_DIR / "etcd-install-certs"
CERT_FILES = ("server.crt", "server.key", "peer.crt", "peer.key")
USAGES = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key: ec.EllipticCurvePrivateKey | dsa.DSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption()).decode()


@dataclass(frozen=True)
class Ca:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def fresh_ca(common_name: str) -> Ca:
    """A CA the cluster has never seen, with the cluster CA's subject (so only the key differs)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "etcd"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return Ca(cert, key)


@dataclass(frozen=True)
class Issued:
    cert_pem: str
    key_pem: str
    serial: int


def issue(ca: Ca, common_name: str, dns_names: Sequence[str], ip_addresses: Sequence[str],
          key: ec.EllipticCurvePrivateKey | dsa.DSAPrivateKey | None = None,
          starts_in: datetime.timedelta = datetime.timedelta(0)) -> Issued:
    """A member certificate as pulumi-tls makes it: valid from now, not backdated; `key` a
    given one (a DSA key makes a certificate openssl accepts and Go's crypto/tls cannot load);
    `starts_in` moves its start into the future (as members whose clocks are behind see it)."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc) + starts_in
    sans: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(address)) for address in ip_addresses]
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "etcd"),
                                 x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=False, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(USAGES), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
                       critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca.key, hashes.SHA256())
    return Issued(_pem(cert), _key_pem(key), cert.serial_number)


@dataclass(frozen=True)
class MemberCerts:
    """One member's four files: server.crt server.key peer.crt peer.key."""

    server: Issued
    peer: Issued

    @property
    def files(self) -> dict[str, str]:
        return {"server.crt": self.server.cert_pem, "server.key": self.server.key_pem,
                "peer.crt": self.peer.cert_pem, "peer.key": self.peer.key_pem}

    @property
    def stdin(self) -> str:
        """The stdin form: the four PEM documents concatenated in CERT_FILES order."""
        return "".join(self.files[name] for name in CERT_FILES)

    def write(self, directory: Path) -> Path:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for name, content in self.files.items():
            (directory / name).write_text(content)
            (directory / name).chmod(0o600)
        return directory


class RenewalPki:
    """The program run's own CAs, issuing renewed member certificates."""

    def __init__(self, run: ProgramRun) -> None:
        certs, keys = run.certificates, run.private_key_pems

        def ca(name: str) -> Ca:
            key = serialization.load_pem_private_key(keys[f"{name}-key"].encode(), None)
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            return Ca(certs[f"{name}-cert"], key)

        self.client_ca, self.peer_ca = ca("client-ca"), ca("peer-ca")

    def renewed(self, member: EtcdMember,
                starts_in: datetime.timedelta = datetime.timedelta(0)) -> MemberCerts:
        """What pulumi-tls re-issues for `member` (components/pki.py, without static IPs)."""
        return MemberCerts(
            server=issue(self.client_ca, member.fqdn, [member.fqdn, "localhost"],
                         ["127.0.0.1", "::1"], starts_in=starts_in),
            peer=issue(self.peer_ca, member.fqdn, [member.fqdn], [], starts_in=starts_in))


# --- running the scripts on a member --------------------------------------------------------

def served_serial(cluster: Cluster, member: EtcdMember, port: int,
                  client_cert: tuple[Path, Path] | None = None) -> int | None:
    """The serial of the certificate `member` presents to a new connection on `port` (from
    inside its namespace, to 127.0.0.1), or None when no certificate came back."""
    argv = [tools().openssl, "s_client", "-connect", f"127.0.0.1:{port}"]
    if client_cert is not None:
        argv += ["-cert", str(client_cert[0]), "-key", str(client_cert[1])]
    shown = run(member.host.argv(argv), {"PATH": "/usr/bin:/bin"}, 30, stdin="")
    if "-----BEGIN CERTIFICATE-----" not in shown.stdout:
        return None
    parsed = run([tools().openssl, "x509", "-noout", "-serial"], {"PATH": "/usr/bin:/bin"}, 30,
                 stdin=shown.stdout)
    if not parsed.ok:
        return None
    return int(parsed.stdout.strip().split("=", 1)[1], 16)


class MemberScripts:
    """The member-side scripts as root in `member`'s namespace, paths from the overrides."""

    def __init__(self, cluster: Cluster, member: EtcdMember, restart_command: str | None = None
                 ) -> None:
        self.cluster, self.member = cluster, member
        self.pki_dir = member.path("/etc/etcd/pki")
        # /etc/etcd/etcdctl.env as the user-data wrote it, its paths moved into the member root.
        written = member.path("/etc/etcd/etcdctl.env").read_text()
        lines = []
        for line in written.splitlines():
            name, _, value = line.partition("=")
            lines.append(f"{name}={member.remap(value)}")
        self.env_file = member.path("/etc/etcd/etcdctl.harness.env")
        self.env_file.write_text("\n".join(lines) + "\n")
        self.env_file.chmod(0o600)
        self.restart_command = restart_command or "false"

    def environment(self, **extra: str) -> dict[str, str]:
        bindir = self.member.path("/usr/local/bin")
        return {
            "PATH": f"{bindir}:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root",
            "ETCD_PKI_DIR": str(self.pki_dir),
            "ETCDCTL_ENV_FILE": str(self.env_file),
            "ETCD_OWNER": f"{self.member.run_as.uid}:{self.member.run_as.gid}",
            "ETCD_RESTART_COMMAND": self.restart_command,
            **extra,
        }

    def run(self, script: Path, *args: str, stdin: str | None = None, timeout: float = 300,
            env: Mapping[str, str] | None = None) -> Result:
        argv = self.member.host.argv([tools().sh, str(script), *args])
        return run(argv, self.environment(**(env or {})), timeout, stdin)

    def gate(self, *args: str, timeout: float = 300, env: Mapping[str, str] | None = None
             ) -> Result:
        return self.run(GATE, *args, timeout=timeout, env=env)

    def install_certs(self, *args: str, stdin: str | None = None, timeout: float = 300,
                      env: Mapping[str, str] | None = None) -> Result:
        return self.run(INSTALL_CERTS, *args, stdin=stdin, timeout=timeout, env=env)

    def pki_snapshot(self) -> dict[str, tuple[bytes, int, int, int]]:
        """Every file in the PKI directory: content, mode, uid, gid."""
        found = {}
        for path in sorted(self.pki_dir.iterdir()):
            stat = path.stat()
            found[path.name] = (path.read_bytes(), stat.st_mode & 0o7777, stat.st_uid, stat.st_gid)
        return found

    def serials(self) -> tuple[int | None, int | None]:
        """(client port serial, peer port serial) served right now."""
        peer = (self.pki_dir / "peer.crt", self.pki_dir / "peer.key")
        return (served_serial(self.cluster, self.member, CLIENT_PORT),
                served_serial(self.cluster, self.member, PEER_PORT, peer))


class Restarts:
    """`systemctl restart etcd` for the harness's members: the script's ETCD_RESTART_COMMAND
    writes a request file and waits for it to go; a thread here stops and starts the member
    (SIGTERM, then ExecStartPre/ExecStart as the unit says), then removes the file."""

    def __init__(self, cluster: Cluster, directory: Path) -> None:
        self.cluster = cluster
        self.directory = directory
        directory.mkdir(mode=0o755, exist_ok=True)
        self.done: list[str] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="restarts", daemon=True)
        self._thread.start()

    def command(self, member: EtcdMember) -> str:
        request = shlex.quote(str(self.directory / member.name))
        return (f"touch {request} && while [ -e {request} ]; do sleep 0.1; done")

    def _serve(self) -> None:
        while not self._stop.is_set():
            for request in list(self.directory.iterdir()):
                member = self.cluster.members[request.name]
                member.stop()
                try:
                    member.start()
                except Exception as error:  # a failed start is what systemd would report too
                    self.errors.append(f"{request.name}: {error}")
                self.done.append(request.name)
                request.unlink()
            time.sleep(0.1)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=120)


def snapshot_all(scripts: Iterable[MemberScripts]) -> dict[str, dict[str, tuple[bytes, int, int, int]]]:
    return {s.member.name: s.pki_snapshot() for s in scripts}
