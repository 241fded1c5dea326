"""--webhook: POSTs every finished event's JSON, with retries and backoff, from its own thread."""

from __future__ import annotations

import json
import uuid
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from realtime_sed.actions import QUEUE_SIZE, Action, ActionFailed, Message
from realtime_sed.errors import SedError

WEBHOOK_TIMEOUT_S = 5.0
WEBHOOK_RETRIES = 3  # attempts after the first
BACKOFF_S = 0.5  # first wait between attempts; doubles each time
PERMANENT = range(400, 500)  # client errors: another attempt would get the same answer...
TRANSIENT = (408, 429)  # ...except these


class WebhookAction(Action):
    name = "webhook"

    def __init__(self, url: str, timeout: float = WEBHOOK_TIMEOUT_S, retries: int = WEBHOOK_RETRIES,
                 backoff: float = BACKOFF_S, queue_size: int = QUEUE_SIZE):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SedError(f"--webhook: {url!r} is not an http:// or https:// URL")
        if timeout <= 0 or retries < 0:
            raise SedError("--webhook-timeout must be above 0 and --webhook-retries at least 0")
        super().__init__(queue_size)
        self.url, self.timeout, self.retries, self.backoff = url, timeout, retries, backoff

    def _post(self, body: bytes, key: str) -> None:
        request = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": "realtime-sed", "Idempotency-Key": key})
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            response.read()

    def handle(self, message: Message) -> None:
        body = json.dumps(message.record).encode()
        # Delivery is at least once: a POST the server received but answered after the timeout
        # is sent again. Every attempt for one event carries the same key, so a receiver can tell.
        key = uuid.uuid4().hex
        error = ""
        for attempt in range(self.retries + 1):
            try:
                self._post(body, key)
                return
            except urllib.error.HTTPError as exc:
                error = f"HTTP {exc.code}"
                if exc.code in PERMANENT and exc.code not in TRANSIENT:
                    break
            except (urllib.error.URLError, OSError) as exc:  # refused, reset, timed out
                error = str(getattr(exc, "reason", exc)) or type(exc).__name__
            if attempt < self.retries and self.abort.wait(self.backoff * 2 ** attempt):
                break
        raise ActionFailed(error)
