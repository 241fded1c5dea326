"""CPU of the live dashboard, as README's Performance section measures it: a real
`realtime-sed listen --file demo/urban-demo.ogg --realtime` (the dashboard, hop 0.5 s) in a 100x30
pseudo-terminal; utime + stime of the whole process (every thread) from /proc/PID/stat over a
steady stretch after 8 s of start-up, as a share of one core, and the peak RSS (VmHWM).

    .venv/bin/python scripts/dashboard_cpu.py [SECONDS] [REPO]

REPO (default: this checkout) is put on PYTHONPATH, so another checkout's runtime can be measured
with this venv's packages beside this one's, in one sitting. Linux only.
"""

import fcntl
import os
import pty
import select
import signal
import struct
import sys
import termios
import time
from pathlib import Path

seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 40.0
root = Path(sys.argv[2] if len(sys.argv) > 2 else Path(__file__).resolve().parent.parent).resolve()
env = dict(os.environ, TERM="xterm-256color", COLUMNS="100", LINES="30", PYTHONPATH=str(root))
pid, fd = pty.fork()
if pid == 0:
    os.chdir(root)
    os.execve(sys.executable, [sys.executable, "-m", "realtime_sed", "listen", "--file",
                               str(root / "demo" / "urban-demo.ogg"), "--realtime"], env)
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
tick = os.sysconf("SC_CLK_TCK")


def cpu_s() -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick


def drain(until: float) -> None:
    """Reads what the dashboard draws, so it never blocks on a full terminal."""
    while time.monotonic() < until:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                os.read(fd, 65536)
            except OSError:
                return


drain(time.monotonic() + 8)  # start-up: imports, the model, the first windows
c0, t0 = cpu_s(), time.monotonic()
drain(t0 + seconds)
c1, t1 = cpu_s(), time.monotonic()
hwm = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmHWM"))
os.kill(pid, signal.SIGTERM)
drain(time.monotonic() + 3)
os.waitpid(pid, 0)
print(f"dashboard over {t1 - t0:.0f} s: {100 * (c1 - c0) / (t1 - t0):.2f}% of one core, "
      f"peak RSS {int(hwm.split()[1]) / 1024:.1f} MB")
