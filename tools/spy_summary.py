"""Summarise a py-spy `--format raw` (collapsed stacks) profile: self and inclusive share per function.

Record with `py-spy record -p <worker pid> --threads -f raw -o prof.txt`. A thread with no Python frames is
Granian's Rust runtime; `MPServer._spawn_asgi_lifespan_worker` as a leaf is the worker's main thread inside
Granian's native event loop.

    python tools/spy_summary.py profile.txt [--top 25]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

# Frames every sample shares (process bootstrap, thread start): left out of the inclusive list.
_PLUMBING = ("threading.py", "multiprocessing/", "<frozen runpy>", "granian/server/", "memtrace/__main__.py",
             "memtrace/serve.py", "concurrent/futures/thread.py")
_FRAME = re.compile(r"^(?P<fn>[^ ]+) \((?P<file>[^:]+)(?::\d+)?\)$")


def _name(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("file")
    short = path.split("site-packages/")[-1] if "site-packages/" in path else path.split("/main/")[-1]
    return f"{m.group('fn')} ({short})"


def summarise(path: Path, top: int = 25) -> str:
    self_c: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        threads[frames[0] if frames[0].startswith(("thread", "process")) else "?"] += n
        names = [_name(f) for f in frames if not f.startswith(("thread", "process"))]
        if names:
            self_c[names[-1]] += n
        for name in set(names):
            if not any(p in name for p in _PLUMBING):
                incl[name] += n
    out = [f"{total} samples", "", "threads:"]
    out += [f"  {n / total:6.1%}  {t}" for t, n in threads.most_common(6)]
    out += ["", "self (leaf) share:"]
    out += [f"  {n / total:6.1%}  {f}" for f, n in self_c.most_common(top)]
    out += ["", "inclusive share (bootstrap frames left out):"]
    out += [f"  {n / total:6.1%}  {f}" for f, n in incl.most_common(top)]
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("profile", type=Path)
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args()
    print(summarise(args.profile, args.top))


if __name__ == "__main__":
    main()
