#!/usr/bin/env python3
"""Create N empty files (open O_CREAT + close) in DIR with T threads, for the `ls -l`
workload of perf/run.sh. Prints {"files": N, "seconds": s, "ops_per_s": r}."""
import argparse
import json
import os
import sys
import threading
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--files", type=int, required=True)
    ap.add_argument("--threads", type=int, default=8)
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    errors = []

    def worker(i):
        try:
            for j in range(i, a.files, a.threads):
                os.close(os.open(os.path.join(a.dir, f"entry-{j:07d}"), os.O_CREAT | os.O_WRONLY, 0o644))
        except Exception as e:
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(a.threads)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    dt = time.perf_counter() - t0
    if errors:
        print(f"mkentries: {errors[0]}", file=sys.stderr)
        return 1
    json.dump({"files": a.files, "threads": a.threads, "seconds": round(dt, 6),
               "ops_per_s": round(a.files / dt, 3)}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
