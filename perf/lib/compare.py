#!/usr/bin/env python3
"""Do two perf/run.sh runs agree? Compares every ratio ringfs ÷ peer (workload × peer).

Usage: compare.py RUN_DIR_A RUN_DIR_B [--tolerance 0.15]

Reads RUN_DIR_A/results.json and RUN_DIR_B/results.json (a results.json file may be given
instead of its directory) and prints a Markdown table: every ratio in A and in B, A ÷ B,
and whether they agree, |A/B − 1| ≤ tolerance; then the line "N/M ratios agree within
±15%". Exit code 0 when every ratio agrees, 1 otherwise (a ratio that one run lacks, e.g.
because a sample failed, does not agree; nor does a comparison with no ratio at all),
2 on bad arguments or unreadable files.

The ratio of a run is the one its table shows: the median of the per-repetition ratios
(summary.<workload>.ratios.<peer>.median, report.py). Older results.json files have no
ratios; for them it is the ratio of the medians.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import PEERS, TARGET_LABELS, WORKLOADS  # noqa: E402

ORDER = [w for w, _, _ in WORKLOADS]
EPS = 1e-9  # |a/b - 1| exactly at the tolerance agrees despite float rounding


def load(path):
    if os.path.isdir(path):
        path = os.path.join(path, "results.json")
    with open(path) as f:
        return json.load(f)


def ratios(results):
    """{(workload, peer): ratio or None} of one results.json (already parsed)."""
    out = {}
    for wid, e in results.get("summary", {}).items():
        targets = e.get("targets", {})
        if "ringfs" not in targets:
            continue
        stored = e.get("ratios")
        for p in PEERS:
            if p not in targets:
                continue
            if stored is not None and p in stored:
                r = stored[p].get("median")
                if r is None:
                    r = stored[p].get("of_medians")
            else:
                a, b = targets["ringfs"].get("median"), targets[p].get("median")
                r = a / b if a is not None and b else None
            out[(wid, p)] = r
    return out


def agree(a, b, tol):
    """Whether two ratios agree: |a/b - 1| <= tol. None when either is missing."""
    if a is None or b is None or b == 0:
        return None
    return abs(a / b - 1) <= tol + EPS


def compare(ra, rb, tol):
    """Rows (workload, peer, a, b, a/b or None, agrees: True/False/None) for every ratio in
    either run, in the table's order."""
    keys = set(ra) | set(rb)
    rank = {w: i for i, w in enumerate(ORDER)}
    keys = sorted(keys, key=lambda k: (rank.get(k[0], len(ORDER)), k[0],
                                       PEERS.index(k[1]) if k[1] in PEERS else len(PEERS)))
    rows = []
    for wid, p in keys:
        a, b = ra.get((wid, p)), rb.get((wid, p))
        ok = agree(a, b, tol)
        rows.append((wid, p, a, b, (a / b) if ok is not None else None, ok))
    return rows


def count(rows):
    """(agreeing, all) over the rows."""
    return sum(1 for r in rows if r[5]), len(rows)


def pct(tol):
    s = f"{tol * 100:.1f}".rstrip("0").rstrip(".")
    return f"±{s}%"


def render(rows, tol, name_a="A", name_b="B"):
    labels = {w: lab for w, lab, _ in WORKLOADS}
    L = [f"### Ratio agreement: {name_a} (A) vs {name_b} (B), tolerance {pct(tol)}", "",
         "Ratio = ringfs ÷ peer in each run; they agree when |A/B − 1| ≤ the tolerance.", ""]
    if rows:
        L += ["| workload | peer | A | B | A ÷ B | agree |", "|---|---|---:|---:|---:|---|"]
    for wid, p, a, b, q, ok in rows:
        cell = lambda x: "—" if x is None else f"{x:.3f}×"  # noqa: E731
        verdict = "n/a" if ok is None else ("yes" if ok else "**no**")
        L.append(f"| {labels.get(wid, wid)} | {TARGET_LABELS.get(p, p)} | {cell(a)} | {cell(b)} | "
                 f"{'—' if q is None else f'{q:.2f}'} | {verdict} |")
    n, m = count(rows)
    if rows:
        L.append("")
    if m:
        L.append(f"{n}/{m} ratios agree within {pct(tol)}")
    else:
        L.append("0/0 ratios agree: no ratio to compare (was ringfs among the targets of both runs?)")
    return "\n".join(L) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description="Compare the ringfs ÷ peer ratios of two perf/run.sh runs.")
    ap.add_argument("run_a", help="results directory (or results.json) A")
    ap.add_argument("run_b", help="results directory (or results.json) B")
    ap.add_argument("--tolerance", type=float, default=0.15, help="agreement when |A/B - 1| <= this (default 0.15)")
    a = ap.parse_args(argv)
    if a.tolerance < 0:
        ap.error("--tolerance must be >= 0")
    try:
        ra, rb = ratios(load(a.run_a)), ratios(load(a.run_b))
    except (OSError, ValueError) as e:
        print(f"compare: {e}", file=sys.stderr)
        return 2
    rows = compare(ra, rb, a.tolerance)
    name = lambda p: os.path.basename(os.path.normpath(p[:-len("results.json")] if p.endswith("results.json") else p)) or p  # noqa: E731
    sys.stdout.write(render(rows, a.tolerance, name(a.run_a), name(a.run_b)))
    n, m = count(rows)
    return 0 if m and n == m else 1


if __name__ == "__main__":
    sys.exit(main())
