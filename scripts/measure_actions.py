"""Issue 13's figures: a paced (`--realtime`) `listen` of the bundled demo with all four actions on
(--exec, --webhook, --mqtt, --clips), against a real mosquitto and an http.server on 127.0.0.1.

Prints the dropped samples (listen's own summary), the CPU of listen (user + sys seconds of the
listen process over its wall time, from /proc; its --exec children apart), and per event the
latency from the event leaving the detector (its line on listen's stdout, which the event printer
writes just before the actions are handed the event) to its MQTT message and its webhook POST,
and from the moment the event's end was heard (paced: the start + its offset) to both.

    .venv/bin/python scripts/measure_actions.py [--exec CMD] [--json out.json]
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from realtime_sed.constants import DEMO_FILE  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu(pid: int) -> tuple[float, float] | None:
    """(own user+sys, waited-for children user+sys) seconds of a running process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime) / TICK, (cutime + cstime) / TICK


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exec", default="true", help="the --exec command (default: true)")
    ap.add_argument("--file", default=str(DEMO_FILE))
    ap.add_argument("--json", default=None)
    opts = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rsed-measure-"))
    port = free_port()
    (tmp / "mosquitto.conf").write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    broker = subprocess.Popen([mosquitto, "-c", str(tmp / "mosquitto.conf")], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            break
        except OSError:
            time.sleep(0.05)

    arrivals = {"mqtt": {}, "webhook": {}}
    key = lambda r: (r["label"], r["onset"], r["offset"])  # noqa: E731

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            t = time.time()
            rec = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            arrivals["webhook"].setdefault(key(rec), t)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    import paho.mqtt.client as mqtt

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="measure")
    ready = threading.Event()
    sub.on_connect = lambda c, u, f, rc, p: (c.subscribe("realtime-sed/event", qos=1), ready.set())
    sub.on_message = lambda c, u, m: arrivals["mqtt"].setdefault(key(json.loads(m.payload)), time.time())
    sub.connect("127.0.0.1", port)
    sub.loop_start()
    ready.wait(5)

    cmd = [sys.executable, "-m", "realtime_sed", "listen", "--no-tui", "--file", opts.file, "--realtime",
           "--events", str(tmp / "events.jsonl"), "--exec", opts.exec,
           "--webhook", f"http://127.0.0.1:{server.server_port}/", "--mqtt", f"mqtt://127.0.0.1:{port}",
           "--clips", str(tmp / "clips")]
    print("command:", " ".join(cmd[1:]), file=sys.stderr)
    t_launch = time.time()
    listen = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    printed: list[float] = []
    started: list[float] = []
    stderr_lines: list[str] = []

    def read_out():
        for _ in listen.stdout:
            printed.append(time.time())

    def read_err():
        for line in listen.stderr:
            if line.startswith("listening to") and not started:
                started.append(time.time())
            stderr_lines.append(line)

    readers = [threading.Thread(target=read_out), threading.Thread(target=read_err)]
    for t in readers:
        t.start()
    last = None
    while listen.poll() is None:
        sample = proc_cpu(listen.pid)
        if sample is not None:
            last = (time.time(), sample)
        time.sleep(0.2)
    t_end = time.time()
    for t in readers:
        t.join()
    time.sleep(0.5)
    sub.loop_stop()
    server.shutdown()
    broker.terminate()
    broker.wait(5)

    stderr = "".join(stderr_lines)
    summary = re.search(r"dropped (\d+) samples, (\d+) overflows", stderr)
    events = [r for r in map(json.loads, (tmp / "events.jsonl").read_text().splitlines()) if r["type"] == "event"]
    wall = (last[0] if last else t_end) - t_launch
    own_cpu, children_cpu = last[1] if last else (float("nan"), float("nan"))
    rows = []
    for ev, t_out in zip(events, printed):
        heard = started[0] + ev["offset"] if started else float("nan")
        rows.append({"label": ev["label"], "offset": ev["offset"], "cut_short": ev["cut_short"],
                     "emitted_after_end_heard_s": t_out - heard,
                     **{f"{k}_after_emit_ms": (arrivals[k][key(ev)] - t_out) * 1e3 if key(ev) in arrivals[k] else None
                        for k in ("mqtt", "webhook")},
                     **{f"{k}_after_end_heard_s": arrivals[k][key(ev)] - heard if key(ev) in arrivals[k] else None
                        for k in ("mqtt", "webhook")}})
    result = {"command": " ".join(cmd[1:]), "rc": listen.returncode, "events": len(events),
              "clips": len(list((tmp / "clips").iterdir())),
              "dropped_samples": int(summary.group(1)) if summary else None,
              "overflows": int(summary.group(2)) if summary else None,
              "wall_s": wall, "listen_cpu_s": own_cpu, "listen_cpu_share": own_cpu / wall,
              "exec_children_cpu_s": children_cpu, "per_event": rows,
              "stderr_tail": stderr.splitlines()[-6:]}
    for k in ("mqtt", "webhook"):
        ms = [r[f"{k}_after_emit_ms"] for r in rows if r[f"{k}_after_emit_ms"] is not None]
        heard = [r[f"{k}_after_end_heard_s"] for r in rows if r[f"{k}_after_end_heard_s"] is not None]
        result[f"{k}_after_emit_ms_median_max"] = (statistics.median(ms), max(ms)) if ms else None
        result[f"{k}_after_end_heard_s_median_max"] = (statistics.median(heard), max(heard)) if heard else None
        result[f"{k}_received"] = len(arrivals[k])
    print(json.dumps(result, indent=1))
    if opts.json:
        Path(opts.json).write_text(json.dumps(result, indent=1))
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if listen.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
