"""A real Spark standalone cluster (one master, one worker) on 127.0.0.1, from pyspark.

For development (`make cluster-up` / `make cluster-down`) and the cluster tests: it proves
the jobs run under ``spark-submit`` against a master that is not ``local[*]``, with the
library shipped to the executors as ``--py-files``.

The daemons run from the installed pyspark package (``SPARK_HOME`` is its folder), each in
its own process group, logging to ``<dir>/master.log`` and ``<dir>/worker.log``. Every
listener is bound to 127.0.0.1. The folder also holds ``cluster.json`` (ports and pids) and
``master.pid`` / ``worker.pid`` while the cluster runs, and the worker's ``work/`` folder.

Usage::

    python -m cdplake.io.local_cluster start --dir .spark-cluster [--port 7077 --webui-port 8080]
    python -m cdplake.io.local_cluster status --dir .spark-cluster
    python -m cdplake.io.local_cluster stop --dir .spark-cluster

Jobs read their master from the config, so submit with ``CDPLAKE__SPARK__MASTER=null`` (or
the cluster URL): a ``spark.master`` of ``local[2]`` set by the session builder would win
over ``spark-submit --master``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cdplake.io.local_s3 import HOST, child_dies_with_parent, free_port

STATE_FILE = "cluster.json"
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0
SUBMIT_TIMEOUT_S = 900.0
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"


class ClusterError(RuntimeError):
    """The cluster did not start in time, a daemon died, or a submitted job failed."""


def spark_home() -> Path:
    """The installed pyspark package folder, which is a complete ``SPARK_HOME``."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def daemon_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for the daemons and ``spark-submit``: loopback only, this venv's Python."""
    env = {
        **os.environ,
        "SPARK_HOME": str(spark_home()),
        "SPARK_LOCAL_IP": HOST,
        "SPARK_MASTER_HOST": HOST,
        "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON") or sys.executable,
        "PYSPARK_DRIVER_PYTHON": os.environ.get("PYSPARK_DRIVER_PYTHON") or sys.executable,
        # The daemons only schedule; the 1 GB default heap each is wasted on 2 cores.
        "SPARK_DAEMON_MEMORY": "512m",
    }
    env.update(extra or {})
    return env


@dataclass
class SparkCluster:
    """A running standalone cluster started by :func:`start_cluster`.

    Attributes:
        dir: folder with logs, pid files and the worker's work dir.
        port: the master's RPC port.
        webui_port: the master's web UI port (its ``/json/`` endpoint is polled).
        worker_webui_port: the worker's web UI port.
        master_pid: pid of the master JVM (also its process group id).
        worker_pid: pid of the worker JVM (also its process group id, which executors join).
    """

    dir: Path
    port: int
    webui_port: int
    worker_webui_port: int
    master_pid: int
    worker_pid: int
    _processes: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False, compare=False)

    @property
    def master_url(self) -> str:
        """``spark://127.0.0.1:<port>``, for ``spark-submit --master``."""
        return f"spark://{HOST}:{self.port}"

    @property
    def webui_url(self) -> str:
        """The master's web UI."""
        return f"http://{HOST}:{self.webui_port}"

    def state(self) -> dict[str, object]:
        """The master's JSON status (``aliveworkers``, ``workers``, ``activeapps``...)."""
        return _master_json(self.webui_port)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop worker (with its executors) then master; SIGKILL after ``timeout``; idempotent."""
        _terminate_group(self.worker_pid, WORKER_CLASS, timeout)
        _terminate_group(self.master_pid, MASTER_CLASS, timeout)
        for proc in self._processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        for name in ("master.pid", "worker.pid", STATE_FILE):
            with contextlib.suppress(FileNotFoundError):
                (self.dir / name).unlink()


def _master_json(webui_port: int) -> dict[str, object]:
    with urllib.request.urlopen(f"http://{HOST}:{webui_port}/json/", timeout=2) as resp:
        return json.loads(resp.read().decode("utf-8"))


def _is_daemon(pid: int, main_class: str) -> bool:
    """True when ``pid`` is alive and runs ``main_class`` (guards against reused pids)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.exists():
        return True  # no /proc (macOS): trust the pid file
    try:
        return main_class.encode() in cmdline.read_bytes()
    except OSError:
        return False


def _terminate_group(pid: int, main_class: str, timeout: float) -> None:
    # Each daemon leads its own process group; the worker's executors and their Python
    # workers are in the worker's group, so one killpg stops them all.
    if not _is_daemon(pid, main_class):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _is_daemon(pid, main_class):
            break
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)  # also reaps executors left in the group


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def _spawn(
    args: list[str], log_path: Path, env: dict[str, str], cwd: Path, detach: bool
) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # spark-class execs java, which keeps the parent-death signal.
            preexec_fn=None if detach else child_dies_with_parent(),
        )


def running_cluster(dir: str | Path) -> SparkCluster | None:
    """The cluster recorded in ``dir`` if both daemons still run, else ``None``."""
    folder = Path(dir).resolve()
    try:
        state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    cluster = SparkCluster(
        dir=folder,
        port=int(state["port"]),
        webui_port=int(state["webui_port"]),
        worker_webui_port=int(state["worker_webui_port"]),
        master_pid=int(state["master_pid"]),
        worker_pid=int(state["worker_pid"]),
    )
    if _is_daemon(cluster.master_pid, MASTER_CLASS) and _is_daemon(cluster.worker_pid, WORKER_CLASS):
        return cluster
    cluster.stop(timeout=2)  # half a cluster is no cluster: clean up what is left
    return None


def start_cluster(
    dir: str | Path,
    *,
    port: int | None = None,
    webui_port: int | None = None,
    worker_webui_port: int | None = None,
    cores: int = 1,
    memory: str = "1g",
    timeout: float = START_TIMEOUT_S,
    detach: bool = False,
) -> SparkCluster:
    """Start a master and one worker on 127.0.0.1 and wait until the worker has registered.

    Args:
        dir: folder for logs, pid files and the worker's work dir (created if missing).
        port: master RPC port; a free port when ``None``.
        webui_port: master web UI port; a free port when ``None``.
        worker_webui_port: worker web UI port; a free port when ``None``.
        cores: cores the worker offers.
        memory: memory the worker offers to executors.
        timeout: seconds to wait for ``aliveworkers >= 1`` on the master's ``/json/``.
        detach: ``True`` for daemons that outlive this process (the CLI); ``False`` (tests)
            ties them to this process on Linux.

    Returns:
        The running cluster; call :meth:`SparkCluster.stop` when done.

    Raises:
        ClusterError: a cluster already runs from ``dir``, a daemon exited, or the worker did
            not register within ``timeout`` (the message carries the log tails).
    """
    folder = Path(dir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    if running_cluster(folder) is not None:
        raise ClusterError(f"a Spark cluster already runs from {folder}")
    port = port or free_port()
    webui_port = webui_port or free_port()
    worker_webui_port = worker_webui_port or free_port()
    worker_port = free_port()
    work_dir = folder / "work"
    local_dir = folder / "local"
    work_dir.mkdir(exist_ok=True)
    local_dir.mkdir(exist_ok=True)

    spark_class = str(spark_home() / "bin" / "spark-class")
    # SPARK_LOCAL_DIRS keeps executor scratch space (shuffle, spills) under the folder.
    env = daemon_env(
        {
            "SPARK_LOCAL_DIRS": str(local_dir),
            "SPARK_WORKER_DIR": str(work_dir),
            # The REST submission server has a fixed port (6066) and is not needed here.
            "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false",
        }
    )
    master_cmd = [
        spark_class,
        MASTER_CLASS,
        "--host",
        HOST,
        "--port",
        str(port),
        "--webui-port",
        str(webui_port),
    ]
    master = _spawn(master_cmd, folder / "master.log", env, folder, detach)
    worker_cmd = [
        spark_class,
        WORKER_CLASS,
        f"spark://{HOST}:{port}",
        "--host",
        HOST,
        "--port",
        str(worker_port),
        "--webui-port",
        str(worker_webui_port),
        "--cores",
        str(cores),
        "--memory",
        memory,
        "--work-dir",
        str(work_dir),
    ]
    # The worker retries its registration, so starting it before the master listens is fine.
    worker = _spawn(worker_cmd, folder / "worker.log", env, folder, detach)
    cluster = SparkCluster(
        dir=folder,
        port=port,
        webui_port=webui_port,
        worker_webui_port=worker_webui_port,
        master_pid=master.pid,
        worker_pid=worker.pid,
        _processes=[master, worker],
    )
    try:
        _wait_for_worker(cluster, master, worker, timeout)
    except BaseException:
        cluster.stop(timeout=2)
        raise
    (folder / "master.pid").write_text(f"{master.pid}\n")
    (folder / "worker.pid").write_text(f"{worker.pid}\n")
    state = {
        "master_url": cluster.master_url,
        "webui_url": cluster.webui_url,
        "port": port,
        "webui_port": webui_port,
        "worker_webui_port": worker_webui_port,
        "master_pid": master.pid,
        "worker_pid": worker.pid,
    }
    (folder / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    return cluster


def _wait_for_worker(
    cluster: SparkCluster, master: subprocess.Popen[bytes], worker: subprocess.Popen[bytes], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        for name, proc in (("master", master), ("worker", worker)):
            if proc.poll() is not None:
                raise ClusterError(
                    f"Spark {name} exited with code {proc.returncode} while starting; last lines of "
                    f"{cluster.dir / (name + '.log')}:\n{_log_tail(cluster.dir / (name + '.log'))}"
                )
        try:
            state = cluster.state()
            last = state.get("aliveworkers")
            if isinstance(last, int) and last >= 1:
                return
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last = exc
        time.sleep(0.5)
    raise ClusterError(
        f"no worker registered with {cluster.master_url} within {timeout:.0f}s (last: {last});\n"
        f"master.log:\n{_log_tail(cluster.dir / 'master.log')}\nworker.log:\n{_log_tail(cluster.dir / 'worker.log')}"
    )


def stop_cluster(dir: str | Path, timeout: float = STOP_TIMEOUT_S) -> bool:
    """Stop the cluster recorded in ``dir``.

    Returns:
        ``True`` if a cluster was running and has been stopped, ``False`` if none was.
    """
    cluster = running_cluster(dir)
    if cluster is None:
        return False
    cluster.stop(timeout)
    return True


def build_lib_zip(dest_dir: str | Path) -> Path:
    """Zip the ``cdplake`` package (the one this interpreter imports) for ``--py-files``.

    Args:
        dest_dir: folder to write ``cdplake.zip`` into (a temp folder: nothing generated is
            committed).

    Returns:
        The path of the zip; its top-level entry is ``cdplake/``.
    """
    import cdplake

    package = Path(cdplake.__file__).resolve().parent
    out = Path(dest_dir) / "cdplake.zip"
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(package.rglob("*")):
            if "__pycache__" in path.parts or path.suffix in {".pyc", ".pyo"} or not path.is_file():
                continue
            zf.write(path, Path("cdplake") / path.relative_to(package))
    return out


def submit(
    master_url: str,
    script: str | Path,
    args: Sequence[str] = (),
    *,
    py_files: Sequence[str | Path] = (),
    jars: Sequence[str | Path] = (),
    conf: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    log_path: str | Path | None = None,
    timeout: float = SUBMIT_TIMEOUT_S,
) -> subprocess.CompletedProcess[str]:
    """Run ``spark-submit`` (client mode) against a standalone master and wait for it.

    The driver binds to 127.0.0.1; executors use this interpreter (``PYSPARK_PYTHON``).

    Args:
        master_url: ``spark://host:port``.
        script: the Python job to run.
        args: arguments of the job.
        py_files: zips/wheels/.py files for ``--py-files`` (shipped to the executors).
        jars: jars for ``--jars`` (on the driver's and the executors' classpath).
        conf: extra ``--conf`` settings.
        env: extra environment variables (e.g. ``CDPLAKE__STORAGE__ROOT``).
        log_path: file to write the combined output to (kept for debugging).
        timeout: seconds before the submission is killed.

    Returns:
        The finished process (``stdout`` holds stdout and stderr combined).

    Raises:
        ClusterError: non-zero exit or timeout; the message carries the output's tail.
    """
    submit_bin = str(spark_home() / "bin" / "spark-submit")
    settings = {
        "spark.driver.host": HOST,
        "spark.driver.bindAddress": HOST,
        "spark.ui.enabled": "false",
        **(conf or {}),
    }
    run_env = daemon_env(env)
    settings.setdefault("spark.pyspark.python", run_env["PYSPARK_PYTHON"])
    cmd = [submit_bin, "--master", master_url, "--deploy-mode", "client"]
    if jars:
        cmd += ["--jars", ",".join(str(j) for j in jars)]
    if py_files:
        cmd += ["--py-files", ",".join(str(p) for p in py_files)]
    for key, value in settings.items():
        cmd += ["--conf", f"{key}={value}"]
    cmd += [str(script), *[str(a) for a in args]]
    try:
        result = subprocess.run(
            cmd,
            env=run_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        if log_path:
            Path(log_path).write_text(out, encoding="utf-8")
        tail = "\n".join(out.splitlines()[-40:])
        raise ClusterError(
            f"spark-submit {script} timed out after {timeout:.0f}s; output tail:\n{tail}"
        ) from None
    if log_path:
        Path(log_path).write_text(result.stdout, encoding="utf-8")
    if result.returncode != 0:
        tail = "\n".join(result.stdout.splitlines()[-60:])
        raise ClusterError(f"spark-submit {script} exited with {result.returncode}; output tail:\n{tail}")
    return result


def main(argv: list[str] | None = None) -> int:
    """CLI: ``start`` (idempotent), ``status`` and ``stop``, all with ``--dir``."""
    parser = argparse.ArgumentParser(
        prog="python -m cdplake.io.local_cluster", description=(__doc__ or "").split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start master + worker in the background (no-op if running)")
    start.add_argument("--dir", default=".spark-cluster", help="logs/pid folder (default .spark-cluster)")
    start.add_argument("--port", type=int, default=7077, help="master port (default 7077)")
    start.add_argument("--webui-port", type=int, default=8080, help="master web UI port (default 8080)")
    start.add_argument(
        "--worker-webui-port", type=int, default=8081, help="worker web UI port (default 8081)"
    )
    start.add_argument("--cores", type=int, default=1, help="worker cores (default 1)")
    start.add_argument("--memory", default="1g", help="worker memory (default 1g)")
    start.add_argument(
        "--timeout", type=float, default=START_TIMEOUT_S, help="seconds to wait for the worker"
    )
    for name, text in (("status", "print the master URL if running"), ("stop", "stop master and worker")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--dir", default=".spark-cluster", help="logs/pid folder (default .spark-cluster)")
    args = parser.parse_args(argv)

    try:
        if args.command == "start":
            existing = running_cluster(args.dir)
            if existing is not None:
                print(f"Spark cluster already running: {existing.master_url} (UI {existing.webui_url})")
                return 0
            cluster = start_cluster(
                args.dir,
                port=args.port,
                webui_port=args.webui_port,
                worker_webui_port=args.worker_webui_port,
                cores=args.cores,
                memory=args.memory,
                timeout=args.timeout,
                detach=True,
            )
            print(
                f"Spark cluster ready: {cluster.master_url} (UI {cluster.webui_url}, logs in {cluster.dir})"
            )
            print(
                "submit with: CDPLAKE__SPARK__MASTER=null spark-submit --master "
                f"{cluster.master_url} --py-files <cdplake.zip or wheel> --jars <.jars/core/*.jar> jobs/<job>.py"
            )
            return 0
        if args.command == "status":
            cluster = running_cluster(args.dir)
            if cluster is None:
                print(f"no Spark cluster running from {Path(args.dir).resolve()}")
                return 1
            print(
                f"{cluster.master_url} (UI {cluster.webui_url}), alive workers: {cluster.state().get('aliveworkers')}"
            )
            return 0
        if stop_cluster(args.dir):
            print(f"Spark cluster stopped ({Path(args.dir).resolve()})")
        else:
            print(f"no Spark cluster running from {Path(args.dir).resolve()}")
        return 0
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
