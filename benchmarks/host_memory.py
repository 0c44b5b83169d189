"""The default job under each host memory policy (``jaxprobe.hostmem``), side by side: wall time, peak resident
memory, and whether the predictions and results are the same.

    python benchmarks/host_memory.py                       # configs/ptx_custom.py, keep vs system, one run each
    python benchmarks/host_memory.py --config configs/ptx_linear.py --repeats 2

Each run is a fresh ``python -m jaxprobe.run`` process with its own empty cache and work directory (so each one
generates the phantoms, extracts the embeddings and trains the heads), ``JAXPROBE_HOST_MEMORY`` (``hostmem.ENV``) set to the policy.
The policies take turns, so a change in the machine's load hits both alike. Peak memory is the child's maximum
resident set size (``wait4``). "identical" compares the bytes of every predictions CSV and of table.md.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jaxprobe import hostmem  # noqa: E402  (its variable's name; imports no JAX)

POLICIES = ("system", "keep")  # hostmem.POLICIES, in the order the runs take turns


def run_once(config: str, policy: str, tmp: Path) -> dict:
    workdir, cache = tmp / f"{policy}-work", tmp / f"{policy}-cache"
    env = {**os.environ, hostmem.ENV: policy}
    cmd = [sys.executable, "-m", "jaxprobe.run", "--config", config, f"--config.workdir={workdir}",
           f"--config.cache_dir={cache}"]
    start = time.perf_counter()
    child = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{policy}: {' '.join(cmd)} failed:\n{child.stderr.read().decode()[-2000:]}")
    digest = hashlib.sha256()
    for path in sorted(workdir.glob("predictions/**/*.csv")) + [workdir / "table.md"]:
        digest.update(path.relative_to(workdir).as_posix().encode() + path.read_bytes())
    return {"seconds": seconds, "peak_gb": usage.ru_maxrss * 1024 / 1e9, "digest": digest.hexdigest()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/ptx_custom.py")
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args(argv)
    print(f"python -m jaxprobe.run --config {args.config}: fresh cache and work directory per run, "
          f"{os.cpu_count()} CPUs")
    results = {policy: [] for policy in POLICIES}
    for i in range(args.repeats):
        for policy in POLICIES:
            with tempfile.TemporaryDirectory() as tmp:
                r = run_once(args.config, policy, Path(tmp))
            results[policy].append(r)
            print(f"  run {i + 1} {policy:6s} {r['seconds']:7.1f} s   peak RSS {r['peak_gb']:5.2f} GB")
    best = {policy: min(r["seconds"] for r in rs) for policy, rs in results.items()}
    same = len({r["digest"] for rs in results.values() for r in rs}) == 1
    print(f"keep vs system: {best['system'] / best['keep']:.2f}x faster (best of {args.repeats}); predictions and "
          f"table.md {'identical in every run' if same else 'DIFFER between runs'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
