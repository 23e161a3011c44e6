"""Kill `expose` commands at chosen points of their progress (SIGINT, SIGKILL) without paying for a
fresh Python and torch import per kill.

A helper process (:class:`Zygote`) imports torch and the CLI once, without running any torch
operation (OpenMP's thread pool does not survive ``fork``), then forks one child per command. The
child runs ``expose ARGS`` in-process with a *hook*: a wrapper around one function of the command's
progress (a finished input, a training step, a written block of rows, a temporary file created)
that appends a line to a progress file; at the chosen count it holds the command there for a few
seconds, while the test kills it (:meth:`Zygote.kill_at`). The outputs are untouched by the hooks.

Run as ``python -m tests.interruptions`` it is the helper (requests and answers: one JSON line each).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

#: progress-file prefix of each hook, and what it wraps (module, attribute, how)
HOOKS = {
    "unit": ("expose_cli.inference.summary", "Summary.add"),
    "step": ("expose_cli.training.hooks", "MetricLog.after_step"),  # logged, before last_every's save
    "rows": ("expose_cli.data.hdf5", "HDF5Writer.append_block", "HDF5Writer.append"),
    "batch": ("expose_cli.evaluation.benchmark", "predictions"),
    "temp": ("expose_cli.utils.atomic", "temp_path_for"),
}


def _note(progress: Path, name: str, at: int, hold: float) -> None:
    """One line more in the progress file; at line ``at``, wait up to ``hold`` seconds for the
    signal (the test then writes ``<progress>.sent``)."""
    with open(progress, "a", encoding="utf-8") as fh:
        fh.write(name + "\n")
    if len(progress.read_text().splitlines()) == at:
        deadline, sent = time.monotonic() + hold, progress.with_suffix(".sent")
        while time.monotonic() < deadline and not sent.exists():  # a signal's handler runs between sleeps
            time.sleep(0.01)


def _wrap(name: str, fn, progress: Path, at: int, hold: float):
    def after(*args, **kwargs):
        out = fn(*args, **kwargs)
        _note(progress, name, at, hold)
        return out

    def ticking(*args, **kwargs):  # eval: the progress callback (its 5th argument) is the hook
        args = list(args)
        tick = args[4]
        args[4] = lambda n, _tick=tick: (_tick(n) if _tick else None, _note(progress, name, at, hold))
        return fn(*args, **kwargs)

    return ticking if name == "batch" else after


def install_hooks(names: list[str], progress: Path, at: int, hold: float) -> None:
    """Wrap the functions of ``names`` (keys of :data:`HOOKS`) in this process."""
    import importlib

    for name in names:
        module_name, *attrs = HOOKS[name]
        module = importlib.import_module(module_name)
        for attr in attrs:
            owner, _, last = attr.rpartition(".")
            target = getattr(module, owner) if owner else module
            setattr(target, last, _wrap(name, getattr(target, last), progress, at, hold))
        if name == "temp":  # modules that imported it by name
            hdf5 = importlib.import_module("expose_cli.data.hdf5")
            hdf5.temp_path_for = module.temp_path_for


def _child(request: dict) -> None:
    """The forked command: output to the log file, hooks in, ``expose ARGS``; never returns."""
    code = 99
    try:
        fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        install_hooks(request["hooks"], Path(request["progress"]), request["at"], request["hold"])
        from expose_cli.cli.app import main

        code = main(request["argv"])
    except BaseException:  # noqa: BLE001 - reported in the log, the status says it
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    """The helper's loop: ``start`` forks a command (answers its pid), ``wait`` / ``poll`` its status."""
    import torch  # noqa: F401 - imported once, before any fork

    import expose_cli.cli.app  # noqa: F401
    for module_name, *_ in HOOKS.values():
        __import__(module_name)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "start":
            pid = os.fork()
            if pid == 0:
                _child(request)
            answer = {"pid": pid}
        else:
            flags = os.WNOHANG if request["op"] == "poll" else 0
            done, status = os.waitpid(request["pid"], flags)
            answer = {"code": os.waitstatus_to_exitcode(status) if done else None}
        print(json.dumps(answer), flush=True)


class Zygote:
    """The helper process, seen from the test."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.runs = 0
        import torch

        # the threads of this process: results of a run in the helper and one here agree bit for bit
        env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads()),
               "PYTHONPATH": str(Path(__file__).parent.parent)}
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.interruptions"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)
        assert self._read() == {"ready": True}

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the interruption helper stopped")
        return json.loads(line)

    def _ask(self, request: dict) -> dict:
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def kill_at(self, argv: list, hook: str, count: int, sig: int, hold: float = 3.0,
                timeout: float = 120.0) -> tuple[int, str]:
        """Run ``expose argv`` with ``hook``; once its progress file has ``count`` lines (the command
        waits there ``hold`` seconds), send ``sig``. Returns the exit status (``-9`` for SIGKILL)
        and the command's output."""
        self.runs += 1
        progress, log = self.workdir / f"progress_{self.runs}.txt", self.workdir / f"log_{self.runs}.txt"
        progress.write_text("")
        pid = self._ask({"op": "start", "argv": [str(a) for a in argv], "hooks": [hook], "at": count, "hold": hold,
                         "progress": str(progress), "log": str(log)})["pid"]
        deadline = time.monotonic() + timeout
        while len(progress.read_text().splitlines()) < count:
            code = self._ask({"op": "poll", "pid": pid})["code"]
            if code is not None:
                raise AssertionError(f"finished (status {code}) before the kill point:\n{log.read_text()}")
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                self._ask({"op": "wait", "pid": pid})
                raise AssertionError(f"no kill point within {timeout} s:\n{log.read_text()}")
            time.sleep(0.01)
        os.kill(pid, sig)
        progress.with_suffix(".sent").touch()
        code = self._ask({"op": "wait", "pid": pid})["code"]
        return code, log.read_text()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


if __name__ == "__main__":
    serve()
