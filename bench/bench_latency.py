"""Streaming latency: a raw file landing -> the membership change readable by the outbox consumer.

    .venv/bin/python bench/bench_latency.py                      # 20 files, 10 s trigger
    .venv/bin/python bench/bench_latency.py --files 30 --trigger "10 seconds" --customers 500

Sets up a fresh lake under .bench/latency: demo data at ``--customers`` scale plus a CRM
export of ``--files`` opted-in bench contacts, built once with ``--trigger availableNow``.
Then it starts two real processes, the streaming job (``jobs/stream_pipeline.py --trigger
<T>``, live clock) and the outbox consumer (``jobs/membership_outbox.py --trigger
<outbox interval>``), and lands one Segment events file every ``--spacing`` seconds. File
*i* identifies bench contact *i* and has three product views timestamped at landing, which
puts that customer into ``browsing_now``. Latency of file *i* = the first time an
``entered``/``browsing_now`` event for contact *i* is in the outbox's JSON files minus the
time the file landed (atomic rename). Prints p50/p95/max and the stream's mean seconds per
cycle phase, i.e. what dominates.
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "lib"))

from cdplake.config import load_env  # noqa: E402
from cdplake.landing import generate, write_landing  # noqa: E402
from cdplake.landing.store import LocalStore  # noqa: E402

BENCH_DOMAIN = "cdplake-bench.net"
CRM_HEADER = (
    "contact_id,first_name,last_name,email,phone,address_line1,city,postcode,country,"
    "date_of_birth,loyalty_tier,email_opt_in,email_opt_in_at,updated_at"
)
PHASE = re.compile(r"(\w+)=([\d.]+)s")


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def email(i: int) -> str:
    return f"bench{i:03d}@{BENCH_DOMAIN}"


def crm_export(n: int, now: dt.datetime) -> bytes:
    rows = [CRM_HEADER]
    for i in range(n):
        rows.append(
            f"BENCH{i:04d},Bench{i},Tester,{email(i)},,1 Bench Road,London,N1 9GU,GB,1990-01-01,gold,"
            f"true,2026-01-01T00:00:00Z,{iso(now)}"
        )
    return ("\n".join(rows) + "\n").encode()


def identify(i: int, now: dt.datetime) -> dict:
    """The event that links bench visitor ``i`` to bench contact ``i`` (by email)."""
    return {
        "messageId": f"bench-{i}-identify",
        "type": "identify",
        "userId": f"bench-u{i:03d}",
        "traits": {"email": email(i), "firstName": f"Bench{i}"},
        "timestamp": iso(now),
        "sentAt": iso(now),
    }


def known_visitors_file(n: int, now: dt.datetime) -> bytes:
    """Every bench visitor identified up front, so identity knows them before the stream runs."""
    return ("\n".join(json.dumps(identify(i, now)) for i in range(n)) + "\n").encode()


def events_file(i: int, now: dt.datetime, *, with_identify: bool = True) -> bytes:
    user = f"bench-u{i:03d}"
    lines = [identify(i, now)] if with_identify else []
    for v in range(3):
        lines.append(
            {
                "messageId": f"bench-{i}-view-{v}",
                "type": "track",
                "event": "Product Viewed",
                "userId": user,
                "properties": {"product_id": f"prod_{1000 + v}", "category": "footwear", "price": 50.0},
                "timestamp": iso(now),
                "sentAt": iso(now),
            }
        )
    return ("\n".join(json.dumps(x) for x in lines) + "\n").encode()


def lane_off_conf(folder: Path) -> Path:
    """A copy of ``conf/`` with ``realtime_lane: false``."""
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(REPO / "conf", folder)
    path = folder / "streaming.yaml"
    text = path.read_text(encoding="utf-8")
    assert "\nrealtime_lane: true" in text
    path.write_text(text.replace("\nrealtime_lane: true", "\nrealtime_lane: false"), encoding="utf-8")
    return folder


def job_env(root: Path) -> dict[str, str]:
    return {
        **os.environ,
        "CDPLAKE__STORAGE__ROOT": str(root),
        "PYTHONPATH": os.pathsep.join([str(REPO / "lib"), str(REPO), os.environ.get("PYTHONPATH", "")]),
        "PYSPARK_PYTHON": sys.executable,
    }


def start(cmd: list[str], root: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *cmd],
        cwd=REPO,
        env=job_env(root),
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
        bufsize=1,
    )


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def outbox_entries(json_dir: Path) -> dict[str, float]:
    """email -> mtime of the first outbox file holding its browsing_now entry."""
    seen: dict[str, float] = {}
    for name in glob.glob(str(json_dir / "batch=*" / "part-*.json")):
        mtime = os.path.getmtime(name)
        with open(name) as fh:
            for line in fh:
                event = json.loads(line)
                if event.get("segment_id") == "browsing_now" and event.get("event_type") == "entered":
                    key = event.get("email") or ""
                    seen[key] = min(seen.get(key, mtime), mtime)
    return seen


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[rank]


ENTERED = re.compile(r"^front \d+: .* (\d+) entered")


def front_split(
    landed: dict[str, float], seen: dict[str, float], arrived: list[tuple[float, str]]
) -> list[tuple[float, float]]:
    """Per file seen in the outbox: (landing -> end of the front tick that took it, that end ->
    the outbox). The tick that took a file is the first one that started after it landed
    (start = when its line was printed minus its phases) and opened a stay."""
    ticks = []
    for at, line in arrived:
        m = ENTERED.match(line)
        if m and int(m.group(1)) > 0:
            ticks.append((at - sum(float(x) for _, x in PHASE.findall(line)), at))
    out = []
    for key, at in landed.items():
        end = next((e for s, e in ticks if s >= at), None)
        if key in seen and end is not None and end <= seen[key]:
            out.append((end - at, seen[key] - end))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--trigger", default="10 seconds")
    parser.add_argument("--outbox-trigger", default="2 seconds")
    parser.add_argument("--spacing", type=float, default=6.0, help="seconds between landed files")
    parser.add_argument("--customers", type=int, default=200, help="demo scale of the lake behind")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=900, help="give up waiting after this many seconds")
    parser.add_argument("--root", default=str(REPO / ".bench" / "latency"))
    parser.add_argument(
        "--known-visitors",
        action="store_true",
        help="identify every bench visitor in the initial build; files then carry only the views "
        "(a returning customer browsing), instead of a first identify plus the views",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=0,
        help="land this many files (other bench contacts) first and wait for them, unmeasured: "
        "the latency of a stream that has been running, not of its first minute",
    )
    parser.add_argument(
        "--no-realtime-lane",
        action="store_true",
        help="whole cycles one after another (realtime_lane: false)",
    )
    args = parser.parse_args()
    if args.no_realtime_lane:
        os.environ["CDPLAKE_CONF_DIR"] = str(lane_off_conf(Path(args.root).parent / "latency-conf"))
        os.environ["CDPLAKE__SPARK__JARS_DIR"] = str(REPO / ".jars")  # not next to the copied conf/

    bench = Path(args.root)
    shutil.rmtree(bench, ignore_errors=True)
    root = bench / "lake"
    env = load_env(
        "local",
        environ={
            **os.environ,
            "CDPLAKE__STORAGE__ROOT": str(root),
            "CDPLAKE__DEMO__CUSTOMERS": str(args.customers),
            "CDPLAKE__DEMO__DAYS": str(args.days),
        },
    )
    write_landing(env, generate(env.demo))
    landing = LocalStore(root / "landing")
    now = dt.datetime.now(dt.timezone.utc)
    landing.put(f"crm/{now:%Y-%m-%d}/bench-contacts.csv", crm_export(args.files + args.warmup, now))
    if args.known_visitors:
        landing.put(
            f"events/{now:%Y-%m-%d}/bench-visitors.jsonl", known_visitors_file(args.files + args.warmup, now)
        )

    print(
        f"building the lake once ({args.customers} demo customers, {args.files} bench contacts)...",
        flush=True,
    )
    t0 = time.monotonic()
    build = start(["jobs/stream_pipeline.py", "--trigger", "availableNow"], root, bench / "build.log")
    build_out = build.communicate()[0]
    if build.returncode != 0:
        raise SystemExit(f"initial build failed; see {bench / 'build.log'}")
    print(f"  {time.monotonic() - t0:.0f} s: {build_out.strip().splitlines()[-2]}", flush=True)

    stream = start(["jobs/stream_pipeline.py", "--trigger", args.trigger], root, bench / "stream.log")
    outbox = start(
        ["jobs/membership_outbox.py", "--trigger", args.outbox_trigger], root, bench / "outbox.log"
    )
    cycles: list[str] = []
    arrived: list[tuple[float, str]] = []  # (time.time() the stream printed it, line)

    def pump(proc: subprocess.Popen, sink: list[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            sink.append(line.rstrip("\n"))
            if sink is cycles:
                arrived.append((time.time(), sink[-1]))

    threading.Thread(target=pump, args=(stream, cycles), daemon=True).start()
    threading.Thread(target=pump, args=(outbox, []), daemon=True).start()
    json_dir = root / "outbox" / "membership"
    try:
        # Wait for both to be running steadily: a first cycle done and the outbox caught up
        # with the initial build (its entries are in the JSON files).
        deadline = time.monotonic() + args.timeout
        while not any(c.startswith("cycle ") for c in cycles) or not glob.glob(str(json_dir / "batch=*")):
            if time.monotonic() > deadline or stream.poll() is not None or outbox.poll() is not None:
                raise SystemExit("stream or outbox did not start; see the logs in " + str(bench))
            time.sleep(0.5)

        def land(ids: range) -> dict[str, float]:
            at: dict[str, float] = {}
            for i in ids:
                moment = dt.datetime.now(dt.timezone.utc)
                body = events_file(i, moment, with_identify=not args.known_visitors)
                landing.put(f"events/{moment:%Y-%m-%d}/bench-{i:03d}.jsonl", body)
                at[email(i)] = time.time()
                time.sleep(args.spacing)
            deadline = time.monotonic() + args.timeout
            while not all(e in outbox_entries(json_dir) for e in at) and time.monotonic() < deadline:
                time.sleep(0.5)
            return at

        if args.warmup:
            print(f"stream and outbox running; {args.warmup} warm-up files (not measured)...", flush=True)
            land(range(args.files, args.files + args.warmup))
        print("stream and outbox running; landing files...", flush=True)
        landed = land(range(args.files))
        seen = outbox_entries(json_dir)
    finally:
        stop(stream)
        stop(outbox)
        # kept for reading what each cycle and front tick did
        (bench / "stream.out").write_text(
            "".join(f"{at:.1f} {line}\n" for at, line in arrived), encoding="utf-8"
        )

    latencies = [seen[e] - landed[e] for e in landed if e in seen]
    missing = [e for e in landed if e not in seen]
    phases: dict[str, list[float]] = {}
    busy = [c for c in cycles if c.startswith("cycle ") and "nothing new" not in c]
    fronts = [c for c in cycles if c.startswith("front ") and ": 0 files" not in c]
    for line in busy:
        for name, secs in PHASE.findall(line):
            phases.setdefault(name, []).append(float(secs))
    print()
    print(
        f"trigger {args.trigger}, outbox trigger {args.outbox_trigger}, {args.files} files every {args.spacing:g} s"
    )
    print(
        f"lake: {args.customers} demo customers x {args.days} days + {args.files} bench contacts; {os.cpu_count()} cores"
    )
    visitors = (
        "known to identity before the stream" if args.known_visitors else "identified in their own file"
    )
    lane = "off" if args.no_realtime_lane else "on (as configured)"
    print(f"bench visitors: {visitors}; real-time lane: {lane}; warm-up files: {args.warmup}")
    if latencies:
        print(
            f"landing -> outbox latency over {len(latencies)} files: p50 {percentile(latencies, 0.5):.1f} s, "
            f"p95 {percentile(latencies, 0.95):.1f} s, max {max(latencies):.1f} s"
        )
    split = front_split(landed, seen, arrived)
    if split:
        front_part, outbox_part = zip(*split, strict=True)
        print(
            f"  of which landing -> end of the front tick that took the file: p50 "
            f"{percentile(list(front_part), 0.5):.1f} s, p95 {percentile(list(front_part), 0.95):.1f} s; "
            f"then -> outbox: p50 {percentile(list(outbox_part), 0.5):.1f} s, "
            f"p95 {percentile(list(outbox_part), 0.95):.1f} s"
        )
    if missing:
        print(f"NOT SEEN within the timeout: {len(missing)} files ({', '.join(missing[:5])}...)")
    print(f"gold cycles with new data: {len(busy)}; mean seconds per phase:")
    for name, values in sorted(phases.items(), key=lambda kv: -statistics.mean(kv[1])):
        print(f"  {name:<11} {statistics.mean(values):6.1f}")
    if fronts:
        front_phases: dict[str, list[float]] = {}
        for line in fronts:
            for name, secs in PHASE.findall(line):
                front_phases.setdefault(name, []).append(float(secs))
        total = [sum(float(x) for _, x in PHASE.findall(line)) for line in fronts]
        print(
            f"front ticks with files: {len(fronts)}, median {statistics.median(total):.1f} s; mean per phase:"
        )
        for name, values in sorted(front_phases.items(), key=lambda kv: -statistics.mean(kv[1])):
            print(f"  {name:<11} {statistics.mean(values):6.1f}")


if __name__ == "__main__":
    main()
