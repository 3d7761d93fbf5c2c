"""JSONL reading with errors that name the file and line, and atomic writing.

Nothing already written is lost or left half-written: whole files are written to a temporary file in the
same folder and renamed into place; append-only logs (predictions) are appended line by line with flush,
and a torn last line (a crash mid-write) is detected and dropped on read.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from t2s_fast.errors import T2SError


def json_error(exc: json.JSONDecodeError) -> str:
    """A parser's complaint as one phrase with its column: "Expecting ',' delimiter at column 12",
    "Unterminated string starting at column 5" (the message already ends in "at" there)."""
    return f"{exc.msg.removesuffix(' at').removesuffix(':')} at column {exc.colno}"


def read_jsonl(path: str | os.PathLike, *, required: Iterable[str] = (),
               tolerate_torn_tail: bool = False) -> list[dict]:
    """Read a JSONL file. A malformed line or a missing required field raises T2SError naming file and line.

    With ``tolerate_torn_tail``, an unparsable *last* line without a trailing newline (a crash mid-append)
    is ignored instead of being an error.
    """
    return list(iter_jsonl(path, required=required, tolerate_torn_tail=tolerate_torn_tail))


def iter_jsonl(path: str | os.PathLike, *, required: Iterable[str] = (),
               tolerate_torn_tail: bool = False) -> Iterator[dict]:
    for _, record in iter_numbered_jsonl(path, required=required, tolerate_torn_tail=tolerate_torn_tail):
        yield record


def iter_numbered_jsonl(path: str | os.PathLike, *, required: Iterable[str] = (),
                        tolerate_torn_tail: bool = False) -> Iterator[tuple[int, dict]]:
    """(line number in the file, record) for each non-blank line: what error messages should cite."""
    path = Path(path)
    if not path.is_file():
        raise T2SError(f"{path}: file not found")
    required = tuple(required)
    with path.open("rb") as fh:
        raw_lines = fh.readlines()
    lines = []
    for lineno, raw in enumerate(raw_lines, start=1):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            if tolerate_torn_tail and lineno == len(raw_lines) and not raw.endswith(b"\n"):
                lines.append("")  # a multi-byte character cut by a crash mid-append: a torn tail
                continue
            raise T2SError(f"{path}:{lineno}: not valid UTF-8 (byte {exc.start + 1} of the line)") from None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            is_torn_tail = lineno == len(lines) and not line.endswith("\n")
            if tolerate_torn_tail and is_torn_tail:
                return
            raise T2SError(f"{path}:{lineno}: malformed JSON ({json_error(exc)})") from None
        if not isinstance(record, dict):
            raise T2SError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
        missing = [k for k in required if k not in record]
        if missing:
            raise T2SError(f"{path}:{lineno}: missing field(s) {', '.join(repr(m) for m in missing)}")
        yield lineno, record


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.is_file():
        raise T2SError(f"{path}: file not found")
    try:
        with path.open("r", encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise T2SError(f"{path}:{exc.lineno}: malformed JSON ({json_error(exc)})") from None
    except UnicodeDecodeError as exc:
        raise T2SError(f"{path}: not valid UTF-8 (byte offset {exc.start})") from None


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8"):
    """Open a temporary file beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the mode a plain open() would
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> int:
    """Atomically write records as JSONL; returns the number written."""
    n = 0
    with atomic_open(path) as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            n += 1
    return n


def write_json(path: str | os.PathLike, obj: Any, *, indent: int = 2) -> None:
    with atomic_open(path) as fh:
        json.dump(obj, fh, indent=indent, ensure_ascii=False, default=str)
        fh.write("\n")


def append_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> None:
    """Append records and fsync, so a finished batch survives a crash of the next one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
