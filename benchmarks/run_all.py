"""Run every benchmark script in benchmarks/, collect their JSON summaries into benchmarks/results.json and
print a table.

Each `benchmarks/<name>.py` measures its ratio against a reference in one run, its peak memory and how its
cost grows at 2x/4x input, and prints a JSON object as the last line of stdout. A script that fails or prints
no JSON is recorded with its exit code and the tail of its stderr, and makes this script exit 1.

    python benchmarks/run_all.py [--quick] [--only NAME ...] [--out benchmarks/results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"


def scripts(only: list[str] | None) -> list[Path]:
    found = sorted(
        p for p in HERE.glob("*.py") if p.name != Path(__file__).name and not p.name.startswith("_")
    )
    if only:
        missing = sorted(set(only) - {p.stem for p in found})
        if missing:
            raise SystemExit(f"error: no benchmark named {', '.join(missing)} in {HERE}")
        found = [p for p in found if p.stem in only]
    return found


def run(script: Path, quick: bool, timeout: float) -> dict:
    """Run one benchmark; its summary (last stdout line as JSON) plus status, seconds and exit code."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    argv = [sys.executable, str(script), *(["--quick"] if quick else [])]
    start = time.perf_counter()
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "seconds": round(time.perf_counter() - start, 1)}
    seconds = round(time.perf_counter() - start, 1)
    sys.stdout.write(proc.stdout)
    lines = proc.stdout.strip().splitlines()
    try:
        summary = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        summary = None
    if proc.returncode != 0 or not isinstance(summary, dict):
        tail = proc.stderr.strip().splitlines()[-5:]
        return {"status": "failed", "exit_code": proc.returncode, "seconds": seconds, "stderr_tail": tail}
    return {"status": "ok", "seconds": seconds, **summary}


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_cell(v)}" for k, v in value.items()) + "}"
    return str(value)


HEADLINE = ("ratio", "reference", "peak_rss_mb", "time_growth_2x", "time_growth_4x")


def table(results: dict[str, dict]) -> str:
    """One block per benchmark: status and time, then the headline numbers first, the rest after."""
    lines = []
    for name, r in results.items():
        lines.append(f"{name}: {r['status']} in {r['seconds']} s")
        keys = [k for k in HEADLINE if k in r] + [
            k for k in r if k not in HEADLINE and k not in ("status", "seconds", "name")
        ]
        width = max((len(k) for k in keys), default=0)
        lines.extend(f"    {k:<{width}}  {_cell(r[k])}" for k in keys)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="pass --quick to every benchmark (small inputs)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks (script stems)")
    parser.add_argument("--out", type=Path, default=HERE / "results.json", help="where to write the results")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per benchmark")
    args = parser.parse_args()

    results: dict[str, dict] = {}
    for script in scripts(args.only):
        print(f"== {script.stem}{' (quick)' if args.quick else ''}", flush=True)
        results[script.stem] = run(script, args.quick, args.timeout)

    sys.path.insert(0, str(SRC))
    from mixlab.files import write_json

    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    write_json(args.out, {**previous, **results})
    print()
    print(table(results))
    print(f"\nwrote {args.out}")
    if any(r["status"] != "ok" for r in results.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
