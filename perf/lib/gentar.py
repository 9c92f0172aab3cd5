#!/usr/bin/env python3
"""Write a deterministic, uncompressed source-like tarball for perf/run.sh.

N regular files (plus their directories) shaped like a C/Rust source tree: about 20
files per directory, directories two or three levels deep, file sizes log-normal around
a median of ~4 KiB (capped at 256 KiB), text content. The same N always gives the same
bytes (fixed seed, mtime, owner), so runs on different days unpack the same tree.
Uncompressed so the measurement is the file system, not xz/gzip on a loaded CPU.

Usage: gentar.py OUT.tar --files N    (prints {"files": N, "dirs": D, "bytes": B})
"""
import argparse
import io
import json
import math
import random
import sys
import tarfile

WORDS = (b"static int struct return if else for while unsigned long const void char "
         b"size_t uint64_t self impl fn let mut match Some None Ok Err pub use mod "
         b"buffer inode chunk slice block cache flush commit etcd swift error "
         b"{ } ( ) ; -> => == != <= >= + - * / & | ^ ! ~ // /* */ 0 1 2 4096").split()
EXTS = [".c", ".h", ".rs", ".py", ".go", ".txt", ".md", ".S", ".json", ".toml"]


def text_block(rng, n):
    out = bytearray()
    line = []
    while len(out) < n:
        line.append(rng.choice(WORDS))
        if len(line) > rng.randint(3, 12):
            out += b"    " * rng.randint(0, 3) + b" ".join(line) + b"\n"
            line = []
    return bytes(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=20261125)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    corpus = text_block(rng, 4 << 20)  # 4 MiB of text; files are slices of it
    mtime = 1764000000
    n_dirs = max(1, a.files // 20)
    dirs = []
    for i in range(n_dirs):
        depth = rng.choice((1, 2, 2, 3))
        parts = [f"src{rng.randint(0, 9)}"] + [f"mod{rng.randint(0, 40)}" for _ in range(depth - 1)] + [f"d{i:05d}"]
        dirs.append("tree/" + "/".join(parts))
    total = 0
    made = set()
    with tarfile.open(a.out, "w", format=tarfile.GNU_FORMAT) as tar:
        def add_dir(path):
            if path in made:
                return
            parent = path.rsplit("/", 1)[0] if "/" in path else None
            if parent:
                add_dir(parent)
            ti = tarfile.TarInfo(path)
            ti.type = tarfile.DIRTYPE
            ti.mode = 0o755
            ti.mtime = mtime
            ti.uname = ti.gname = "root"
            tar.addfile(ti)
            made.add(path)

        for i in range(a.files):
            d = dirs[i % n_dirs]
            add_dir(d)
            size = int(min(256 << 10, max(16, rng.lognormvariate(math.log(4096), 1.1))))
            off = rng.randrange(0, len(corpus) - size)
            data = corpus[off:off + size]
            ti = tarfile.TarInfo(f"{d}/file{i:06d}{rng.choice(EXTS)}")
            ti.size = size
            ti.mode = 0o644
            ti.mtime = mtime
            ti.uname = ti.gname = "root"
            tar.addfile(ti, io.BytesIO(data))
            total += size
    json.dump({"files": a.files, "dirs": len(made), "bytes": total}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
