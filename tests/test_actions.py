"""Actions against real parts: a mosquitto broker and an http.server on 127.0.0.1, real commands."""

from __future__ import annotations

import http.server
import json
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

from realtime_sed.actions import ActionSink
from realtime_sed.actions.command import ExecAction
from realtime_sed.actions.mqtt import MqttAction, parse_mqtt_url
from realtime_sed.actions.webhook import WebhookAction
from realtime_sed.errors import SedError
from realtime_sed.events import Event

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
needs_mosquitto = pytest.mark.skipif(not shutil.which(MOSQUITTO), reason="mosquitto not installed "
                                     "(scripts/setup.sh installs it)")
EVENTS = [Event("dog_bark", 1.0, 3.5, 0.9), Event("siren", 4.0, 6.0, 0.8),
          Event("car_horn", 7.0, 7.5, 0.7, clip="/tmp/x.flac")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, tmp_path, persistent: bool = False):
        """`persistent`: sessions (a subscriber's queued messages) survive a restart."""
        self.port = free_port()
        self.conf = tmp_path / "mosquitto.conf"
        keep = f"persistence true\npersistence_location {tmp_path}/\n" if persistent else ""
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n{keep}")
        self.proc = None

    def start(self) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path)
    b.start()
    yield b
    if b.proc.poll() is None:
        b.stop()


class Subscriber:
    """A real paho client recording every message under a topic filter."""

    def __init__(self, port: int, topic: str = "#", persistent: bool = False):
        """`persistent`: a session the broker keeps (with what it queued) while this is away."""
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, str, bool]] = []
        self.ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sub-{port}",
                                  clean_session=not persistent)
        self.client.reconnect_delay_set(0.2, 0.5)
        self.client.on_connect = lambda c, u, f, rc, p: (c.subscribe(topic, qos=1), self.ready.set())
        self.client.on_message = lambda c, u, m: self.messages.append(
            (m.topic, m.payload.decode(), bool(m.retain)))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.ready.wait(5)
        time.sleep(0.2)

    def on(self, topic: str) -> list[str]:
        return [p for t, p, _ in self.messages if t == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def feed(sink: ActionSink, events=EVENTS) -> None:
    for ev in events:
        sink.active("demo.ogg", [ev])
        sink.active("demo.ogg", [])
        sink.event("demo.ogg", ev)


@needs_mosquitto
def test_mqtt_publishes_events_states_status_and_discovery(broker):
    sub = Subscriber(broker.port)
    action = MqttAction(f"mqtt://127.0.0.1:{broker.port}/home/sed", discovery=True)
    sink = ActionSink([action])
    feed(sink)
    sink.close()
    time.sleep(0.3)
    sub.close()
    events = [json.loads(p) for p in sub.on("home/sed/event")]
    assert [(e["label"], e["onset"], e["offset"]) for e in events] == [(e.label, e.onset, e.offset) for e in EVENTS]
    assert events[2]["clip"] == "/tmp/x.flac"
    assert sub.on("home/sed/dog_bark") == ["OFF", "ON", "OFF"]
    assert sub.on("home/sed/status") == ["online", "offline"]
    config = json.loads(sub.on("homeassistant/binary_sensor/home_sed/siren/config")[0])
    assert config["state_topic"] == "home/sed/siren" and config["availability_topic"] == "home/sed/status"
    h = action.health()
    assert (h.failed, h.dropped) == (0, 0) and h.sent == 3 + 10 + 2 * 3


@needs_mosquitto
def test_mqtt_last_will_says_offline_when_the_client_dies(broker, tmp_path):
    code = (f"import time; from realtime_sed.actions import ActionSink; "
            f"from realtime_sed.actions.mqtt import MqttAction; "
            f"s = ActionSink([MqttAction('mqtt://127.0.0.1:{broker.port}')]); time.sleep(30)")
    proc = subprocess.Popen([sys.executable, "-c", code])
    sub = Subscriber(broker.port, "realtime-sed/status")
    deadline = time.time() + 10
    while "online" not in sub.on("realtime-sed/status") and time.time() < deadline:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    deadline = time.time() + 10  # the broker notices the dead socket at once (RST)
    while "offline" not in sub.on("realtime-sed/status") and time.time() < deadline:
        time.sleep(0.05)
    sub.close()
    assert sub.on("realtime-sed/status")[-1] == "offline"


@needs_mosquitto
def test_mqtt_backlog_survives_a_broker_restart_and_counts_drops(broker):
    action = MqttAction(f"mqtt://127.0.0.1:{broker.port}", queue_size=20)
    sink = ActionSink([action])
    deadline = time.time() + 5
    while action.health().sent < 10 and time.time() < deadline:  # the initial OFF states
        time.sleep(0.05)
    broker.stop()
    time.sleep(0.5)
    t0 = time.perf_counter()
    for i in range(30):  # 30 while the broker is away: one in hand and 20 queued wait, 9 are dropped
        sink.event("demo.ogg", Event("dog_bark", float(i), i + 1.0, 0.9))
        while i == 0 and action.health().queued:  # the worker holds the first one
            time.sleep(0.01)
    assert time.perf_counter() - t0 < 0.5  # offering never waits on the network
    assert action.state() == "reconnecting"
    broker.start()
    sub = Subscriber(broker.port, "realtime-sed/event")
    sink.close(timeout=15)
    time.sleep(0.3)
    sub.close()
    h = action.health()
    got = [json.loads(p)["onset"] for p in sub.on("realtime-sed/event")]
    assert (h.dropped, h.failed) == (9, 0)
    assert got == [float(i) for i in range(21)]  # the backlog in order, each once
    assert h.sent == 10 + 21  # the initial OFF states, then the backlog


def test_mqtt_url_forms():
    t = parse_mqtt_url("mqtts://ha@broker.lan/garden")
    assert (t.host, t.port, t.prefix, t.tls, t.user) == ("broker.lan", 8883, "garden", True, "ha")
    t = parse_mqtt_url("mqtt://10.0.0.2:1999")
    assert (t.port, t.prefix, t.tls, t.user) == (1999, "realtime-sed", False, None)
    for bad in ("http://x", "mqtt://u:secret@x", "mqtt://x/a/#", "mqtt://"):
        with pytest.raises(SedError):
            parse_mqtt_url(bad)


class BaseHook(http.server.BaseHTTPRequestHandler):
    received: list = []
    keys: list = []  # the Idempotency-Key of every POST, answered or not
    fail_first = 0
    hang_s = 0.0
    late_first = 0  # this many POSTs are answered after late_s, the rest at once
    late_s = 0.0

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).keys.append(self.headers["Idempotency-Key"])
        if type(self).late_first > 0:
            type(self).late_first -= 1
            time.sleep(type(self).late_s)
        if type(self).hang_s:
            time.sleep(type(self).hang_s)
        if type(self).fail_first > 0:
            type(self).fail_first -= 1
            self.send_response(503)
            self.end_headers()
            return
        type(self).received.append((self.headers["Content-Type"], json.loads(body)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def hook_server():
    # A class of its own per test: a handler still asleep from an earlier test records there.
    global Hook
    Hook = type("Hook", (BaseHook,), {"received": [], "keys": [], "fail_first": 0, "hang_s": 0.0,
                                      "late_first": 0, "late_s": 0.0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    server.Hook = Hook
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


Hook = BaseHook


def test_webhook_posts_json_and_retries_with_backoff(hook_server):
    Hook.fail_first = 2
    action = WebhookAction(f"http://127.0.0.1:{hook_server.server_port}/hook", backoff=0.05)
    sink = ActionSink([action])
    feed(sink)
    sink.close()
    assert [ct for ct, _ in Hook.received] == ["application/json"] * 3
    assert [r["label"] for _, r in Hook.received] == [e.label for e in EVENTS]
    assert Hook.received[0][1] == {"type": "event", "file": "demo.ogg", **EVENTS[0].to_dict()}
    h = action.health()
    assert (h.sent, h.failed, h.dropped) == (3, 0, 0)


def test_webhook_that_hangs_times_out_fails_and_drops_beyond_its_queue(hook_server):
    Hook.hang_s = 3.0
    action = WebhookAction(f"http://127.0.0.1:{hook_server.server_port}/", timeout=0.3, retries=0,
                           queue_size=2)
    sink = ActionSink([action])
    t0 = time.perf_counter()
    for i in range(6):
        sink.event("a.wav", Event("siren", float(i), i + 1.0, 0.9))
    assert time.perf_counter() - t0 < 0.2
    sink.close(timeout=10)
    h = action.health()
    assert h.sent == 0 and h.failed + h.dropped == 6 and h.dropped >= 3 and "timed out" in h.last_error


def test_webhook_refuses_a_bad_url():
    with pytest.raises(SedError):
        WebhookAction("ftp://x/")


def test_exec_gets_json_on_stdin_and_env_and_a_label_cannot_inject(tmp_path):
    out = tmp_path / "out.jsonl"
    script = tmp_path / "hook.py"
    script.write_text("import json, os, sys\n"
                      "line = sys.stdin.readline()\n"
                      "rec = {'stdin': json.loads(line), 'nl': line.endswith('\\n'), 'argv': sys.argv[1:],\n"
                      "       'env': {k: v for k, v in os.environ.items() if k.startswith('RSED_')}}\n"
                      f"open({str(out)!r}, 'a').write(json.dumps(rec) + '\\n')\n")
    evil = "dog; touch PWNED $(touch PWNED2) `touch PWNED3`"
    action = ExecAction(f"{sys.executable} {script} 'an arg' $HOME")
    sink = ActionSink([action])
    sink.event(f"{tmp_path}/x'; rm -rf ~ #.wav", Event(evil, 1.0, 2.0, 0.75, clip="/c.flac"))
    sink.event("b.wav", Event("siren", 3.0, 4.0, 0.5))
    sink.close(timeout=20)
    rows = sorted((json.loads(x) for x in out.read_text().splitlines()), key=lambda r: r["stdin"]["onset"])
    assert len(rows) == 2 and all(r["nl"] for r in rows)
    assert rows[0]["argv"] == ["an arg", "$HOME"]  # no shell: no variable expansion either
    assert rows[0]["stdin"]["label"] == evil
    assert rows[0]["env"] == {"RSED_LABEL": evil, "RSED_ONSET": "1.0000", "RSED_OFFSET": "2.0000",
                              "RSED_PEAK": "0.7500", "RSED_SOURCE": f"{tmp_path}/x'; rm -rf ~ #.wav",
                              "RSED_CLIP": "/c.flac"}
    assert "RSED_CLIP" not in rows[1]["env"]
    assert not list(tmp_path.glob("PWNED*")) and not list(tmp_path.parent.glob("PWNED*"))
    assert action.health().sent == 2


def test_exec_timeout_and_failures_are_counted_and_commands_run_in_parallel():
    action = ExecAction("sleep 5", timeout=0.5, jobs=2)
    sink = ActionSink([action])
    t0 = time.perf_counter()
    for i in range(2):
        sink.event("a.wav", Event("siren", float(i), i + 1.0, 0.9))
    assert time.perf_counter() - t0 < 0.2
    sink.close(timeout=10)
    assert time.perf_counter() - t0 < 1.5  # two timeouts of 0.5 s side by side
    h = action.health()
    assert (h.sent, h.failed) == (0, 2) and "timed out" in h.last_error
    bad = ExecAction("false")
    sink = ActionSink([bad])
    sink.event("a.wav", Event("siren", 0.0, 1.0, 0.9))
    sink.close()
    assert bad.health().failed == 1 and bad.health().last_error.startswith("exit 1")


def test_exec_refuses_a_missing_command_or_bad_quoting():
    with pytest.raises(SedError, match="not found"):
        ExecAction("no-such-command-here x")
    with pytest.raises(SedError):
        ExecAction("echo 'unclosed")



def test_classify_waits_for_a_slow_action_instead_of_dropping(hook_server):
    """classify hands events over with `wait`: a full queue holds the files back, nothing is
    dropped; listen's way (no wait) drops and counts."""
    Hook.hang_s = 0.2
    url = f"http://127.0.0.1:{hook_server.server_port}/"
    events = [Event("siren", float(i), i + 1.0, 0.9) for i in range(5)]
    waiting = WebhookAction(url, queue_size=1)
    sink = ActionSink([waiting], wait=True)
    for ev in events:
        sink.event("a.wav", ev)
    sink.close(timeout=10)
    assert (waiting.health().sent, waiting.health().dropped) == (5, 0)
    assert [r["onset"] for _, r in Hook.received] == [ev.onset for ev in events]
    live = WebhookAction(url, queue_size=1)
    sink = ActionSink([live])
    for ev in events:
        sink.event("b.wav", ev)
    sink.close(timeout=10)
    assert live.health().dropped >= 3 and live.health().sent + live.health().dropped == 5


def test_classify_sends_every_event_to_exec_and_webhook(hook_server, tmp_path):
    from tests.conftest import DEMO, run_cli

    out, ran = tmp_path / "events.jsonl", tmp_path / "ran.jsonl"
    script = tmp_path / "hook.py"
    script.write_text(f"import sys\nopen({str(ran)!r}, 'a').write(sys.stdin.readline())\n")
    r = run_cli("classify", DEMO, "--format", "jsonl", "-o", out, "--exec", f"{sys.executable} {script}",
                "--webhook", f"http://127.0.0.1:{hook_server.server_port}/", "--clips", tmp_path / "clips",
                timeout=120)
    assert r.returncode == 0, r.stderr
    logged = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(logged) >= 5 and all(e["clip"] for e in logged)
    assert [rec for _, rec in Hook.received] == logged  # the same JSON, clip included, in order
    assert sorted(map(json.dumps, map(json.loads, ran.read_text().splitlines()))) == sorted(map(json.dumps, logged))
    assert f"webhook: sent {len(logged)}, failed 0, dropped 0" in r.stderr
    assert f"exec: sent {len(logged)}, failed 0, dropped 0" in r.stderr


def test_a_post_answered_too_late_is_sent_again_with_the_same_key(hook_server):
    """At least once: the server got the first POST but answered after the timeout, so the event
    arrives twice, and both carry one Idempotency-Key (a receiver can drop the second)."""
    Hook.late_first, Hook.late_s = 1, 1.0
    action = WebhookAction(f"http://127.0.0.1:{hook_server.server_port}/", timeout=0.3, backoff=0.05)
    sink = ActionSink([action])
    sink.event("a.wav", Event("siren", 0.0, 1.0, 0.9))
    sink.event("a.wav", Event("siren", 2.0, 3.0, 0.9))
    sink.close(timeout=10)
    time.sleep(1.2)  # the slow handler finishes too
    assert sorted(r["onset"] for _, r in Hook.received) == [0.0, 0.0, 2.0]  # the first twice
    assert Hook.keys[0] == Hook.keys[1] != Hook.keys[2] and len(Hook.keys) == 3
    assert (action.health().sent, action.health().failed) == (2, 0)
