"""What the tests expect of today's shipped default model on the bundled demo, in one place.

Most tests are about the runtime, not the model, but they need inputs the model reacts to: a clip
it names, a stretch in which it finds events. Those choices follow from the shipped model's
behaviour (see `realtime-sed experiments demo` and docs/results.md), so re-shipping a model means checking
them here, changing what no longer holds, and redrawing the dashboard snapshots
(`pytest tests/test_tui.py --snapshot-update`). Nothing else in tests/ names the model's outputs.
"""

from __future__ import annotations

from realtime_sed.settings import DEFAULT_MODEL
from tests.conftest import REPO

MODEL = REPO / "models" / f"{DEFAULT_MODEL}.onnx"
"""The model the CLI runs by default, which every runtime test uses."""

STEADY_LABEL = "jackhammer"
"""A steady sound it names from the demo's clip, also looped to 30 s (dashboard, microphone)."""

IMPULSIVE_LABEL = "dog_bark"
"""An impulsive sound it names from the demo's clip."""

EVENTFUL_LABELS = ("dog_bark", "children_playing")
"""Demo clips (looped to 5-7 s) in which it finds at least one event, whatever its label."""

LOOPED_SIREN_TOP_CLASS = "siren"
"""Its top class, averaged over the windows, for the demo's siren looped to 6 s."""

TWO_EVENT_STRETCH_S = (19.0, 26.0)
"""Demo seconds in which it finds at least two events, the last still open at the end (the end of
the jackhammer, children playing). No 6 s stretch of the demo has two for this model."""

TWO_EVENT_LONG_STRETCH_S = (19.0, 31.0)
"""12 demo seconds in which it finds at least two events, the first ending about 3 s in (the end of
the jackhammer, children playing)."""

CUT_IN_AN_EVENT_S = 74.0
"""The demo cut here (a file cut, or `listen --duration`) ends inside an event it logs (the air
conditioner, from about 70 s), and it logs at least five events before. (This model's last event
on the whole demo also runs to the end; the cut keeps the tests from depending on that.)"""
