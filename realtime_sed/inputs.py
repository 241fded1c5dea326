"""What `classify` is asked to read: files, directories walked for audio, and manifests.

A directory is walked when the run asks for it (`--recursive`, `--glob`, or `--engine ray`, which
is meant for archives); otherwise it is passed on as it is, and the file reader reports it. Order is
kept (inputs in order, each directory sorted) and duplicates are dropped, so local and Ray runs see
the same list.
"""

from __future__ import annotations

from pathlib import Path

from realtime_sed.errors import SedError
from realtime_sed.settings import ClassifySettings

AUDIO_GLOB = "*.[wofmWOFM][aglpAGLP]*"  # wav, ogg, flac, mp3 (and their upper-case spellings)
AUDIO_SUFFIXES = {".wav", ".ogg", ".flac", ".mp3", ".oga", ".aiff", ".aif"}


def read_manifest(path: str | Path) -> list[str]:
    """One path per line; blank lines and lines starting with # are skipped. Relative paths are
    relative to the manifest's folder."""
    manifest = Path(path)
    try:
        lines = manifest.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SedError(f"{manifest}: cannot read the manifest ({type(exc).__name__})") from None
    out = []
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            p = Path(line)
            out.append(str(p if p.is_absolute() else manifest.parent / p))
    return out


def expand_inputs(inputs: tuple[str, ...] | list[str], manifest: str | None = None, recursive: bool = False,
                  glob: str | None = None, walk: bool = False) -> list[str]:
    """Files to classify, in order. Directories are walked when `walk`, `recursive` or `glob`."""
    paths = list(inputs) + (read_manifest(manifest) if manifest else [])
    walk = walk or recursive or glob is not None
    out: list[str] = []
    for item in paths:
        p = Path(item)
        if walk and p.is_dir():
            pattern = glob or "*"
            found = p.rglob(pattern) if recursive else p.glob(pattern)
            out += [str(f) for f in sorted(found)
                    if f.is_file() and (glob is not None or f.suffix.lower() in AUDIO_SUFFIXES)]
        else:
            out.append(str(item))
    return out


def classify_inputs(opts: ClassifySettings) -> list[str]:
    """The files of a `classify` run; Ray runs always walk directories."""
    files = expand_inputs(opts.files, opts.manifest, opts.recursive, opts.glob, walk=opts.engine == "ray")
    if not files:
        raise SedError("no input files (give files or directories, or --manifest)")
    return files
