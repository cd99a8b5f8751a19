"""Build progress: TensorRT's build phases as one status line."""
from __future__ import annotations

import sys
import threading
import time
from typing import Callable


def log_to_stderr(message: str) -> None:
    """Where ``build`` and ``load`` send their notes and warnings by default."""
    print(message, file=sys.stderr)


class BuildProgress:
    """Renders TensorRT's build phases (IProgressMonitor calls) as one status
    line: elapsed time, then each open phase with its step count. On a
    terminal the line is redrawn in place; elsewhere a line is printed at most
    every ``interval`` seconds. Thread safe (TensorRT calls from its threads)."""

    def __init__(self, stream=None, interval: float = 2.0, clock: Callable[[], float] = time.monotonic):
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.clock = clock
        self.start = clock()
        self.phases: dict[str, list] = {}  # name -> [parent, steps, done]
        self.order: list[str] = []
        self._last = -1e9
        self._lock = threading.Lock()
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.cancelled = False

    def status(self) -> str:
        parts = []
        for name in self.order:
            _, steps, done = self.phases[name]
            parts.append(f"{name} {done}/{steps}" if steps > 1 else name)
        return f"[{self.clock() - self.start:7.1f}s] " + (" > ".join(parts) or "building")

    def _render(self, force: bool = False) -> None:
        now = self.clock()
        if not force and now - self._last < (0.1 if self._tty else self.interval):
            return
        self._last = now
        line = self.status()
        if self._tty:
            self.stream.write("\r\033[K" + line[:160])
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
        with self._lock:
            self.phases[phase_name] = [parent_phase, max(int(num_steps), 1), 0]
            if phase_name not in self.order:
                self.order.append(phase_name)
            self._render(force=parent_phase is None)

    def step_complete(self, phase_name: str, step: int) -> bool:
        with self._lock:
            if phase_name in self.phases:
                self.phases[phase_name][2] = int(step) + 1
            self._render()
        return not self.cancelled

    def phase_finish(self, phase_name: str) -> None:
        with self._lock:
            self.phases.pop(phase_name, None)
            if phase_name in self.order:
                self.order.remove(phase_name)

    def heartbeat(self) -> None:
        with self._lock:
            self._render()

    def close(self, message: str = "") -> None:
        with self._lock:
            if self._tty:
                self.stream.write("\r\033[K")
            if message:
                self.stream.write(message + "\n")
            self.stream.flush()


class Heartbeat:
    """Redraws the progress line every few seconds, for the stretches in which
    TensorRT reports nothing (parsing, long tactics, older versions)."""

    def __init__(self, progress: BuildProgress, every: float = 5.0):
        self.progress, self.every = progress, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(self.every):
            self.progress.heartbeat()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

