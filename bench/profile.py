"""Sampling profiles of a service under benchmark load with py-spy (`pip install py-spy`), and their summary.

`Profiler(pid, out, seconds)` runs `py-spy record --format raw` beside the process (non-blocking: the service is not
paused to be sampled) and writes collapsed stacks; `summarise(path)` prints the functions that hold the most
samples, on their own (self) and with what they call (inclusive). `python -m bench.profile FILE` summarises a file.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")
SITE_PACKAGES = re.compile(r".*/(site-packages|lib/python3\.\d+)/")


def py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


class Profiler:
    def __init__(self, pid: int, out: Path, seconds: float, rate: int = 100) -> None:
        binary = py_spy()
        if binary is None:
            raise RuntimeError("py-spy is not installed: .venv/bin/pip install py-spy")
        out.parent.mkdir(parents=True, exist_ok=True)
        self.out = out
        self.process = subprocess.Popen(
            [binary, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))), "--rate", str(rate),
             "--format", "raw", "--nonblocking", "--output", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )

    def finish(self, timeout: float = 60.0) -> Path:
        _, stderr = self.process.communicate(timeout=timeout)
        if self.process.returncode != 0 or not self.out.exists():
            raise RuntimeError(f"py-spy failed: {stderr.decode(errors='replace')[-2000:]}")
        return self.out


def _name(frame: str) -> str:
    match = FRAME.match(frame)
    if not match:
        return frame
    file = SITE_PACKAGES.sub("", match["file"])
    return f"{match['function']} ({file})"


def summarise(path: Path, top: int = 15) -> str:
    """The functions with the most samples: self (the frame on top of the stack) and inclusive."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_name(frame) for frame in stack.split(";") if frame]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    if total == 0:
        return f"{path.name}: no samples"
    lines = [f"{path.name}: {total} samples (non-idle)", "  self %   function"]
    lines += [f"  {100 * n / total:5.1f}   {name}" for name, n in own.most_common(top)]
    lines.append("  incl %   function")
    lines += [f"  {100 * n / total:5.1f}   {name}" for name, n in inclusive.most_common(top + 10)]
    return "\n".join(lines)


if __name__ == "__main__":
    for argument in sys.argv[1:]:
        sys.stdout.write(summarise(Path(argument)) + "\n")
