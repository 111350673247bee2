#!/usr/bin/python3
"""A FUSE file system holding one file, `gate`, whose first read waits: it creates SIGNAL, then blocks until GO
exists, then answers. A test changes the tree while a backup is inside that read (between its scan and its
read of the files after `gate`), deterministically.
usage: gate_fs.py MOUNTPOINT SIGNAL GO   (runs in the foreground until killed; Debian package python3-fusepy)"""
import errno, os, stat, sys, time
from fusepy import FUSE, FuseOSError, Operations

DATA = b"gate\n"
MNT, SIGNAL, GO = sys.argv[1:4]


class Gate(Operations):
    def getattr(self, path, fh=None):
        common = dict(st_uid=0, st_gid=0, st_mtime=1767225600, st_atime=1767225600, st_ctime=1767225600)
        if path == "/":
            return dict(st_mode=stat.S_IFDIR | 0o755, st_nlink=2, st_size=0, **common)
        if path == "/gate":
            return dict(st_mode=stat.S_IFREG | 0o644, st_nlink=1, st_size=len(DATA), **common)
        raise FuseOSError(errno.ENOENT)

    def readdir(self, path, fh):
        return [".", "..", "gate"]

    def open(self, path, flags):
        return 0

    def read(self, path, size, offset, fh):
        open(SIGNAL, "a").close()
        while not os.path.exists(GO):
            time.sleep(0.01)
        return DATA[offset:offset + size]


FUSE(Gate(), MNT, foreground=True, nothreads=False, direct_io=True)
