#!/usr/bin/python3
"""Hostile proxkeep archives with a valid-looking meta.json and index.json (every entry with its true SHA-256),
built with Python's tarfile, independent of proxkeep's writer.

usage: hostile_archive.py OUT CASE OUTSIDE
  OUT      the archive to write (.tar, or .tar.zst for `bomb`, compressed with the zstd tool)
  CASE     dotdot | absolute | symlink | hardlink | device | block | fifo | setuid | dup-index | dup-tar |
           bomb | bomb-lying
  OUTSIDE  a directory outside any target: what a hostile entry aims at
"""
import hashlib, io, json, subprocess, sys, tarfile

# Also imported by tests/it/faults_read.rs's archives (PYTHONPATH=tests/support): `meta`, `info`, `entry`,
# `entries` are the pieces every crafted archive shares.


def meta(compressed=False):
    return {"format_version": 1, "tool": "proxkeep", "tool_version": "0.1.0", "host": "evil", "role": "pve",
            "created": "2026-11-28T00:00:00Z", "created_unix": 1795830000, "categories": ["extra"],
            "compression": {"algorithm": "zstd" if compressed else "none", "level": 3 if compressed else 0}}


entries = []
BOMB = 256 << 20


class Zeros(io.RawIOBase):
    """`n` zero bytes, never held in memory at once."""
    def __init__(self, n):
        self.left = n
    def readable(self):
        return True
    def readinto(self, b):
        k = min(len(b), self.left)
        b[:k] = bytes(k)
        self.left -= k
        return k


def info(name, kind, mode=0o644):
    t = tarfile.TarInfo(name)
    t.type = kind
    t.mode = mode
    t.mtime = 1767225600
    return t


def entry(name, kind, **kw):
    e = {"path": name, "category": "extra", "kind": kind, "size": 0, "mode": "0644", "uid": 0, "gid": 0,
         "mtime": 1767225600}
    e.update(kw)
    entries.append(e)


def write(tf, case, outside, zstd):
    def file(name, data, mode=0o644, owner=0):
        t = info(name, tarfile.REGTYPE, mode); t.size = len(data); t.uid = t.gid = owner
        tf.addfile(t, io.BytesIO(data))
        entry(name, "file", size=len(data), mode="%04o" % mode, uid=owner, gid=owner,
              sha256=hashlib.sha256(data).hexdigest())

    m = json.dumps(meta(zstd)).encode()
    t = info("proxkeep/meta.json", tarfile.REGTYPE); t.size = len(m); tf.addfile(t, io.BytesIO(m))
    file("etc/harmless.conf", b"ok\n")
    if case == "dotdot":
        file("../../escaped", b"evil\n")
    elif case == "absolute":
        file(outside + "/absolute", b"evil\n")
    elif case == "symlink":
        t = info("etc/link", tarfile.SYMTYPE, 0o777); t.linkname = outside; tf.addfile(t)
        entry("etc/link", "symlink", mode="0777", target=outside)
        file("etc/link/victim", b"evil\n")
    elif case == "hardlink":
        t = info("etc/hard", tarfile.LNKTYPE); t.linkname = outside + "/victim"; tf.addfile(t)
        entry("etc/hard", "file", sha256=hashlib.sha256(b"").hexdigest())
    elif case in ("device", "block", "fifo"):
        kind = {"device": tarfile.CHRTYPE, "block": tarfile.BLKTYPE, "fifo": tarfile.FIFOTYPE}[case]
        t = info("etc/node", kind); t.devmajor = 1; t.devminor = 3; tf.addfile(t)
        entry("etc/node", "file", sha256=hashlib.sha256(b"").hexdigest())
    elif case == "setuid":
        # Owned by uid 1000 in the archive: the bits must never end up on a file of another owner.
        file("etc/suid", b"#!/bin/sh\nid\n", mode=0o6755, owner=1000)
    elif case == "dup-index":
        # The index lists the harmless file twice; the stream holds it once.
        entries.append(dict(entries[-1]))
    elif case == "dup-tar":
        # The same name twice in the stream (and the index), the second with other content.
        file("etc/harmless.conf", b"second\n")
    elif case.startswith("bomb"):
        # 256 MiB of zeros: a few KiB compressed. `bomb-lying`'s index says 3 bytes.
        t = info("etc/bomb", tarfile.REGTYPE); t.size = BOMB; tf.addfile(t, io.BufferedReader(Zeros(BOMB)))
        h = hashlib.sha256()
        chunk = bytes(1 << 20)
        for _ in range(BOMB >> 20):
            h.update(chunk)
        if case == "bomb-lying":
            entry("etc/bomb", "file", size=3, sha256=hashlib.sha256(b"ok\n").hexdigest())
        else:
            entry("etc/bomb", "file", size=BOMB, sha256=h.hexdigest())
    else:
        sys.exit("unknown case " + case)
    files = [e for e in entries if e["kind"] == "file"]
    idx = {"format_version": 1, "entries": entries,
           "totals": {"entries": len(entries), "files": len(files), "dirs": 0,
                      "symlinks": len(entries) - len(files), "bytes": sum(e["size"] for e in files),
                      "warnings": 0}}
    d = json.dumps(idx).encode()
    t = info("proxkeep/index.json", tarfile.REGTYPE); t.size = len(d); tf.addfile(t, io.BytesIO(d))


def main():
    out, case, outside = sys.argv[1], sys.argv[2], sys.argv[3]
    zstd = case.startswith("bomb")
    if zstd:
        with open(out, "wb") as f:
            z = subprocess.Popen(["zstd", "-q", "-3", "-c"], stdin=subprocess.PIPE, stdout=f)
            with tarfile.open(fileobj=z.stdin, mode="w|", format=tarfile.GNU_FORMAT) as tf:
                write(tf, case, outside, zstd)
            z.stdin.close()
            assert z.wait() == 0
    else:
        with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tf:
            write(tf, case, outside, zstd)


if __name__ == "__main__":
    main()
