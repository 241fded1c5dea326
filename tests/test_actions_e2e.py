"""The real CLI on the bundled demo with every action on (--exec, --webhook, --mqtt, --clips): each
finished event reaches each action exactly once, as the JSONL log has it; the broker restarting
mid-run loses nothing; a source name full of shell metacharacters reaches a command as data.

An earlier draft of the first test saw the webhook get 2 events more than the log. They were
('siren', 0.0, 1.0) and ('siren', 1.0, 2.0) from the hanging-webhook test run just before it:
that test's server handlers slept 3 s, woke during this test and recorded into the one handler
class the tests then shared. Each test has its own handler class now (the hook_server fixture),
and the receiver below also checks every POST's file and Idempotency-Key, so a stray or
repeated POST fails the test instead of hiding in a count.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

import soundfile as sf

from tests.conftest import DEMO, REPO, run_cli
from tests.shipped import TWO_EVENT_LONG_STRETCH_S
from tests.test_actions import Broker, Subscriber, broker, hook_server, needs_mosquitto  # noqa: F401

KEY = lambda e: (e["label"], e["onset"], e["offset"])  # noqa: E731


def recorder(tmp_path, out) -> str:
    """An --exec command (a real Python script) that appends its stdin, its RSED_* environment
    and whether the clip already exists to `out`."""
    script = tmp_path / "hook.py"
    script.write_text("import json, os, sys\nline = sys.stdin.readline()\n"
                      "env = {k: v for k, v in os.environ.items() if k.startswith('RSED_')}\n"
                      "clip = env.get('RSED_CLIP')\n"
                      "rec = {'stdin': json.loads(line), 'env': env, 'clip_ready': bool(clip) and os.path.getsize(clip) > 0}\n"
                      f"open({str(out)!r}, 'a').write(json.dumps(rec) + '\\n')\n")
    return f"{sys.executable} {script}"


def events_of(log) -> list[dict]:
    return [r for r in map(json.loads, log.read_text().splitlines()) if r["type"] == "event"]


@needs_mosquitto
def test_listen_on_the_demo_sends_every_event_to_every_action_once(broker, hook_server, tmp_path):  # noqa: F811
    Hook = hook_server.Hook
    log, ran, clips = tmp_path / "events.jsonl", tmp_path / "ran.jsonl", tmp_path / "clips"
    sub = Subscriber(broker.port, "#")
    r = run_cli("listen", "--no-tui", "--file", DEMO, "--events", log, "--exec", recorder(tmp_path, ran),
                "--webhook", f"http://127.0.0.1:{hook_server.server_port}/", "--mqtt",
                f"mqtt://127.0.0.1:{broker.port}/sed", "--mqtt-discovery", "--clips", clips, timeout=120)
    time.sleep(0.3)
    sub.close()
    assert r.returncode == 0, r.stderr
    logged = events_of(log)
    assert len(logged) >= 5 and all(e["file"] == "urban-demo.ogg" and os.path.exists(e["clip"]) for e in logged)
    # webhook: the log's records, in order, one POST each (distinct keys: no retry, no stray POST)
    assert [rec for _, rec in Hook.received] == logged
    assert len(Hook.keys) == len(set(Hook.keys)) == len(logged)
    # MQTT: the same records on sed/event, in order; each class ON once per event, ending OFF
    assert [json.loads(p) for p in sub.on("sed/event")] == logged
    for label in {e["label"] for e in logged}:
        states = sub.on(f"sed/{label}")
        assert states.count("ON") == sum(e["label"] == label for e in logged) and states[-1] == "OFF"
    assert sub.on("sed/status") == ["online", "offline"]
    assert len([t for t, _, _ in sub.messages if t.startswith("homeassistant/binary_sensor/sed/")]) == 10
    # exec: every record once (two commands run at once, so in any order), its clip already whole
    runs = [json.loads(x) for x in ran.read_text().splitlines()]
    assert sorted(map(KEY, (x["stdin"] for x in runs))) == sorted(map(KEY, logged))
    by_key = {KEY(e): e for e in logged}
    for x in runs:
        e = by_key[KEY(x["stdin"])]
        assert x["stdin"] == e and x["clip_ready"] and x["env"]["RSED_CLIP"] == e["clip"]
        assert x["env"]["RSED_LABEL"] == e["label"] and x["env"]["RSED_SOURCE"] == "urban-demo.ogg"
    for name in ("exec", "webhook", "mqtt"):
        assert f"{name}: sent " in r.stderr and ", failed 0, dropped 0" in r.stderr.split(f"{name}: sent ")[1].split("\n")[0]
    assert f"clips: written {len(logged)}, failed 0" in r.stderr


@needs_mosquitto
def test_the_broker_restarting_mid_run_loses_no_event(tmp_path, demo_audio):
    """A paced replay of 12 s of the demo with two events; the broker is stopped once listen's
    client is online and is back 3 s later. The client reconnects and sends its backlog: every
    logged event once, in order; nothing dropped."""
    stretch = tmp_path / "stretch.wav"
    start, end = TWO_EVENT_LONG_STRETCH_S
    sf.write(stretch, demo_audio[int(start * 22050): int(end * 22050)], 22050)
    broker = Broker(tmp_path, persistent=True)  # so the test's own subscriber misses nothing either
    broker.start()
    sub = Subscriber(broker.port, "realtime-sed/#", persistent=True)
    log = tmp_path / "events.jsonl"

    def restart():
        deadline = time.time() + 60
        while "online" not in sub.on("realtime-sed/status") and time.time() < deadline:
            time.sleep(0.05)
        broker.stop()
        time.sleep(3.0)
        broker.start()

    bouncer = threading.Thread(target=restart)
    bouncer.start()
    try:
        r = run_cli("listen", "--no-tui", "--file", stretch, "--realtime", "--events", log, "--mqtt",
                    f"mqtt://127.0.0.1:{broker.port}", timeout=120)
    finally:
        bouncer.join()
    deadline = time.time() + 10
    logged = events_of(log)
    while len(sub.on("realtime-sed/event")) < len(logged) and time.time() < deadline:
        time.sleep(0.1)
    sub.close()
    broker.stop()
    assert r.returncode == 0, r.stderr
    assert len(logged) >= 2
    assert sub.on("realtime-sed/status")[:1] == ["online"]  # it was connected before the broker went
    assert [json.loads(p) for p in sub.on("realtime-sed/event")] == logged
    assert "mqtt: sent " in r.stderr and "failed 0, dropped 0" in r.stderr.split("mqtt: sent ")[1], r.stderr
    assert "dropped 0 samples" in r.stderr


def test_a_source_name_full_of_shell_metacharacters_reaches_the_command_as_data(tmp_path, demo_audio):
    evil = tmp_path / "x'; touch PWNED; $(touch PWNED2) `touch PWNED3` & echo >PWNED4 #.wav"
    sf.write(evil, demo_audio[: 12 * 22050], 22050)
    ran = tmp_path / "ran.jsonl"
    r = run_cli("listen", "--no-tui", "--file", evil, "--exec", recorder(tmp_path, ran), timeout=120)
    assert r.returncode == 0, r.stderr
    runs = [json.loads(x) for x in ran.read_text().splitlines()]
    assert runs and all(x["env"]["RSED_SOURCE"] == evil.name == x["stdin"]["file"] for x in runs)
    for folder in (tmp_path, REPO):  # the command's folder, and the CLI's
        assert not [p for p in os.listdir(folder) if p.startswith("PWNED")]
