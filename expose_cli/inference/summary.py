"""The run's ``summary.json``: every unit's record in input order, the videos, whether the run
completed; rewritten (atomically) as units finish and at the end."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from expose_cli.inference.boxes import NO_PERSON
from expose_cli.utils.atomic import write_json_atomic

if TYPE_CHECKING:
    from expose_cli.inference.units import Unit


def unit_record(unit: Unit) -> dict:
    """A unit's line in the summary (and its ``result.json``); no boxes and no error: ``NO_PERSON``."""
    record = {"input": str(unit.item.path), "frame": unit.frame, "output": str(unit.out_dir),
              "persons": len(unit.results), "files": unit.files, "timings": unit.timings, "error": unit.error}
    if unit.warnings:
        record["warnings"] = unit.warnings
    if unit.error is None and not unit.boxes:
        record["error"] = NO_PERSON
    return record


@dataclass
class Summary:
    """The run's ``summary.json``: every unit's record, the videos, whether the run completed.

    :meth:`add` rewrites the file (atomically) at most every ``interval_s`` seconds and passes the
    record to ``on_unit``; :meth:`write` with ``force`` rewrites it now."""

    path: Path
    interval_s: float = 1.0
    on_unit: Callable[[dict], None] | None = None
    records: list[dict] = field(default_factory=list)
    videos: dict[Path, dict] = field(default_factory=dict)  # video folder -> input, fps, overlay / error
    complete: bool = False
    runtime: dict | None = None  # what ran the backbones (backends.runtime_info)
    last_write: float = float("-inf")
    lock: threading.RLock = field(default_factory=threading.RLock)  # the inputs stage adds videos

    def as_dict(self) -> dict:
        with self.lock:
            failed = sum(1 for r in self.records if r.get("error") and r["error"] != NO_PERSON)
            failed += sum(1 for v in self.videos.values() if v.get("error"))
            out = {"inputs": list(self.records), "failed": failed, "complete": self.complete}
            if self.runtime is not None:
                out["runtime"] = self.runtime
            if self.videos:
                out["videos"] = [dict(v, output=str(folder)) for folder, v in self.videos.items()]
        return out

    def write(self, force: bool = False) -> None:
        now = time.perf_counter()
        if force or now - self.last_write >= self.interval_s:
            write_json_atomic(self.path, self.as_dict())
            self.last_write = now

    def add_video(self, folder: Path, video: dict) -> None:
        with self.lock:
            self.videos[folder] = video

    def add(self, record: dict) -> None:
        self.records.append(record)
        self.write()
        if self.on_unit:
            self.on_unit(record)
