#!/usr/bin/env python3
"""Build a pmxcfs-like config.db from a directory tree (Python standard library only).

usage: make_config_db.py ETC_PVE_DIR OUT_DB

Follows the recipe in the shared fixtures README, section "config.db" (schema and row rules of
proxmox/pve-cluster src/pmxcfs/database.c):
  - the db is put in WAL mode and gets the verbatim `tree` table of pmxcfs;
  - the directory is walked depth first, names sorted; symlinks (the pmxcfs virtual links
    `local`, `qemu-server`, `lxc`, `openvz`) are skipped;
  - every entry gets inode == version, increasing from 1 in walk order; writer 0;
    directories are type 4 with NULL data, regular files type 8 with their bytes;
    mtime is int(lstat().st_mtime);
  - the `__version__` row (inode 0, parent 0, type 8, data NULL) is inserted last with the
    highest version and the mtime of ETC_PVE_DIR.
Exits non-zero with a message on any error (OUT_DB must not exist yet; it is removed again on failure).
"""
import os
import sqlite3
import stat
import sys

# verbatim from the fixtures README recipe (the pmxcfs schema, database.c)
CREATE_TABLE = "CREATE TABLE IF NOT EXISTS tree (inode INTEGER PRIMARY KEY NOT NULL, parent INTEGER NOT NULL CHECK(typeof(parent)=='integer'), version INTEGER NOT NULL CHECK(typeof(version)=='integer'), writer INTEGER NOT NULL CHECK(typeof(writer)=='integer'), mtime INTEGER NOT NULL CHECK(typeof(mtime)=='integer'), type INTEGER NOT NULL CHECK(typeof(type)=='integer'), name TEXT NOT NULL, data BLOB)"


class Fail(Exception):
    pass


def check_name(name, path):
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise Fail(f"{path!r}: file name is not valid UTF-8")


def build(root, dbfile):
    db = sqlite3.connect(dbfile)
    try:
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise Fail(f"{dbfile}: could not switch to WAL mode (got {mode!r})")
        db.execute(CREATE_TABLE)
        version = 0
        stats = {"dirs": 0, "files": 0}

        def walk(path, parent):
            nonlocal version
            for name in sorted(os.listdir(path)):
                p = os.path.join(path, name)
                check_name(name, p)
                st = os.lstat(p)
                if stat.S_ISLNK(st.st_mode):
                    continue  # pmxcfs virtual links are not stored
                version += 1  # inode == version at creation
                mtime = int(st.st_mtime)
                if stat.S_ISDIR(st.st_mode):
                    db.execute(
                        "INSERT INTO tree VALUES (?,?,?,0,?,4,?,NULL)",
                        (version, parent, version, mtime, name),
                    )
                    stats["dirs"] += 1
                    walk(p, version)
                elif stat.S_ISREG(st.st_mode):
                    with open(p, "rb") as f:
                        data = f.read()
                    db.execute(
                        "INSERT INTO tree VALUES (?,?,?,0,?,8,?,?)",
                        (version, parent, version, mtime, name, data),
                    )
                    stats["files"] += 1
                else:
                    raise Fail(f"{p}: neither a regular file, a directory nor a symlink")

        walk(root, 0)
        db.execute(
            "INSERT INTO tree VALUES (0,0,?,0,?,8,'__version__',NULL)",
            (version, int(os.stat(root).st_mtime)),
        )
        db.commit()
        return stats, version
    finally:
        db.close()


def main(argv):
    if len(argv) != 3:
        print("usage: make_config_db.py ETC_PVE_DIR OUT_DB", file=sys.stderr)
        return 2
    root, dbfile = argv[1], argv[2]
    if not os.path.isdir(root):
        print(f"make_config_db.py: {root}: not a directory", file=sys.stderr)
        return 1
    if os.path.lexists(dbfile):
        print(f"make_config_db.py: {dbfile}: already exists, refusing to add to it", file=sys.stderr)
        return 1
    try:
        stats, version = build(root, dbfile)
    except (Fail, OSError, sqlite3.Error) as e:
        for suffix in ("", "-wal", "-shm", "-journal"):
            try:
                os.unlink(dbfile + suffix)
            except FileNotFoundError:
                pass
        print(f"make_config_db.py: {e}", file=sys.stderr)
        return 1
    print(f"{dbfile}: {stats['dirs']} dirs, {stats['files']} files, version {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
