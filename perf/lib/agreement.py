#!/usr/bin/env python3
"""How many repetitions would two runs need to agree? A resampling estimate.

    perf/lib/agreement.py RUN_DIR [RUN_DIR ...] [--reps 3,5,9,15] [--trials 300]
                          [--tolerance 0.15] [--seed 1]

Pools, per ratio (workload x peer), the per-repetition ratios ringfs / peer of the given
runs (results.json, samples paired by repetition), then draws two imaginary runs of R
repetitions each from that pool (with replacement), takes each one's median the way
report.py does, and counts the ratios whose two medians agree within the tolerance
(|A/B - 1| <= tolerance, as compare.py). Prints, for every R, the mean number of
agreeing ratios and how often all of them agreed, then the noisiest ratios (standard
deviation of log(ratio) over the pool). It assumes the repetitions are independent
draws from one machine state: slow spells that last a whole run are not in it.
"""
import argparse
import json
import math
import os
import random
import statistics
import sys


def pooled_ratios(run_dirs):
    """{(workload, peer): [per-repetition ringfs / peer, ...]} over all runs."""
    pool = {}
    for d in run_dirs:
        with open(os.path.join(d, "results.json")) as f:
            summary = json.load(f)["summary"]
        for workload, w in summary.items():
            targets = w["targets"]
            mine = targets.get("ringfs", {}).get("samples") or []
            for peer, v in targets.items():
                theirs = v.get("samples") or []
                if peer == "ringfs" or len(theirs) != len(mine):
                    continue
                pool.setdefault((workload, peer), []).extend(
                    a / b for a, b in zip(mine, theirs) if a and b)
    return {k: xs for k, xs in pool.items() if xs}


def simulate(pool, reps, trials, tolerance, rng):
    """(mean agreeing ratios, fraction of trials where all agreed, number of ratios)."""
    keys = sorted(pool)
    total = all_ok = 0
    for _ in range(trials):
        ok = 0
        for k in keys:
            xs = pool[k]
            a = statistics.median(rng.choice(xs) for _ in range(reps))
            b = statistics.median(rng.choice(xs) for _ in range(reps))
            ok += abs(a / b - 1) <= tolerance
        total += ok
        all_ok += ok == len(keys)
    return total / trials, all_ok / trials, len(keys)


def log_sd(xs):
    return statistics.pstdev(math.log(x) for x in xs) if len(xs) > 1 else 0.0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--reps", default="3,5,9,15")
    ap.add_argument("--trials", type=int, default=300)
    ap.add_argument("--tolerance", type=float, default=0.15)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    try:
        reps = [int(r) for r in a.reps.split(",")]
    except ValueError:
        ap.error("--reps takes comma-separated positive integers")
    if any(r < 1 for r in reps) or a.trials < 1:
        ap.error("--reps and --trials must be positive")
    try:
        pool = pooled_ratios(a.runs)
    except (OSError, ValueError, KeyError) as e:
        print(f"agreement: cannot read a run: {e}", file=sys.stderr)
        return 2
    if not pool:
        print("agreement: no paired ringfs/peer samples in these runs", file=sys.stderr)
        return 2
    rng = random.Random(a.seed)
    n = min(len(xs) for xs in pool.values())
    print(f"{len(pool)} ratios, {n}+ repetitions each pooled from {len(a.runs)} run(s); "
          f"two runs of R repetitions, tolerance ±{a.tolerance:.0%}, {a.trials} trials")
    print()
    print("| repetitions | ratios agreeing (mean) | all agree |")
    print("|---:|---:|---:|")
    for r in reps:
        mean_ok, p_all, total = simulate(pool, r, a.trials, a.tolerance, rng)
        print(f"| {r} | {mean_ok:.1f} / {total} | {p_all:.1%} |")
    print()
    sds = sorted(((log_sd(xs), k) for k, xs in pool.items()), reverse=True)
    print(f"median sd of log(ratio): {statistics.median(s for s, _ in sds):.2f}; noisiest:")
    for s, (w, p) in sds[:8]:
        print(f"- {w} vs {p}: {s:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
