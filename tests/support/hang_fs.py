#!/usr/bin/python3
"""A FUSE file system that never answers: every operation blocks, like an NFS mount whose server died.
usage: hang_fs.py MOUNTPOINT   (runs in the foreground until killed; Debian package python3-fusepy)"""
import sys, threading
from fusepy import FUSE, Operations

class Hang(Operations):
    def __call__(self, op, *args):
        if op in ("init", "destroy"):
            return None
        threading.Event().wait()  # forever

FUSE(Hang(), sys.argv[1], foreground=True, nothreads=False)
