#!/usr/bin/env python3
"""Physical-floor helper: hash a file or every file of a tree, or stat-walk it.

usage: hashfloor.py ALGO CHUNK_MIB PATH
  ALGO: xxh3_128 | xxh3_64 | xxh64 (needs `pip install xxhash`) | md5 | sha256 |
        statwalk (no reading: os.scandir + lstat of every entry, the floor
        for a `status` that trusts (size, mtime, inode)) |
        verify (not a floor: prints `files bytes digest` on stdout, where the
        digest covers every file's relative path and content, following
        symlinks; xxh3_128 when xxhash is installed, else sha1; CHUNK ignored)
Prints the number of files and bytes and a digest-of-digests to stderr.
"""
import hashlib
import os
import sys


def hasher(algo):
    if algo.startswith("xx"):
        import xxhash
        return getattr(xxhash, algo)
    return getattr(hashlib, algo)


def walk(root):
    stack = [root]
    while stack:
        d = stack.pop()
        with os.scandir(d) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    if not e.name.startswith("."):
                        stack.append(e.path)
                else:
                    yield e


def verify(path):
    """Content digest of a file or tree (relative paths + bytes), for checking
    that checkout/pull restored exactly what was committed."""
    try:
        import xxhash
        H = xxhash.xxh3_128
    except ImportError:
        H = hashlib.sha1
    buf = bytearray(8 << 20)
    mv = memoryview(buf)
    top = H()
    n = size = 0
    if os.path.isdir(path):
        files = []
        for dp, dn, fn in os.walk(path, followlinks=True):
            dn[:] = [d for d in dn if not d.startswith(".")]
            files += [os.path.join(dp, f) for f in fn]
        files.sort()
    else:
        files = [path]
    for p in files:
        h = H()
        with open(p, "rb", buffering=0) as f:
            while True:
                k = f.readinto(buf)
                if not k:
                    break
                h.update(mv[:k])
                size += k
        top.update(os.path.relpath(p, path).encode() + b"\0" + h.digest())
        n += 1
    print(f"{n} {size} {top.hexdigest()}")


def main():
    algo, chunk, path = sys.argv[1], int(float(sys.argv[2]) * (1 << 20)), sys.argv[3]
    if algo == "verify":
        verify(path)
        return
    if algo == "statwalk":
        n = size = 0
        for e in walk(path):
            st = e.stat(follow_symlinks=False)
            n += 1
            size += st.st_size
        print(f"statwalk files={n} bytes={size}", file=sys.stderr)
        return
    H = hasher(algo)
    buf = bytearray(chunk)
    mv = memoryview(buf)
    top = H()
    n = size = 0
    files = [path] if os.path.isfile(path) else sorted(e.path for e in walk(path))
    for p in files:
        h = H()
        with open(p, "rb", buffering=0) as f:
            while True:
                k = f.readinto(buf)
                if not k:
                    break
                h.update(mv[:k])
                size += k
        top.update(h.digest())
        n += 1
    print(f"{algo} chunk={chunk} files={n} bytes={size} {top.hexdigest()}", file=sys.stderr)


if __name__ == "__main__":
    main()
