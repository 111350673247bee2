#!/usr/bin/env python3
"""Generate a bench host root: ~20,000 config-like files, ~300 MB, under ROOT/etc/pve (so the catalog collects it).

usage: gen_tree.py ROOT [--files N] [--mb MB] [--seed S] [--incompressible]
Deterministic for a given seed. Files look like PVE section configs: keys, values, ids, comments, with a long tail
of larger files (logs, JSON state) so sizes vary as on a real host.
"""
import argparse, os, random

p = argparse.ArgumentParser()
p.add_argument("root")
p.add_argument("--files", type=int, default=20000)
p.add_argument("--mb", type=int, default=300)
p.add_argument("--seed", type=int, default=42)
p.add_argument("--incompressible", action="store_true", help="random bytes instead of config text")
a = p.parse_args()
rnd = random.Random(a.seed)
base = os.path.join(a.root, "etc", "pve")
os.makedirs(base, exist_ok=True)
os.makedirs(os.path.join(a.root, "var", "lib", "pve-cluster"), exist_ok=True)
with open(os.path.join(a.root, "etc", "hostname"), "w") as f:
    f.write("bench\n")

KEYS = ["memory", "cores", "sockets", "net0", "scsi0", "boot", "ostype", "name", "agent", "cpu", "numa", "bios",
        "vga", "serial0", "tags", "onboot", "startup", "hostpci0", "efidisk0", "tpmstate0", "ipconfig0", "sshkeys"]
WORDS = ["local-lvm", "virtio", "vmbr0", "q35", "host", "l26", "ovmf", "enabled", "discard=on", "iothread=1",
         "ssd=1", "cache=writeback", "firewall=1", "order=scsi0", "size=32G", "rate=100", "tag=20"]

def text(target):
    out, n = [], 0
    while n < target:
        if rnd.random() < 0.05:
            line = "# %s %08x\n" % (rnd.choice(WORDS), rnd.getrandbits(32))
        else:
            line = "%s: %s,%s,%s=%d,uuid=%08x-%04x\n" % (rnd.choice(KEYS), rnd.choice(WORDS), rnd.choice(WORDS),
                                                       rnd.choice(KEYS), rnd.randint(0, 99999),
                                                       rnd.getrandbits(32), rnd.getrandbits(16))
        out.append(line); n += len(line)
    return "".join(out)[:target].encode()

total = a.mb * 1_000_000
# Sizes: log-normal-ish, scaled so they sum to the target.
weights = [rnd.lognormvariate(0, 1.2) for _ in range(a.files)]
scale = total / sum(weights)
chunk = text(1 << 20)  # reuse slices of a 1 MiB text pool, cheap and still varied
written = 0
for i, w in enumerate(weights):
    size = max(1, int(w * scale))
    d = os.path.join(base, "nodes", "n%02d" % (i % 16), "dir%03d" % (i % 500))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "%05d.conf" % i), "wb") as f:
        if a.incompressible:
            f.write(os.urandom(size))
        else:
            off = rnd.randrange(0, len(chunk))
            data = (chunk[off:] + chunk[:off]) * (size // len(chunk) + 1)
            # Make every file unique so the compressor cannot dedupe whole files.
            f.write(b"# file %d %08x\n" % (i, rnd.getrandbits(32)) + data[: max(0, size - 20)])
    written += size
print("%d files, %.1f MB under %s" % (a.files, written / 1e6, base))
