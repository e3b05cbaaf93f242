"""A real S3-compatible server on a real cluster's network, for the backup scripts.

`S3Server` runs the Versity S3 Gateway (scripts/build-s3-server builds it from Go modules) over
a directory, at an address inside a network namespace, with fresh credentials: the members
reach it at `endpoint` as they would reach DigitalOcean Spaces. `stop()` and `start()` make an
outage; `close()` ends it. `ObjectStore(cluster)` is one in a namespace of its own on a real
cluster's bridge. `rclone_env` is how a test reads and writes the bucket itself (the rclone the
members use).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from realcluster import cleanup
from realcluster.harness import Cluster, Result, end_process, run
from realcluster.tools import Unavailable

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "scripts" / "build-s3-server"
PORT = 7070
REGION = "us-east-1"


def s3_server_binary() -> Path:
    """$ETCD_S3_SERVER, or what scripts/build-s3-server built; Unavailable naming the fix."""
    given = os.environ.get("ETCD_S3_SERVER")
    if given:
        if not os.access(given, os.X_OK):
            raise Unavailable(f"ETCD_S3_SERVER={given} is not an executable")
        return Path(given)
    done = subprocess.run([str(BUILD_SCRIPT), "--cached"], capture_output=True, text=True,
                          timeout=60, check=False)
    if done.returncode != 0:
        raise Unavailable("the S3 server is not built: run scripts/build-s3-server (needs Go and "
                          "the Go module proxy; about 2.5 minutes once on 2 cores)")
    return Path(done.stdout.strip())


def new_credentials() -> tuple[str, str]:
    """An access key ID and secret access key for a new server."""
    return f"test{secrets.token_hex(6)}", secrets.token_urlsafe(24)


def rclone_binary() -> str:
    found = shutil.which("rclone")
    if found is None:
        raise Unavailable("rclone not found: install the Debian package rclone (the members "
                          "upload their snapshots with it)")
    return found


class S3Server:
    """The Versity S3 Gateway over `root`, listening at `address`:PORT inside a network namespace
    (`wrap` puts a command there), with fresh credentials and one bucket."""

    def __init__(self, root: Path, address: str, wrap: Callable[[list[str]], list[str]],
                 log: Path, bucket: str = "etcd-backups",
                 credentials: tuple[str, str] | None = None) -> None:
        self.binary = s3_server_binary()
        self.bucket = bucket
        self.access_key_id, self.secret_access_key = credentials or new_credentials()
        self.root = root
        (self.root / bucket).mkdir(parents=True, exist_ok=True)
        self.address = address
        self.wrap = wrap
        self.endpoint = f"http://{address}:{PORT}"
        self.log = log
        self._process: subprocess.Popen[bytes] | None = None
        self._token = cleanup.register("the S3 server", self.stop)
        self.start()

    def start(self) -> None:
        """The server, answering, over the same directory (its objects survive a stop)."""
        argv = self.wrap([str(self.binary), "--port", f"{self.address}:{PORT}",
                          "--region", REGION, "posix", str(self.root)])
        env = {"PATH": "/usr/bin:/bin", "ROOT_ACCESS_KEY_ID": self.access_key_id,
               "ROOT_SECRET_ACCESS_KEY": self.secret_access_key}
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"the S3 server exited ({self._process.returncode}):\n"
                                   f"{self.log.read_text()[-2000:]}")
            if self._answers():
                return
            time.sleep(0.2)
        raise RuntimeError(f"the S3 server did not answer within 30 s:\n{self.log.read_text()[-2000:]}")

    def _answers(self) -> bool:
        # Any HTTP answer (403 without credentials) means it listens.
        probe = run(self.wrap(["curl", "--silent", "--output", "/dev/null", "--write-out",
                               "%{http_code}", "--max-time", "2", f"{self.endpoint}/"]),
                    {"PATH": "/usr/bin:/bin"}, 10)
        return probe.stdout.strip() not in ("", "000")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            end_process(process)

    def close(self) -> None:
        self.stop()
        cleanup.forget(self._token)

    def objects(self, prefix: str) -> dict[str, bytes]:
        """The objects under `prefix` as the server stores them (sealed), by name."""
        directory = self.root / self.bucket / prefix
        if not directory.is_dir():
            return {}
        return {path.name: path.read_bytes() for path in sorted(directory.iterdir())
                if path.is_file()}

    def settings(self, prefix: str, encryption_key: str, keep_count: int = 168,
                 keep_days: int = 7) -> dict[str, str]:
        """A member's backup.env (the names etcd-backup reads) for this store."""
        return {
            "ETCD_BACKUP_ENDPOINT": self.endpoint,
            "ETCD_BACKUP_REGION": REGION,
            "ETCD_BACKUP_BUCKET": self.bucket,
            "ETCD_BACKUP_PREFIX": prefix,
            "ETCD_BACKUP_ACCESS_KEY_ID": self.access_key_id,
            "ETCD_BACKUP_SECRET_ACCESS_KEY": self.secret_access_key,
            "ETCD_BACKUP_ENCRYPTION_KEY": encryption_key,
            "ETCD_BACKUP_KEEP_COUNT": str(keep_count),
            "ETCD_BACKUP_KEEP_DAYS": str(keep_days),
        }


class ObjectStore(S3Server):
    """An S3 server in a namespace of its own on a real cluster's bridge."""

    def __init__(self, cluster: Cluster, bucket: str = "etcd-backups") -> None:
        self.cluster = cluster
        used = {member.host.address for member in cluster.members.values()}
        used |= {cluster.client.address, cluster.monitor.address}
        subnet = ipaddress.IPv4Network(f"{cluster.client.address}/24", strict=False)
        address = next(str(host) for host in reversed(list(subnet.hosts())) if str(host) not in used)
        self.host = cluster.network.add_host("objects", address)
        super().__init__(cluster.work / "objects", address, self.host.argv,
                         cluster.work / "objects.log", bucket)

    def rclone(self, prefix: str, encryption_key: str, *args: str, timeout: float = 120) -> Result:
        """rclone in the client namespace with `sealed:` the crypt remote over `prefix`."""
        return run(self.cluster.client.argv([rclone_binary(), *args]),
                   rclone_env(self, prefix, encryption_key, self.cluster.home), timeout)


def rclone_env(store: S3Server, prefix: str, encryption_key: str,
               home: Path | None = None) -> Mapping[str, str]:
    obscured = subprocess.run([rclone_binary(), "obscure", "-"], input=encryption_key + "\n",
                              capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home or store.root.parent),
        "RCLONE_CONFIG": "/dev/null",
        "RCLONE_CONFIG_STORE_TYPE": "s3",
        "RCLONE_CONFIG_STORE_PROVIDER": "Other",
        "RCLONE_CONFIG_STORE_ENDPOINT": store.endpoint,
        "RCLONE_CONFIG_STORE_REGION": REGION,
        "RCLONE_CONFIG_STORE_ACCESS_KEY_ID": store.access_key_id,
        "RCLONE_CONFIG_STORE_SECRET_ACCESS_KEY": store.secret_access_key,
        "RCLONE_CONFIG_STORE_NO_CHECK_BUCKET": "true",
        "RCLONE_CONFIG_SEALED_TYPE": "crypt",
        "RCLONE_CONFIG_SEALED_REMOTE": f"store:{store.bucket}/{prefix}",
        "RCLONE_CONFIG_SEALED_FILENAME_ENCRYPTION": "off",
        "RCLONE_CONFIG_SEALED_DIRECTORY_NAME_ENCRYPTION": "false",
        "RCLONE_CONFIG_SEALED_PASSWORD": obscured,
    }
