#!/usr/bin/env python3
"""Turn perf/run.sh's raw measurements into results.json, results.md and chart.png.

Usage: report.py RUN_DIR OUT_DIR   (reads RUN_DIR/raw.jsonl, RUN_DIR/meta.json and, if
present, RUN_DIR/steps.jsonl; writes OUT_DIR/results.md, results.json, chart.png; prints
results.md to stdout)

raw.jsonl: one object per measurement: {"workload", "target", "rep", "value" (number or
null), "unit", "extra": {...}, "error"?}. Every value is "higher is better", so the ratio
ringfs/peer > 1 means ringfs was faster than that peer in this run.

The figure per target is the median over the repetitions. The ratio ringfs ÷ peer is the
median of the per-repetition ratios (ringfs's rep i ÷ the peer's rep i, measured close
together in time by run.sh's round-robin), so load that comes and goes between
repetitions cancels out of each ratio; the ratio of the two medians is kept in
results.json too ("of_medians").

steps.jsonl: one object per step of run.sh: {"workload", "target", "rep", "wall"} (wall
seconds including untimed settling, remounts and cache drops); summed into a "time spent"
table.
"""
import json
import os
import statistics
import sys

# id -> (label, unit); the table follows this order
WORKLOADS = [
    ("seq_write", "Sequential write, 1 MiB blocks, fsync at end", "MiB/s"),
    ("seq_read_cold", "Sequential read, cold (page cache dropped, client cache cleared)", "MiB/s"),
    ("seq_read_warm", "Sequential read, warm (same fio job again, every cache kept: fio --invalidate=0)", "MiB/s"),
    ("rand_read_4k", "4 KiB random read, 1 job qd1 (page cache dropped, client cache warm)", "IOPS"),
    ("small_create_t1", "4 KiB files: create+write+close, 1 thread", "files/s"),
    ("small_stat_t1", "4 KiB files: stat, 1 thread", "ops/s"),
    ("small_read_t1", "4 KiB files: open+read+close, 1 thread", "files/s"),
    ("small_unlink_t1", "4 KiB files: unlink, 1 thread", "ops/s"),
    ("small_create_t8", "4 KiB files: create+write+close, 8 threads", "files/s"),
    ("small_stat_t8", "4 KiB files: stat, 8 threads", "ops/s"),
    ("small_read_t8", "4 KiB files: open+read+close, 8 threads", "files/s"),
    ("small_unlink_t8", "4 KiB files: unlink, 8 threads", "ops/s"),
    ("ls_create", "Empty-file create, 8 threads (fills the ls directory)", "files/s"),
    ("ls_cold", "`ls -l` of a big directory, cold (remounted, caches dropped)", "entries/s"),
    ("ls_warm", "`ls -l` of the same directory again, warm", "entries/s"),
    ("untar", "Unpack a source tarball (tar -x, then sync)", "files/s"),
]
TARGET_LABELS = {
    "ringfs": "ringfs",
    "ext4": "local ext4",
    "juicefs": "JuiceFS",
    "juicefs-wb": "JuiceFS --writeback",
    "rclone": "rclone full cache",
}
PEERS = ["ext4", "juicefs", "juicefs-wb", "rclone"]


def fmt(v):
    if v is None:
        return "—"
    if v >= 10000:
        return f"{v:,.0f}"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def per_rep(raw, wid, t):
    """{rep: value} of the successful samples of workload wid on target t."""
    return {r.get("rep", 1): r["value"] for r in raw
            if r["workload"] == wid and r["target"] == t and r.get("value") is not None}


def ratio_entry(raw, wid, peer, med_ringfs, med_peer):
    """The ringfs ÷ peer ratio of one workload: per repetition, their median, and the
    ratio of the medians."""
    a, b = per_rep(raw, wid, "ringfs"), per_rep(raw, wid, peer)
    reps = sorted(set(a) & set(b))
    rs = [a[r] / b[r] for r in reps if b[r]]
    return {"median": statistics.median(rs) if rs else None,
            "per_rep": [round(x, 6) for x in rs],
            "of_medians": ratio(med_ringfs, med_peer)}


def fmt_ratio(e):
    """Table cell: the median ratio, and the per-repetition range when there are several."""
    v = e["median"] if e["median"] is not None else e["of_medians"]
    if v is None:
        return "—"
    cell = f"{v:.2f}×"
    if len(e["per_rep"]) > 1:
        cell += f" ({min(e['per_rep']):.2f}–{max(e['per_rep']):.2f})"
    return cell


STEP_LABELS = {"build": "build ringfs", "setup": "setup (services, mounts)", "ls_fill": "fill the ls directory",
               "ls": "ls -l cold + warm", "small_t1": "small files, 1 thread",
               "small_t8": "small files, 8 threads", "unmount": "unmount"}


def timing(steps):
    """Wall seconds per run.sh step, summed over repetitions: {step: {target: s, "total": s}}."""
    out = {}
    for st in steps:
        row = out.setdefault(st["workload"], {})
        row[st["target"]] = row.get(st["target"], 0.0) + st["wall"]
        row["total"] = row.get("total", 0.0) + st["wall"]
    return out


def main():
    run, out = sys.argv[1], sys.argv[2]
    meta = {}
    if os.path.exists(os.path.join(run, "meta.json")):
        with open(os.path.join(run, "meta.json")) as f:
            meta = json.load(f)
    raw = []
    if os.path.exists(os.path.join(run, "raw.jsonl")):
        with open(os.path.join(run, "raw.jsonl")) as f:
            raw = [json.loads(l) for l in f if l.strip()]
    steps = []
    if os.path.exists(os.path.join(run, "steps.jsonl")):
        with open(os.path.join(run, "steps.jsonl")) as f:
            steps = [json.loads(l) for l in f if l.strip()]
    targets = [t for t in meta.get("targets", []) if t in TARGET_LABELS] or \
        sorted({r["target"] for r in raw}, key=lambda t: list(TARGET_LABELS).index(t) if t in TARGET_LABELS else 99)
    peers = [p for p in PEERS if p in targets]

    summary = {}
    for wid, label, unit in WORKLOADS:
        row = {}
        for t in targets:
            samples = [r for r in raw if r["workload"] == wid and r["target"] == t]
            vals = [r["value"] for r in samples if r.get("value") is not None]
            errs = [r.get("error") for r in samples if r.get("value") is None and r.get("error")]
            if not samples:
                continue
            row[t] = {"median": statistics.median(vals) if vals else None, "samples": vals,
                      "errors": errs}
        if row:
            summary[wid] = {"label": label, "unit": unit, "targets": row}

    def med(wid, t):
        return summary.get(wid, {}).get("targets", {}).get(t, {}).get("median")

    if "ringfs" in targets:
        for wid, e in summary.items():
            e["ratios"] = {p: ratio_entry(raw, wid, p, med(wid, "ringfs"), med(wid, p))
                           for p in peers if "ringfs" in e["targets"] and p in e["targets"]}
    spent = timing(steps)

    # ---- Markdown
    L = []
    L.append(f"# ringfs side-by-side: {meta.get('title', 'results')}")
    L.append("")
    if meta:
        L.append(f"Run {meta.get('started', '?')} → {meta.get('finished', '?')}, mode **{meta.get('mode', '?')}**, "
                 f"{meta.get('reps', 1)} repetition(s) per workload (median shown), targets in alternation "
                 f"(round-robin within each repetition). ringfs {meta.get('ringfs_rev', '?')}; "
                 f"{meta.get('juicefs_version', '')}; {meta.get('rclone_version', '')}; {meta.get('fio_version', '')}.")
        L.append("")
        sizes = meta.get("sizes", {})
        if sizes:
            L.append("Sizes: " + ", ".join(f"{k} = {v}" for k, v in sizes.items()) + ".")
            L.append("")
        if meta.get("machine_line"):
            L.append(f"Machine: {meta['machine_line']}")
            L.append("")
    L.append("All figures: higher is better. Ratio = ringfs ÷ peer (> 1: ringfs faster in this run): "
             "the median of the per-repetition ratios, with their range in brackets when there are several.")
    L.append("")
    head = ["workload", "unit"] + [TARGET_LABELS[t] for t in targets] + \
        [f"ringfs ÷ {TARGET_LABELS[p]}" for p in peers if "ringfs" in targets]
    L.append("| " + " | ".join(head) + " |")
    L.append("|" + "|".join(["---", "---"] + ["---:"] * (len(head) - 2)) + "|")
    for wid, label, unit in WORKLOADS:
        if wid not in summary:
            continue
        cells = [label, unit]
        for t in targets:
            e = summary[wid]["targets"].get(t)
            if e is None:
                cells.append("n/a")
            elif e["median"] is None:
                cells.append("failed")
            else:
                cells.append(fmt(e["median"]))
        if "ringfs" in targets:
            for p in peers:
                e = summary[wid].get("ratios", {}).get(p)
                cells.append("—" if e is None else fmt_ratio(e))
        L.append("| " + " | ".join(cells) + " |")
    L.append("")
    notes = list(meta.get("notes", []))
    for wid, e in summary.items():
        for t, te in e["targets"].items():
            for err in te["errors"][:1]:
                notes.append(f"{TARGET_LABELS.get(t, t)} / {wid}: {err}")
    if notes:
        L.append("Notes and failures:")
        L.append("")
        for n in notes:
            L.append(f"- {n}")
        L.append("")
    if spent:
        total = sum(v["total"] for v in spent.values())
        L.append(f"Time spent: {total / 60:.1f} minutes in all (wall seconds per step, all repetitions, "
                 "with the untimed settling, remounts and cache drops):")
        L.append("")
        cols = [t for t in targets if any(t in v for v in spent.values())]
        L.append("| step | total | " + " | ".join(TARGET_LABELS.get(t, t) for t in cols) + " |")
        L.append("|---|---:|" + "---:|" * len(cols))
        order = ["build", "setup"] + [w for w in ("seq_write", "seq_read_cold", "seq_read_warm", "rand_read_4k", "small_t1", "small_t8",
                                         "ls_fill", "ls", "untar")] + ["unmount"]
        order += [w for w in spent if w not in order]
        for w in order:
            if w not in spent:
                continue
            v = spent[w]
            L.append(f"| {STEP_LABELS.get(w, w)} | {v['total']:.0f} | " +
                     " | ".join(f"{v[t]:.0f}" if t in v else "" for t in cols) + " |")
        L.append("")
    L.append("Chart: `chart.png` (one panel per workload, same colours per target). Raw samples "
             "and fio/helper output: `results.json`. Machine and load: `machine.md`.")
    md = "\n".join(L) + "\n"
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(md)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"meta": meta, "summary": summary, "raw": raw, "time_spent": spent}, f, indent=1)
        f.write("\n")
    sys.stdout.write(md)

    try:
        chart(out, summary, targets, meta)
    except Exception as e:  # a missing chart must not lose the table
        print(f"report: no chart: {e}", file=sys.stderr)
    return 0


COLORS = {"ringfs": (214, 39, 40), "ext4": (127, 127, 127), "juicefs": (31, 119, 180),
          "juicefs-wb": (140, 86, 75), "rclone": (44, 160, 44)}


def chart(out, summary, targets, meta):
    wids = [w for w, _, _ in WORKLOADS if w in summary]
    path = os.path.join(out, "chart.png")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        plt = None
    if plt is not None:
        n = len(wids)
        cols = 3
        rows = (n + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 2.9 * rows), squeeze=False)
        for i, wid in enumerate(wids):
            ax = axes[i // cols][i % cols]
            e = summary[wid]
            vals = [e["targets"].get(t, {}).get("median") for t in targets]
            xs = range(len(targets))
            bars = ax.bar(xs, [v or float("nan") for v in vals],
                          color=[tuple(c / 255 for c in COLORS.get(t, (0, 0, 0))) for t in targets])
            for b, v in zip(bars, vals):
                y = v if v else (min([x for x in vals if x] or [1]))
                ax.annotate("failed" if v is None else fmt(v), (b.get_x() + b.get_width() / 2, y),
                            ha="center", va="bottom", fontsize=7)
            ax.set_xticks(list(xs))
            ax.set_xticklabels([TARGET_LABELS[t].replace(" ", "\n", 1) for t in targets], fontsize=7)
            ax.set_title(e["label"], fontsize=8)
            pos = [v for v in vals if v]
            if len(pos) > 1 and max(pos) / min(pos) > 30:
                ax.set_yscale("log")  # local ext4 is often 100x the FUSE targets
                ax.set_ylabel(e["unit"] + " (log scale)", fontsize=8)
            else:
                ax.set_ylabel(e["unit"], fontsize=8)
            ax.tick_params(axis="y", labelsize=7)
            if ax.get_yscale() == "log":
                lo, hi = min(pos), max(pos)
                ax.set_ylim(lo / 3, hi * 4)
            else:
                ax.margins(y=0.15)
        for j in range(len(wids), rows * cols):
            axes[j // cols][j % cols].axis("off")
        fig.suptitle(f"ringfs side-by-side ({meta.get('mode', '')}, {meta.get('started', '')[:10]}): higher is better",
                     fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        return
    from PIL import Image, ImageDraw  # fallback: plain bars, labels in default font

    W, PH = 900, 110
    img = Image.new("RGB", (W, 40 + PH * len(wids)), "white")
    d = ImageDraw.Draw(img)
    d.text((10, 10), "ringfs side-by-side: higher is better (bar length relative to the best target)", fill="black")
    for i, wid in enumerate(wids):
        y0 = 40 + i * PH
        e = summary[wid]
        d.text((10, y0), f"{e['label']} [{e['unit']}]", fill="black")
        vals = {t: e["targets"].get(t, {}).get("median") for t in targets}
        top = max([v for v in vals.values() if v] or [1])
        for k, t in enumerate(targets):
            y = y0 + 16 + k * 17
            v = vals[t]
            d.text((10, y), TARGET_LABELS[t], fill="black")
            if v:
                d.rectangle([180, y, 180 + int((W - 300) * v / top), y + 12], fill=COLORS.get(t, (0, 0, 0)))
            d.text((W - 110, y), "failed" if v is None else fmt(v), fill="black")
    img.save(path)


if __name__ == "__main__":
    sys.exit(main())
