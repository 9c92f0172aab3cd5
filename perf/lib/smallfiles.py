#!/usr/bin/env python3
"""Small-file workload for perf/run.sh.

T threads, each in its own sub-directory of DIR (created before timing), share N files
of SIZE bytes. Four timed phases, each started by a barrier and timed from the barrier
to the last thread's end:

  create  open(O_CREAT|O_WRONLY|O_TRUNC) + write(SIZE) + close
  stat    stat()
  read    open(O_RDONLY) + read + close (the length is checked)
  unlink  unlink()

With --drop-caches the page/dentry/inode caches are dropped (sync; echo 3 >
/proc/sys/vm/drop_caches) before stat, read and unlink, so those phases reach the
file system instead of the kernel's caches (a client's own caches are untouched).

Prints one JSON object: {"threads": T, "files": N, "size": SIZE,
"phases": {"create": {"ops": N, "seconds": s, "ops_per_s": r}, ...}}.
"""
import argparse
import json
import os
import sys
import threading
import time


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--drop-caches", action="store_true")
    a = ap.parse_args()

    t = a.threads
    per = [a.files // t + (1 if i < a.files % t else 0) for i in range(t)]
    os.makedirs(a.dir, exist_ok=True)
    paths = []
    for i in range(t):
        d = os.path.join(a.dir, f"t{i}")
        os.makedirs(d, exist_ok=True)
        paths.append([os.path.join(d, f"f{j:07d}") for j in range(per[i])])
    payload = (b"ringfs-perf-smallfile\n" * (a.size // 22 + 1))[: a.size]

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
    for name, fn in (("create", create), ("stat", stat), ("read", read), ("unlink", unlink)):
        if a.drop_caches and name != "create":
            drop_caches()
        errors = []
        barrier = threading.Barrier(t + 1)

        def worker(mine):
            barrier.wait()
            try:
                for p in mine:
                    fn(p)
            except Exception as e:  # reported after the phase
                errors.append(repr(e))

        threads = [threading.Thread(target=worker, args=(paths[i],)) for i in range(t)]
        for th in threads:
            th.start()
        barrier.wait()
        t0 = time.perf_counter()
        for th in threads:
            th.join()
        dt = time.perf_counter() - t0
        if errors:
            print(f"smallfiles: {name} failed: {errors[0]}", file=sys.stderr)
            return 1
        phases[name] = {"ops": a.files, "seconds": round(dt, 6), "ops_per_s": round(a.files / dt, 3)}
    for i in range(t):
        try:
            os.rmdir(os.path.join(a.dir, f"t{i}"))
        except OSError:
            pass
    json.dump({"threads": t, "files": a.files, "size": a.size, "drop_caches": a.drop_caches,
               "phases": phases}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
