"""What a runtime command is asked to do, as plain dataclasses: built once by `cli.py` from the
command line, and read by everything below it (nothing below `cli.py` sees argparse).

Each field is named after its command-line option (`--gate-db` is `DetectorSettings.gate_db`) and
its default lives here, next to it, so a config file can fill the same dataclasses: one section
per class (`[stream]`, `[detector]`, ...), one key per field. Field names are unique across the
sections, which lets `cli.py` map an option to its section by name alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from realtime_sed.errors import SedError
from realtime_sed.events import DetectorConfig
from realtime_sed.windows import DEFAULT_HOP_SECONDS

DEFAULT_MODEL = "convdb"
CLASSIFY_BLOCK_SIZE = 88200  # samples per block read: several windows per batched CNN call
MIN_BLOCK_SIZE = 1024  # smaller blocks only multiply the per-block overhead (0 took 7 minutes)
HOLD_AT_S = 32.0  # screenshots: the demo's dog bark at 31 s is in progress here, six events are done


@dataclass
class StreamSettings:
    """The model and how often it looks."""

    model: str = DEFAULT_MODEL  # a name in models/ or a path to an .onnx file
    hop: float = DEFAULT_HOP_SECONDS  # seconds between successive 4 s windows
    threads: int = 1  # ONNX Runtime threads


@dataclass
class ClassSettings:
    """A config file's [classes.NAME] section: this class's own values (None: the run's)."""

    threshold: float | None = None
    off_threshold: float | None = None
    min_duration: float | None = None
    enabled: bool = True  # false: this class raises no events


@dataclass
class DetectorSettings:
    """Window probabilities -> events. None means: the model card's value (else the detector's)."""

    smooth: int = DetectorConfig.smooth
    smooth_method: str = DetectorConfig.smooth_method
    threshold: float | None = None
    off_threshold: float | None = None
    min_duration: float = DetectorConfig.min_duration
    classes: tuple[str, ...] | None = None  # allow-list of classes that may raise events
    gate_db: float = DetectorConfig.gate_db
    per_class: dict[str, ClassSettings] = field(default_factory=dict)  # a config file's [classes.NAME]


@dataclass
class SourceSettings:
    """Where the audio comes from: a file if `file` is set, else the microphone `device`."""

    device: str | None = None  # index or part of a name; None: the default input
    file: str | None = None
    realtime: bool = False  # pace a file like a live input
    duration: float | None = None  # stop after this many seconds of audio


@dataclass
class OutputSettings:
    """Where `listen` reports what it hears."""

    events: str | None = None  # append events to this JSONL file ("-": standard output)
    windows: bool = False  # also log every window's probabilities (listen --events, classify jsonl)
    no_tui: bool = False  # print events instead of drawing the dashboard
    verbose: bool = False  # headless: also print each window's top classes
    exec: str | None = None  # run this command (shlex-split, no shell) for every finished event
    exec_timeout: float = 10.0
    webhook: str | None = None  # POST every finished event's JSON here
    mqtt: str | None = None  # mqtt[s]://[user@]host[:port][/prefix]
    mqtt_discovery: bool = False  # also publish Home Assistant discovery configs
    clips: str | None = None  # save every finished event's audio in this folder
    pre_roll: float = 2.0  # seconds of clip before the onset (from audio already heard)
    post_roll: float = 1.0  # seconds of clip after the offset
    clip_format: str = "flac"  # flac, wav or ogg; 22050 Hz mono, as the detector heard it
    clips_max_mb: float | None = None  # delete the oldest clips beyond this many MB


@dataclass
class ClassifySettings:
    """`classify`: files through the streaming path as fast as possible."""

    files: tuple[str, ...] = ()
    format: str = "tsv"  # tsv (DCASE), jsonl or csv
    output: str | None = None  # None: standard output
    block_size: int = CLASSIFY_BLOCK_SIZE
    quiet: bool = False  # no progress bar
    manifest: str | None = None  # also classify the paths listed here, one per line
    recursive: bool = False  # walk directories into their subdirectories
    glob: str | None = None  # only files matching this pattern in walked directories
    engine: str = "local"  # local: this process; ray: a pool of Ray workers (the cluster extra)
    ray_address: str | None = None  # an existing Ray cluster (else RAY_ADDRESS, else a local Ray)
    workers: int | None = None  # Ray workers, one classifier each (default: the cluster's CPUs)
    output_dir: str | None = None  # one output file per input here, instead of one combined output
    skip_done: bool = False  # resume: skip inputs already written (needs --output or --output-dir)


@dataclass
class BenchSettings:
    """`bench`: the model is `StreamSettings.model`, the audio `SourceSettings.file`."""

    hours: float = 0.0  # also replay this many hours (looped) and report RSS growth
    json: str | None = None  # also write the figures here
    compare: str | None = None  # a peer .tflite model to run on the same audio (needs ai-edge-litert)
    rounds: int = 5  # --compare: alternate rounds of ours and the peer
    dashboard: float = 0.0  # also measure the live dashboard's CPU over this many seconds (Linux)


@dataclass
class DevicesSettings:
    """`devices`: the input devices PortAudio sees."""

    as_json: bool = False  # one JSON list instead of a table


@dataclass
class ScreenshotSettings:
    """`screenshot`: the dashboard over the demo, held mid-stream, drawn into an SVG."""

    out: str = "docs/dashboard.svg"
    size: str = "100x30"  # terminal COLSxROWS
    at: float = HOLD_AT_S  # seconds of the demo replayed before it holds

    @property
    def terminal_size(self) -> tuple[int, int]:
        try:
            cols, rows = (int(n) for n in self.size.lower().split("x"))
        except ValueError:
            raise SedError(f"size {self.size!r}: expected COLSxROWS, e.g. 100x30") from None
        return cols, rows


@dataclass
class ConfigSettings:
    """`--config FILE.toml` (listen, classify) and `config --print`."""

    config: str | None = None  # a TOML file filling these settings; the command line overrides it
    print_config: bool = False  # `config --print`: write the effective settings as TOML


@dataclass
class Settings:
    """Every section together: what one run of a runtime command is given."""

    stream: StreamSettings = field(default_factory=StreamSettings)
    detector: DetectorSettings = field(default_factory=DetectorSettings)
    source: SourceSettings = field(default_factory=SourceSettings)
    output: OutputSettings = field(default_factory=OutputSettings)
    classify: ClassifySettings = field(default_factory=ClassifySettings)
    bench: BenchSettings = field(default_factory=BenchSettings)
    screenshot: ScreenshotSettings = field(default_factory=ScreenshotSettings)
    devices: DevicesSettings = field(default_factory=DevicesSettings)
    config: ConfigSettings = field(default_factory=ConfigSettings)

    def check(self) -> None:
        """Refuses, before any work, values the types allow but no run can use (the hop is checked
        by the windower, the smoothing by the detector)."""
        def refuse(option: str, value, rule: str) -> None:
            raise SedError(f"{option} {value:g}: {rule}")

        detector = self.detector
        for option, value in (("--threshold", detector.threshold), ("--off-threshold", detector.off_threshold)):
            if value is not None and not 0.0 <= value <= 1.0:  # NaN too
                refuse(option, value, "a probability between 0 and 1")
        for name, own in detector.per_class.items():
            for key in ("threshold", "off_threshold"):
                value = getattr(own, key)
                if value is not None and not 0.0 <= value <= 1.0:
                    refuse(f"[classes.{name}] {key}", value, "a probability between 0 and 1")
            if own.min_duration is not None and not 0.0 <= own.min_duration < float("inf"):
                refuse(f"[classes.{name}] min_duration", own.min_duration, "give 0 s or more")
        if not 0.0 <= detector.min_duration < float("inf"):
            refuse("--min-duration", detector.min_duration, "give 0 s or more")
        if not -float("inf") < detector.gate_db <= 0.0:
            refuse("--gate-db", detector.gate_db, "a level in dBFS is 0 or below")
        for given in (*self.classify.files, self.source.file):
            if given == "-":
                raise SedError("reading audio from standard input is not supported: save it to a file "
                               "first (e.g. ffmpeg -i IN -ar 22050 audio.wav) and pass its path")
        if self.stream.threads < 1:
            refuse("--threads", self.stream.threads, "give at least 1 thread")
        if self.source.duration is not None and not self.source.duration > 0:  # NaN too
            refuse("--duration", self.source.duration, "give a positive number of seconds")
        if self.classify.block_size < MIN_BLOCK_SIZE:
            refuse("--block-size", self.classify.block_size, f"give at least {MIN_BLOCK_SIZE} samples")
        if self.classify.workers is not None and self.classify.workers < 1:
            refuse("--workers", self.classify.workers, "give at least 1 worker")
        out = self.output
        for option, value in (("--pre-roll", out.pre_roll), ("--post-roll", out.post_roll)):
            if not 0.0 <= value <= 60.0:
                refuse(option, value, "give 0 to 60 seconds")
        if out.clips_max_mb is not None and not 0 < out.clips_max_mb < float("inf"):
            refuse("--clips-max-mb", out.clips_max_mb, "give a positive number of MB")
        if self.bench.rounds < 1:
            refuse("--rounds", self.bench.rounds, "give at least 1 round")
        if not 0 <= self.bench.hours < float("inf"):
            refuse("--hours", self.bench.hours, "give 0 (no soak) or a positive number of hours")

    @classmethod
    def section_of(cls) -> dict[str, str]:
        """Field name -> the section that holds it (names are unique across sections)."""
        owner: dict[str, str] = {}
        for section in fields(cls):
            for f in fields(section.default_factory):
                assert f.name not in owner, f"{f.name} is in both {owner.get(f.name)} and {section.name}"
                owner[f.name] = section.name
        return owner
