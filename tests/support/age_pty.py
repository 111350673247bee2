#!/usr/bin/env python3
"""Runs a command (the `age` CLI) on a pseudo-terminal and types $AGE_PASS at every passphrase prompt.

age 1.1.1 reads passphrases from /dev/tty only, with no flag or variable to pass one, so the passphrase-mode
interop tests need a terminal. Exits with the command's status.

usage: AGE_PASS=secret age_pty.py age -p -o out.age in.tar.zst
       AGE_PASS=secret age_pty.py age -d -o out.tar.zst in.age
"""
import os
import pty
import re
import sys

answer = os.environ["AGE_PASS"].encode() + b"\n"
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])

pending = b""
while True:
    try:
        data = os.read(fd, 4096)
    except OSError:  # EIO: the child closed the terminal (it exited)
        break
    if not data:
        break
    pending += data
    # "Enter passphrase (leave empty to autogenerate a secure one):", "Confirm passphrase:", "Enter passphrase:"
    if re.search(rb"passphrase[^\n]*:\s*$", pending, re.IGNORECASE):
        os.write(fd, answer)
        pending = b""
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
