"""--exec: runs a command for every finished event, never through a shell.

The command line is split once with shlex; a label or a file name only ever reaches the command as
its stdin (the event's JSON, one line) and as RSED_* environment variables, never as shell text.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import time

from realtime_sed.actions import QUEUE_SIZE, Action, ActionFailed, Message
from realtime_sed.errors import SedError

EXEC_TIMEOUT_S = 10.0
EXEC_JOBS = 2  # commands running at once
POLL_S = 0.2  # how often a running command's worker looks at the run's abort
PASSWORD_ENV = "RSED_MQTT_PASSWORD"  # not handed on to the command


def command_env(record: dict) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}
    env.update(RSED_LABEL=record["label"], RSED_ONSET=f"{record['onset']:.4f}",
               RSED_OFFSET=f"{record['offset']:.4f}", RSED_PEAK=f"{record['peak']:.4f}",
               RSED_SOURCE=str(record["file"]))
    if record.get("clip"):
        env["RSED_CLIP"] = str(record["clip"])
    return env


class ExecAction(Action):
    name = "exec"

    def __init__(self, command: str, timeout: float = EXEC_TIMEOUT_S, jobs: int = EXEC_JOBS,
                 queue_size: int = QUEUE_SIZE):
        try:
            self.argv = shlex.split(command)
        except ValueError as exc:
            raise SedError(f"--exec: cannot split {command!r}: {exc}") from None
        if not self.argv:
            raise SedError("--exec: empty command")
        if shutil.which(self.argv[0]) is None:
            raise SedError(f"--exec: command not found: {self.argv[0]}")
        if timeout <= 0 or jobs < 1:
            raise SedError("--exec-timeout must be above 0 and --exec-jobs at least 1")
        super().__init__(queue_size, workers=jobs)
        self.timeout = timeout

    def handle(self, message: Message) -> None:
        record = message.record
        try:
            proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True, env=command_env(record))
        except OSError as exc:
            raise ActionFailed(str(exc)) from None
        payload: str | None = json.dumps(record) + "\n"
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                _, err = proc.communicate(payload, timeout=min(POLL_S, max(0.0, deadline - time.monotonic())))
                break
            except subprocess.TimeoutExpired:
                payload = None  # handed over on the first call; later calls only wait
                # The run's end gave up waiting (abort), or the command overran: it is killed, not
                # left running after realtime-sed has gone.
                if self.abort.is_set() or time.monotonic() >= deadline:
                    proc.kill()
                    proc.communicate()
                    raise ActionFailed("stopped at exit" if self.abort.is_set()
                                       else f"timed out after {self.timeout:g} s") from None
        if proc.returncode != 0:
            tail = err.strip().splitlines()[-1:] or [""]
            raise ActionFailed(f"exit {proc.returncode} {tail[0]}".strip())
