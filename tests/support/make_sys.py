#!/usr/bin/env python3
"""Build the fake /sys trees of tests/fixtures/sys (NIC remap, issue 14): `make_sys.py OUT_DIR`.

Each scenario becomes OUT_DIR/<scenario>/sys/... laid out like a real sysfs (Linux 6.x, modelled on the
trees of real PVE hosts): /sys/class/net/NAME is a relative symlink into /sys/devices, a PCI NIC lives under
its PCI path with `device` and `driver` links, bond members carry bonding_slave/perm_hwaddr (their
`address` is the bond's), bridges have bridge/ and brif/, VLANs and bonds live under devices/virtual/net.
Only what proxkeep reads (src/host.rs `nic`) plus a few neighbours for realism; no values from real hosts
(MAC prefixes are real vendors' OUIs, the rest is made up).
"""

import os
import sys

# name, PCI function, PCI bridge above it (None: on the root complex), driver, burnt-in MAC
SCENARIOS = {
    # The archived host: two igb ports bonded (bond0), the onboard e1000e in vmbr0 with VLAN 100 on it.
    "old": {
        "nics": [
            ("eno1", "0000:02:00.0", "0000:00:1c.0", "igb", "3c:ec:ef:00:00:01"),
            ("eno2", "0000:02:00.1", "0000:00:1c.0", "igb", "3c:ec:ef:00:00:02"),
            ("eno3", "0000:00:1f.6", None, "e1000e", "3c:ec:ef:00:00:03"),
        ],
        "bonds": {"bond0": ["eno1", "eno2"]},
        "bridges": {"vmbr0": ["eno3"]},
        "vlans": {"eno3.100": "eno3"},
    },
    # The same machine freshly installed: same cards, same MACs, predictable names by path.
    "same-renamed": {
        "nics": [
            ("enp2s0f0", "0000:02:00.0", "0000:00:1c.0", "igb", "3c:ec:ef:00:00:01"),
            ("enp2s0f1", "0000:02:00.1", "0000:00:1c.0", "igb", "3c:ec:ef:00:00:02"),
            ("enp0s31f6", "0000:00:1f.6", None, "e1000e", "3c:ec:ef:00:00:03"),
        ],
        "bridges": {"vmbr0": ["enp0s31f6"]},
    },
    # Another board of the same model with other cards in the same slots: new MACs, an ixgbe where the igb was,
    # and the onboard NIC now named eno1.
    "new-same-slots": {
        "nics": [
            ("enp2s0f0", "0000:02:00.0", "0000:00:1c.0", "ixgbe", "a0:36:9f:00:00:01"),
            ("enp2s0f1", "0000:02:00.1", "0000:00:1c.0", "ixgbe", "a0:36:9f:00:00:02"),
            ("eno1", "0000:00:1f.6", None, "e1000e", "58:47:ca:00:00:01"),
        ],
        "bridges": {"vmbr0": ["eno1"]},
    },
    # Other hardware: the onboard NIC in the same slot, one igb port in another slot, and a Realtek card.
    "unmatched": {
        "nics": [
            ("eno1", "0000:00:1f.6", None, "e1000e", "58:47:ca:00:00:01"),
            ("enp5s0", "0000:05:00.0", "0000:00:1c.4", "igb", "b4:96:91:00:00:01"),
            ("enp6s0", "0000:06:00.0", "0000:00:1c.5", "r8169", "00:e0:4c:00:00:01"),
        ],
        "bridges": {"vmbr0": ["eno1"]},
    },
}

PCI_IDS = {"igb": ("0x8086", "0x1521"), "ixgbe": ("0x8086", "0x10fb"), "e1000e": ("0x8086", "0x15b8"),
           "r8169": ("0x10ec", "0x8168")}


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text + "\n")


def link(target, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.symlink(target, path)


def build(top, spec):
    sysd = os.path.join(top, "sys")
    dev = os.path.join(sysd, "devices")
    cls = os.path.join(sysd, "class/net")
    os.makedirs(cls)
    where = {}  # name -> device dir relative to /sys/devices

    def iface(rel, name, mac, assign):
        d = os.path.join(dev, rel, "net", name)
        write(os.path.join(d, "address"), mac)
        write(os.path.join(d, "addr_assign_type"), str(assign))
        write(os.path.join(d, "type"), "1")
        write(os.path.join(d, "mtu"), "1500")
        link(f"../../devices/{rel}/net/{name}", os.path.join(cls, name))
        where[name] = f"{rel}/net/{name}"
        return d

    def virtual(name, mac, assign):
        return iface("virtual", name, mac, assign)

    lo = virtual("lo", "00:00:00:00:00:00", 0)
    write(os.path.join(lo, "type"), "772")
    macs = {}
    for name, fn, bridge, driver, mac in spec["nics"]:
        rel = f"pci0000:00/{bridge}/{fn}" if bridge else f"pci0000:00/{fn}"
        pci = os.path.join(dev, rel)
        vendor, device = PCI_IDS[driver]
        write(os.path.join(pci, "vendor"), vendor)
        write(os.path.join(pci, "device"), device)
        write(os.path.join(pci, "class"), "0x020000")
        up = "../" * (rel.count("/") + 2)
        link(f"{up}bus/pci/drivers/{driver}", os.path.join(pci, "driver"))
        write(os.path.join(sysd, "bus/pci/drivers", driver, "uevent"), f"DRIVER={driver}")
        d = iface(rel, name, mac, 0)
        link(f"../../../{fn}", os.path.join(d, "device"))
        macs[name] = mac
    for bond, slaves in spec.get("bonds", {}).items():
        first = macs[slaves[0]]
        b = virtual(bond, first, 3)
        write(os.path.join(b, "bonding/slaves"), " ".join(slaves))
        write(os.path.join(b, "bonding/mode"), "802.3ad 4")
        for s in slaves:
            d = os.path.join(dev, where[s])
            # A bond member shows the bond's address; its own is in bonding_slave/perm_hwaddr.
            write(os.path.join(d, "address"), first)
            write(os.path.join(d, "addr_assign_type"), "3")
            write(os.path.join(d, "bonding_slave/perm_hwaddr"), macs[s])
            write(os.path.join(d, "bonding_slave/state"), "active")
            up = "../" * (where[s].count("/") + 1)
            link(f"{up}virtual/net/{bond}", os.path.join(d, "master"))
    for bridge, ports in spec.get("bridges", {}).items():
        br = virtual(bridge, macs.get(ports[0], "02:00:00:00:00:01"), 3)
        write(os.path.join(br, "bridge/stp_state"), "0")
        write(os.path.join(br, "bridge/forward_delay"), "0")
        for p in ports:
            d = os.path.join(dev, where[p])
            write(os.path.join(d, "brport/state"), "3")
            link(f"../../../../{where[p]}/brport", os.path.join(br, "brif", p))
            up = "../" * (where[p].count("/") + 1)
            link(f"{up}virtual/net/{bridge}", os.path.join(d, "master"))
    for vlan, parent in spec.get("vlans", {}).items():
        v = virtual(vlan, macs[parent], 2)
        link(f"../../../{where[parent]}", os.path.join(v, f"lower_{parent}"))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_sys.py OUT_DIR")
    for name, spec in SCENARIOS.items():
        top = os.path.join(sys.argv[1], name)
        if os.path.exists(top):
            sys.exit(f"{top} exists: remove it first")
        build(top, spec)


if __name__ == "__main__":
    main()
