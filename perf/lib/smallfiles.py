#!/usr/bin/env python3
"""Small-file workload for perf/run.sh.

T threads, each in its own sub-directory of DIR (created before timing), share N files
of SIZE bytes per pass. Four timed phases, each pass started by a barrier and timed from
the barrier to the last thread's end:

  create  open(O_CREAT|O_WRONLY|O_TRUNC) + write(SIZE) + close
  stat    stat()
  read    open(O_RDONLY) + read + close (the length is checked)
  unlink  unlink()

With --drop-caches the kernel's caches are dropped (sync; echo 2 > /proc/sys/vm/drop_caches
before stat and unlink passes, echo 3 before read passes, untimed) so those phases reach
the file system instead of the kernel's caches (a client's own caches are untouched).

A single pass of N files takes a few milliseconds on a fast target, which is noise. With
--min-secs S a phase runs more passes until its timed part adds up to S seconds:

  create  every pass creates N new files (a new generation of names), so the file set
          grows to G x N files (G = create passes);
  stat, read  every pass covers the whole file set again (caches dropped before each);
  unlink  every pass removes the whole file set; before another pass it is created
          again (untimed) and the caches are dropped.

Another pass is only started while the phase's wall time (timed passes plus the untimed
work between them), judged by the last pass, stays within --budget-secs (default 2 x S),
and at most --max-passes passes run. The figure is operations per timed second over all
passes. Without --min-secs every phase is one pass of N files, as before.

Prints one JSON object: {"threads": T, "files": N, "size": SIZE, "generations": G,
"phases": {"create": {"ops": n, "seconds": s, "ops_per_s": r, "passes": p}, ...}}.
"""
import argparse
import json
import os
import sys
import threading
import time


def drop_caches(level):
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write(f"{level}\n")


def run_threads(fn, lists):
    """One barrier-started pass: thread i applies fn to every path of lists[i].
    Returns the seconds from the barrier to the last thread's end; raises on error."""
    errors = []
    barrier = threading.Barrier(len(lists) + 1)

    def worker(mine):
        barrier.wait()
        try:
            for p in mine:
                fn(p)
        except Exception as e:  # reported after the pass
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(mine,)) for mine in lists]
    for th in threads:
        th.start()
    barrier.wait()
    t0 = time.perf_counter()
    for th in threads:
        th.join()
    dt = time.perf_counter() - t0
    if errors:
        raise OSError(errors[0])
    return dt


def another_pass(timed, passes, wall, last_wall, a):
    """Whether a phase starts one more pass (see the module docstring)."""
    return timed < a.min_secs and passes < a.max_passes and wall + last_wall <= a.budget_secs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--files", type=int, default=1000, help="files per pass (split over the threads)")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--drop-caches", action="store_true")
    ap.add_argument("--min-secs", type=float, default=0.0,
                    help="run more passes of a phase until its timed part reaches this (default: one pass)")
    ap.add_argument("--budget-secs", type=float, default=None,
                    help="no further pass once a phase's wall time would exceed this (default 2 x --min-secs)")
    ap.add_argument("--max-passes", type=int, default=50)
    a = ap.parse_args()
    if a.budget_secs is None:
        a.budget_secs = 2 * a.min_secs
    if a.threads < 1 or a.files < a.threads or a.max_passes < 1:
        ap.error("need --threads >= 1, --files >= --threads, --max-passes >= 1")

    t = a.threads
    per = [a.files // t + (1 if i < a.files % t else 0) for i in range(t)]
    os.makedirs(a.dir, exist_ok=True)
    dirs = []
    for i in range(t):
        d = os.path.join(a.dir, f"t{i}")
        os.makedirs(d, exist_ok=True)
        dirs.append(d)
    payload = (b"ringfs-perf-smallfile\n" * (a.size // 22 + 1))[: a.size]

    def generation(g):  # the paths of create pass g, one list per thread
        return [[os.path.join(dirs[i], f"f{g:03d}-{j:06d}") for j in range(per[i])] for i in range(t)]

    def create(p):
        fd = os.open(p, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
        try:
            n = os.write(fd, payload)
            if n != len(payload):
                raise OSError(f"short write on {p}: {n}")
        finally:
            os.close(fd)

    def stat(p):
        os.stat(p)

    def read(p):
        fd = os.open(p, os.O_RDONLY)
        try:
            got = 0
            while True:
                b = os.read(fd, 1 << 20)
                if not b:
                    break
                got += len(b)
        finally:
            os.close(fd)
        if got != a.size:
            raise OSError(f"read {got} bytes from {p}, expected {a.size}")

    def unlink(p):
        os.unlink(p)

    phases = {}
    files = [[] for _ in range(t)]  # the whole file set, per thread

    def record(name, ops, timed, passes):
        phases[name] = {"ops": ops, "seconds": round(timed, 6), "ops_per_s": round(ops / timed, 3),
                        "passes": passes}

    phase = "create"
    try:
        # create: new names every pass
        timed = wall = last = 0.0
        g = 0
        while True:
            gen = generation(g)
            dt = run_threads(create, gen)
            for i in range(t):
                files[i] += gen[i]
            g += 1
            timed += dt
            wall += dt
            last = dt
            if not another_pass(timed, g, wall, last, a):
                break
        record("create", g * a.files, timed, g)
        nfiles = g * a.files

        # stat, read: the whole file set every pass
        for name, fn, level in (("stat", stat, 2), ("read", read, 3)):
            phase = name
            timed = wall = 0.0
            passes = 0
            while True:
                w0 = time.perf_counter()
                if a.drop_caches:
                    drop_caches(level)
                dt = run_threads(fn, files)
                last = time.perf_counter() - w0
                passes += 1
                timed += dt
                wall += last
                if not another_pass(timed, passes, wall, last, a):
                    break
            record(name, passes * nfiles, timed, passes)

        # unlink: the whole file set; created again (untimed) before another pass
        phase = "unlink"
        timed = wall = 0.0
        passes = 0
        while True:
            w0 = time.perf_counter()
            if passes:
                run_threads(create, files)
            if a.drop_caches:
                drop_caches(2)
            dt = run_threads(unlink, files)
            last = time.perf_counter() - w0
            if not passes:  # judge a further pass by what it will cost: re-create + unlink
                last += phases["create"]["seconds"]
            passes += 1
            timed += dt
            wall += last
            if not another_pass(timed, passes, wall, last, a):
                break
        record("unlink", passes * nfiles, timed, passes)
    except OSError as e:
        print(f"smallfiles: {phase} failed: {e}", file=sys.stderr)
        return 1

    for d in dirs:
        try:
            os.rmdir(d)
        except OSError:
            pass
    json.dump({"threads": t, "files": a.files, "size": a.size, "generations": g,
               "drop_caches": a.drop_caches, "min_secs": a.min_secs, "phases": phases}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
