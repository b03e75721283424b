"""The batch manifest: one line per job, read and validated whole before anything runs.

CSV (a header row, then one row per line) or JSON lines (one object per line), by extension
(.csv; .jsonl / .ndjson). Columns:

    id, audio, emotion, intensity, takes, seed, actor, portrait, video

and, optionally, any other generate setting (fps, temperature, blinks, phone_guidance): every
setting is validated by the one GenerateSettings, so a value out of range is refused here with the
line that holds it. `id` names the line's output folder, `audio` is required, an empty cell takes
the setting's default. `portrait` renders the plates of take 1 (as `flowvq render` does).
`actor` and `video` are accepted as columns but not supported yet: a non-empty value is refused.

Relative paths are taken relative to the manifest's folder. Every path must be readable at the
same place on every node of the cluster: providing that shared storage is the user's part; the
driver checks it here, up front, so a typo fails in a second rather than on a worker an hour in.
No Ray import here: the CLI validates a manifest without starting anything.
"""
from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

from flowvq_shared.protocol import ProtocolError
from flowvq_shared.settings import GenerateSettings, parse_emotion_keys

from ..errors import BadRequest

SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
RESERVED_IDS = {"batch.json", ".batch"}
PATH_COLUMNS = ("audio", "portrait")
UNSUPPORTED = {"actor": "per-actor models", "video": "video reference lines"}
SETTING_FIELDS = {f.name: f for f in fields(GenerateSettings)}
COLUMNS = ("id", "audio", "emotion", "intensity", "takes", "seed", "actor", "portrait", "video",
           *(n for n in SETTING_FIELDS if n not in ("emotion", "intensity", "takes", "seed")))
SHARED_STORAGE = ("every path must be readable at the same place on every node (shared storage, "
                  "e.g. an NFS/SMB mount, is yours to provide)")


@dataclass(frozen=True)
class Line:
    """One validated manifest line (plain values: it travels to a Ray worker)."""

    id: str
    audio: str  # absolute path
    settings: dict  # GenerateSettings.to_wire()
    portrait: str | None = None  # absolute path, or None
    number: int = 0  # line number in the manifest (for messages)
    extra: dict = field(default_factory=dict)  # reserved (actor, video) once supported

    @property
    def generate_settings(self) -> GenerateSettings:
        return GenerateSettings.from_wire(self.settings)

    def spec(self) -> dict:
        """What defines this line's output: a finished line whose spec differs is redone."""
        return {"audio": self.audio, "settings": self.settings, "portrait": self.portrait}


def read_manifest(path: str | Path) -> list[Line]:
    """Parse and validate a whole manifest; BadRequest names the first problem (and counts the rest)."""
    path = Path(path)
    if not path.is_file():
        raise BadRequest(f"manifest not found: {path}")
    ext = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise BadRequest(f"cannot read manifest {path}: {e}") from None
    if ext == ".csv":
        rows = _csv_rows(path, text)
    elif ext in (".jsonl", ".ndjson"):
        rows = _jsonl_rows(path, text)
    else:
        raise BadRequest(f"manifest {path}: unknown extension {ext!r}; use .csv or .jsonl")
    if not rows:
        raise BadRequest(f"manifest {path} has no lines")
    base = path.resolve().parent
    problems: list[str] = []
    lines: list[Line] = []
    seen: dict[str, int] = {}
    for number, row in rows:
        try:
            line = _line(row, number, base)
        except (BadRequest, ProtocolError) as e:
            problems.append(f"{path.name} line {number}{_id_of(row)}: {e.message}")
            continue
        key = line.id.lower()  # case-insensitive: the output may live on a Windows/macOS share
        if key in seen:
            problems.append(f"{path.name} line {number}: id {line.id!r} is used again "
                            f"(first on line {seen[key]}); ids name output folders and must be unique")
            continue
        seen[key] = number
        lines.append(line)
    if problems:
        more = f" (and {len(problems) - 1} more problem{'s' * (len(problems) > 2)})" if len(problems) > 1 else ""
        raise BadRequest(problems[0] + more)
    return lines


def _id_of(row: dict) -> str:
    v = row.get("id")
    return f" (id {v!r})" if isinstance(v, str) and v else ""


def _csv_rows(path: Path, text: str) -> list[tuple[int, dict]]:
    reader = csv.reader(text.splitlines())
    try:
        header = next(reader)
    except StopIteration:
        raise BadRequest(f"manifest {path} is empty") from None
    header = [h.strip().lower() for h in header]
    _check_columns(path, header)
    if len(set(header)) != len(header):
        dup = sorted({h for h in header if header.count(h) > 1})
        raise BadRequest(f"manifest {path}: column {dup[0]!r} appears twice in the header")
    rows = []
    for cells in reader:
        number = reader.line_num
        if not any(c.strip() for c in cells) or cells[0].lstrip().startswith("#"):
            continue  # blank lines and comments
        if len(cells) > len(header):
            raise BadRequest(f"{path.name} line {number}: {len(cells)} cells but the header has "
                             f"{len(header)} columns")
        rows.append((number, {h: c.strip() for h, c in zip(header, cells)}))
    return rows


def _jsonl_rows(path: Path, text: str) -> list[tuple[int, dict]]:
    rows = []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as e:
            raise BadRequest(f"{path.name} line {number}: not JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise BadRequest(f"{path.name} line {number}: a JSON object is expected, got "
                             f"{type(obj).__name__}")
        _check_columns(path, list(obj), number)
        rows.append((number, {k.lower(): v for k, v in obj.items()}))
    return rows


def _check_columns(path: Path, names: list[str], number: int | None = None) -> None:
    where = f"{path.name} line {number}" if number else f"manifest {path.name}"
    unknown = [n for n in names if n.lower() not in COLUMNS]
    if unknown:
        raise BadRequest(f"{where}: unknown column {unknown[0]!r}; the columns are {', '.join(COLUMNS)}")
    for need in ("id", "audio"):
        if need not in [n.lower() for n in names]:
            raise BadRequest(f"{where}: the column {need!r} is required")


def _empty(v) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


def _line(row: dict, number: int, base: Path) -> Line:
    ident = row.get("id")
    if _empty(ident):
        raise BadRequest("the id is empty")
    ident = str(ident).strip()
    if not SAFE_ID.match(ident) or ident.lower() in RESERVED_IDS:
        raise BadRequest(f"id {ident!r} cannot name a folder: use letters, digits, '.', '_' and '-' "
                         "(up to 128, starting with a letter or digit)")
    for col, what in UNSUPPORTED.items():
        if not _empty(row.get(col)):
            raise BadRequest(f"column {col!r} ({what}) is not supported yet: leave it empty")
    values = {n: _convert(n, row[n]) for n in SETTING_FIELDS if n in row and not _empty(row[n])}
    if ":" in str(values.get("emotion", "")):  # "sad:0,happy@0.6:4.2": emotion keys, as in the CLI
        values["emotion_keys"] = parse_emotion_keys(values["emotion"], values.get("intensity", 1.0))
        values["emotion"] = values["emotion_keys"][0][0]
    settings = GenerateSettings(**values)
    if _empty(row.get("audio")):
        raise BadRequest("the audio path is empty")
    audio = _readable(row["audio"], "audio", base)
    portrait = None if _empty(row.get("portrait")) else _readable(row["portrait"], "portrait", base)
    return Line(id=ident, audio=audio, settings=settings.to_wire(), portrait=portrait, number=number)


def _convert(name: str, v):
    """A manifest cell -> the setting's type (CSV cells are strings; JSON values may be typed)."""
    kind = SETTING_FIELDS[name].type
    if not isinstance(v, str):
        return v  # GenerateSettings says what is wrong with a typed JSON value
    s = v.strip()
    try:
        if kind in ("int", int):
            return int(s)
        if kind in ("float", float):
            return float(s)
    except ValueError:
        what = "an integer" if kind in ("int", int) else "a number"
        raise BadRequest(f"field '{name}' must be {what}, got {s!r}") from None
    if kind in ("bool", bool):
        low = s.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise BadRequest(f"field '{name}' must be true or false, got {s!r}")
    return s


def _readable(value, column: str, base: Path) -> str:
    p = Path(os.path.expanduser(str(value).strip()))
    if not p.is_absolute():
        p = base / p
    p = Path(os.path.abspath(p))
    if not p.is_file():
        raise BadRequest(f"{column} file not found: {p} ({SHARED_STORAGE})")
    if not os.access(p, os.R_OK):
        raise BadRequest(f"{column} file is not readable: {p} ({SHARED_STORAGE})")
    return str(p)
