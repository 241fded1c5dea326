"""--mqtt: publishes events and each class's ON/OFF state to an MQTT broker, for Home Assistant.

Topics under PREFIX (default realtime-sed):
  PREFIX/event     the JSON of every finished event
  PREFIX/<class>   ON when the class goes on, OFF when it goes off (retained)
  PREFIX/status    online (retained); the broker's last will says offline
With discovery, homeassistant/binary_sensor/<node>/<class>/config makes each class a binary sensor.
paho-mqtt's network thread reconnects by itself; until it has, messages wait in the action's
bounded queue (the backlog) and what overflows is counted as dropped.
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from realtime_sed.actions import END, FINISHED, QUEUE_SIZE, START, Action, Message
from realtime_sed.constants import CLASSES
from realtime_sed.errors import SedError

DEFAULT_PREFIX = "realtime-sed"
PASSWORD_ENV = "RSED_MQTT_PASSWORD"
PORTS = {"mqtt": 1883, "mqtts": 8883}
DISCOVERY_PREFIX = "homeassistant"
KEEPALIVE_S = 30
RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 10
QOS = 1  # the broker acknowledges each message, so `sent` means received


@dataclass(frozen=True)
class MqttTarget:
    host: str
    port: int
    prefix: str
    tls: bool
    user: str | None = None

    @property
    def node_id(self) -> str:
        """Home Assistant's id for this detector: the prefix, in the characters it allows."""
        return re.sub(r"[^A-Za-z0-9_-]", "_", self.prefix)


def parse_mqtt_url(url: str) -> MqttTarget:
    """mqtt[s]://[user@]host[:port][/prefix]; a password belongs in RSED_MQTT_PASSWORD."""
    parts = urlsplit(url)
    if parts.scheme not in PORTS or not parts.hostname:
        raise SedError(f"--mqtt: {url!r} is not mqtt://[user@]host[:port][/prefix] (or mqtts://)")
    if parts.password is not None:
        raise SedError(f"--mqtt: put the password in {PASSWORD_ENV}, not in the URL "
                       "(the process list shows the URL)")
    try:
        port = parts.port or PORTS[parts.scheme]
    except ValueError:
        raise SedError(f"--mqtt: bad port in {url!r}") from None
    prefix = parts.path.strip("/") or DEFAULT_PREFIX
    if "+" in prefix or parts.fragment or parts.query or url.endswith("#"):
        raise SedError(f"--mqtt: the prefix {prefix!r} may not hold MQTT wildcards (+ #)")
    return MqttTarget(parts.hostname, port, prefix, parts.scheme == "mqtts",
                      unquote(parts.username) if parts.username else None)


def discovery_config(target: MqttTarget, label: str) -> tuple[str, dict]:
    """Home Assistant's MQTT discovery: one binary sensor per class, available while we are."""
    topic = f"{DISCOVERY_PREFIX}/binary_sensor/{target.node_id}/{label}/config"
    return topic, {
        "name": label.replace("_", " ").capitalize(),
        "unique_id": f"{target.node_id}_{label}",
        "state_topic": f"{target.prefix}/{label}",
        "payload_on": "ON",
        "payload_off": "OFF",
        "availability_topic": f"{target.prefix}/status",
        "payload_available": "online",
        "payload_not_available": "offline",
        "device_class": "sound",
        "device": {"identifiers": [target.node_id], "name": f"realtime-sed {target.prefix}",
                   "manufacturer": "realtime-sed"},
    }


class MqttAction(Action):
    name = "mqtt"
    kinds = frozenset({START, END, FINISHED})

    def __init__(self, url: str, discovery: bool = False, classes: tuple[str, ...] = CLASSES,
                 queue_size: int = QUEUE_SIZE):
        import paho.mqtt.client as mqtt

        super().__init__(queue_size)
        self.target = parse_mqtt_url(url)
        self.discovery, self.classes = discovery, classes
        self._connected = threading.Event()
        self._ever_connected = False
        self._acks = threading.Condition()
        self._acked: set[int] = set()  # message ids the broker acknowledged, until their worker sees it
        self._unwaited: set[int] = set()  # ids of messages no worker waits for (status, discovery)
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                             client_id=f"realtime-sed-{os.getpid()}-{id(self):x}",
                             protocol=mqtt.MQTTv311)
        if self.target.user:
            client.username_pw_set(self.target.user, os.environ.get(PASSWORD_ENV))
        if self.target.tls:
            client.tls_set()
        client.will_set(self._topic("status"), "offline", qos=QOS, retain=True)
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self.client = client
        for label in classes:  # a known state for every sensor, in order before any event
            self.offer(Message(END, label))

    def _topic(self, leaf: str) -> str:
        return f"{self.target.prefix}/{leaf}"

    def start(self) -> None:
        try:
            self.client.connect_async(self.target.host, self.target.port, KEEPALIVE_S)
        except (OSError, ValueError) as exc:
            raise SedError(f"--mqtt: cannot connect to {self.target.host}:{self.target.port}: {exc}") from None
        self.client.loop_start()
        super().start()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.last_error = f"broker refused: {reason_code}"
            return
        # Acknowledgements of these are nobody's to wait for. This runs on paho's network thread,
        # which handles no acknowledgement before it returns, so none can come before its id is here.
        info = client.publish(self._topic("status"), "online", qos=QOS, retain=True)
        with self._acks:
            self._unwaited.add(info.mid)
        if self.discovery:
            for label in self.classes:
                topic, config = discovery_config(self.target, label)
                info = client.publish(topic, json.dumps(config), qos=QOS, retain=True)
                with self._acks:
                    self._unwaited.add(info.mid)
        self._ever_connected = True
        self.last_error = ""
        self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()
        if reason_code != 0:
            self.last_error = f"disconnected: {reason_code}"

    def state(self) -> str:
        if self._connected.is_set():
            return "connected"
        return "reconnecting" if self._ever_connected else "connecting"

    def handle(self, message: Message) -> None:
        if message.kind == FINISHED:
            topic, payload, retain = self._topic("event"), json.dumps(message.record), False
        else:
            topic, payload, retain = self._topic(message.label), "ON" if message.kind == START else "OFF", True
        while not self._connected.wait(0.2):  # the backlog waits here for the broker
            if self.abort.is_set():
                raise ConnectionError("broker unreachable")
        # Not under our lock: paho's network thread holds its own message lock while it calls
        # _on_publish, which takes ours, and publish() takes paho's; holding ours here deadlocked
        # (found in a hung test: a worker publishing while the broker's ack of an earlier message
        # came in). An ack that comes before the wait below starts is kept in _acked.
        info = self.client.publish(topic, payload, qos=QOS, retain=retain)
        with self._acks:
            # Once queued in paho (even if the connection dropped meanwhile), a QoS 1 message is
            # resent after a reconnect until the broker acknowledges it: wait for that rather
            # than publishing it twice.
            while info.mid not in self._acked:
                if self.abort.is_set():
                    raise ConnectionError("not acknowledged")
                self._acks.wait(0.2)
            self._acked.discard(info.mid)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._acks:
            if mid in self._unwaited:  # status and discovery: no worker waits for these
                self._unwaited.discard(mid)
                return
            self._acked.add(mid)
            self._acks.notify_all()

    def close(self) -> None:
        if self._connected.is_set():
            self.client.publish(self._topic("status"), "offline", qos=QOS, retain=True).wait_for_publish(1.0)
        self.client.disconnect()
        self.client.loop_stop()
