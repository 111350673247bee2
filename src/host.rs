//! The host seen through a root directory: `/` in production, a fixture tree in tests.
//!
//! Every read of a host path goes through [`Root`], so `--root DIR` redirects all of them and tests never
//! touch the real `/etc`.

use rustix::system::Uname;
use serde::Serialize;
use std::collections::HashMap;
use std::ffi::CStr;
use std::fmt;
use std::path::{Component, Path, PathBuf};

/// A host file system rooted at a directory.
#[derive(Debug, Clone)]
pub struct Root {
    dir: PathBuf,
    /// The directory, opened on first use by [`Root::dir_fd`].
    fd: std::sync::OnceLock<std::sync::Arc<std::os::fd::OwnedFd>>,
}

impl Root {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Root {
            dir: dir.into(),
            fd: std::sync::OnceLock::new(),
        }
    }

    /// A handle on the root directory (`O_PATH`), opened once: reads relative to it never leave the root
    /// (see `collect`).
    pub fn dir_fd(&self) -> std::io::Result<std::os::fd::BorrowedFd<'_>> {
        use rustix::fs::{Mode, OFlags};
        use std::os::fd::AsFd;
        if let Some(fd) = self.fd.get() {
            return Ok(fd.as_fd());
        }
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = rustix::fs::open(&self.dir, flags, Mode::empty())?;
        Ok(self.fd.get_or_init(|| std::sync::Arc::new(fd)).as_fd())
    }

    /// The directory this root maps `/` to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether this is the real root of the running system (commands run only then, by default).
    pub fn is_system_root(&self) -> bool {
        self.dir == Path::new("/")
            || std::fs::canonicalize(&self.dir).is_ok_and(|d| d == Path::new("/"))
    }

    /// Map an absolute host path (`/etc/pve`) to the path to open (`<root>/etc/pve`).
    /// `..` and `.` components are dropped so a host path can never leave the root.
    pub fn path(&self, host_path: impl AsRef<Path>) -> PathBuf {
        let mut out = self.dir.clone();
        for comp in host_path.as_ref().components() {
            if let Component::Normal(c) = comp {
                out.push(c);
            }
        }
        out
    }

    /// Read a small host file as text; `None` when it does not exist or cannot be read.
    pub fn read_text(&self, host_path: &str) -> Option<String> {
        std::fs::read(self.path(host_path))
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// A field of the running kernel's uname: only on the real root, since the running kernel says nothing
    /// about a host seen through another root.
    fn uname(&self, field: fn(&Uname) -> &CStr) -> Option<String> {
        let value = |u| field(&u).to_string_lossy().into_owned();
        self.is_system_root()
            .then(|| value(rustix::system::uname()))
    }

    fn dir_non_empty(&self, host_path: &str) -> bool {
        std::fs::read_dir(self.path(host_path)).is_ok_and(|mut d| d.next().is_some())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Pve,
    Pbs,
    /// PVE and PBS on one machine.
    Dual,
    /// Plain Debian (or anything else): the system categories only.
    Linux,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Pve => "pve",
            Role::Pbs => "pbs",
            Role::Dual => "dual",
            Role::Linux => "linux",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        [Role::Pve, Role::Pbs, Role::Dual, Role::Linux]
            .into_iter()
            .find(|r| r.name() == s)
    }
    pub fn has_pve(self) -> bool {
        matches!(self, Role::Pve | Role::Dual)
    }
    pub fn has_pbs(self) -> bool {
        matches!(self, Role::Pbs | Role::Dual)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Versions the host shows, where it shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Versions {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pve: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pbs: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub debian: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub kernel: Option<String>,
}

/// Facts about the host that name and describe a backup.
#[derive(Debug, Clone, Serialize)]
pub struct HostFacts {
    pub hostname: String,
    pub role: Role,
    pub versions: Versions,
    /// PVE: whether /etc/pve shows files (pmxcfs mounted); false means the tree must come from config.db.
    pub pve_mounted: bool,
}

impl HostFacts {
    pub fn detect(root: &Root) -> HostFacts {
        let dpkg = root
            .read_text("/var/lib/dpkg/status")
            .map(|s| parse_dpkg_status(&s))
            .unwrap_or_default();
        let installed = |name: &str| dpkg.get(name).cloned();

        let pve_pkg = installed("pve-manager");
        let pbs_pkg = installed("proxmox-backup-server");
        let pve_mounted = root.dir_non_empty("/etc/pve");
        let pve = pve_pkg.is_some()
            || pve_mounted
            || root.path(crate::catalog::CONFIG_DB).is_file()
            || root.path("/usr/bin/pveversion").exists();
        let pbs = pbs_pkg.is_some()
            || root.dir_non_empty("/etc/proxmox-backup")
            || root.path("/usr/sbin/proxmox-backup-proxy").exists();
        let role = match (pve, pbs) {
            (true, true) => Role::Dual,
            (true, false) => Role::Pve,
            (false, true) => Role::Pbs,
            (false, false) => Role::Linux,
        };
        let versions = Versions {
            pve: pve_pkg.or_else(|| installed("proxmox-ve")),
            pbs: pbs_pkg,
            debian: root
                .read_text("/etc/debian_version")
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
            kernel: root.uname(Uname::release),
        };
        HostFacts {
            hostname: hostname(root),
            role,
            versions,
            pve_mounted,
        }
    }
}

/// Short host name: `/etc/hostname` under the root, else (on the real root) the kernel's node name.
/// Reduced to the characters archive names allow.
pub fn hostname(root: &Root) -> String {
    let from_file = root.read_text("/etc/hostname").and_then(|s| {
        s.lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
    });
    let raw = from_file.or_else(|| root.uname(Uname::nodename));
    let short = raw.as_deref().unwrap_or("").split('.').next().unwrap_or("");
    let clean: String = short
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect::<String>()
        .to_ascii_lowercase();
    if clean.is_empty() {
        "localhost".into()
    } else {
        clean
    }
}

/// Installed packages, name → version, from `/var/lib/dpkg/status` (stanzas whose Status ends in `installed`).
pub fn parse_dpkg_status(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for stanza in text.split("\n\n") {
        let mut name = None;
        let mut version = None;
        let mut installed = false;
        for line in stanza.lines() {
            if let Some(v) = line.strip_prefix("Package:") {
                name = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("Version:") {
                version = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("Status:") {
                installed = v.split_whitespace().last() == Some("installed");
            }
        }
        if let (Some(name), Some(version), true) = (name, version, installed) {
            out.entry(name).or_insert(version);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn guest_interfaces_are_told_from_the_hosts() {
        for guest in [
            "tap100i0",
            "veth101i1",
            "fwbr100i0",
            "fwpr100p0",
            "fwln100i0",
        ] {
            assert!(super::is_guest_interface(guest), "{guest}");
        }
        for host in [
            "eno1", "vmbr0", "tap0", "tapi0", "veth", "vethab12", "fwbr", "bond0", "tap100i",
        ] {
            assert!(!super::is_guest_interface(host), "{host}");
        }
    }

    #[test]
    fn nics_of_this_machine() {
        // The real /sys, read only: every interface but loopback, each with a name and a kind.
        let found = nics(&Root::new("/"));
        let listed = std::fs::read_dir("/sys/class/net").map_or(0, |rd| {
            rd.flatten()
                .filter(|e| e.file_name() != "lo")
                .filter(|e| !super::is_guest_interface(&e.file_name().to_string_lossy()))
                .count()
        });
        assert_eq!(found.len(), listed, "{found:?}");
        assert!(
            found
                .iter()
                .all(|n| !n.name.is_empty() && !n.kind.is_empty())
        );
    }

    use super::*;

    #[test]
    fn root_path_never_leaves_the_root() {
        let r = Root::new("/x/root");
        assert_eq!(r.path("/etc/pve"), PathBuf::from("/x/root/etc/pve"));
        assert_eq!(
            r.path("/../../etc/shadow"),
            PathBuf::from("/x/root/etc/shadow")
        );
        assert_eq!(r.path("etc/./hosts"), PathBuf::from("/x/root/etc/hosts"));
    }

    #[test]
    fn dpkg_status_only_installed_packages() {
        let text = "Package: pve-manager\nStatus: install ok installed\nVersion: 9.0.11\n\n\
                    Package: proxmox-backup-server\nStatus: deinstall ok config-files\nVersion: 3.4.1\n\n\
                    Package: zfsutils-linux\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.3.4-pve1\n";
        let pkgs = parse_dpkg_status(text);
        let want = [("pve-manager", "9.0.11"), ("zfsutils-linux", "2.3.4-pve1")];
        let want = want.map(|(n, v)| (n.to_string(), v.to_string()));
        assert_eq!(pkgs, HashMap::from(want));
    }

    #[test]
    fn roles_from_files() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path());
        assert_eq!(HostFacts::detect(&root).role, Role::Linux);
        assert_eq!(HostFacts::detect(&root).hostname, "localhost");
        std::fs::create_dir_all(t.path().join("etc/proxmox-backup")).unwrap();
        std::fs::write(t.path().join("etc/proxmox-backup/user.cfg"), "x").unwrap();
        assert_eq!(HostFacts::detect(&root).role, Role::Pbs);
        std::fs::create_dir_all(t.path().join("var/lib/pve-cluster")).unwrap();
        std::fs::write(t.path().join("var/lib/pve-cluster/config.db"), "").unwrap();
        let facts = HostFacts::detect(&root);
        assert_eq!(facts.role, Role::Dual);
        assert!(!facts.pve_mounted);
        std::fs::write(t.path().join("etc/hostname"), "PVE1.example.com\n").unwrap();
        assert_eq!(hostname(&root), "pve1");
    }
}

/// One network interface as `/sys/class/net` describes it: what the rebuild night needs to pin names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Nic {
    pub name: String,
    /// `physical` (has a device), `bond`, `bridge` or `virtual`.
    pub kind: &'static str,
    pub mac: Option<String>,
    /// The burnt-in address: a bond member's `bonding_slave/perm_hwaddr`, else `address` when
    /// `addr_assign_type` is 0 (permanent).
    pub permanent_mac: Option<String>,
    /// The device's path under /sys/devices (`pci0000:00/0000:00:1c.0/0000:02:00.0`).
    pub device_path: Option<String>,
    /// udev's `ID_PATH` for a PCI device (`pci-0000:02:00.0`).
    pub id_path: Option<String>,
    pub driver: Option<String>,
    /// The bond or bridge this interface is a member of.
    pub master: Option<String>,
    /// A bond's slaves or a bridge's ports.
    pub members: Vec<String>,
}

/// A guest's interface that PVE creates when the guest starts (`tap100i0`, `veth101i0`, and the firewall
/// bridge's `fwbr100i0`, `fwpr100p0`, `fwln100i0`): not configuration, and hundreds on a busy host.
pub fn is_guest_interface(name: &str) -> bool {
    ["tap", "veth", "fwbr", "fwpr", "fwln"].iter().any(|p| {
        name.strip_prefix(p).is_some_and(|rest| {
            let (vmid, n) = rest.split_once(['i', 'p']).unwrap_or(("", ""));
            !vmid.is_empty()
                && !n.is_empty()
                && vmid.bytes().all(|b| b.is_ascii_digit())
                && n.bytes().all(|b| b.is_ascii_digit())
        })
    })
}

/// The interfaces under `<root>/sys/class/net`, by name (loopback and guests' interfaces left out); empty
/// when there is no /sys.
pub fn nics(root: &Root) -> Vec<Nic> {
    let class = root.path("/sys/class/net");
    let Ok(entries) = std::fs::read_dir(&class) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "lo" && !is_guest_interface(n))
        .collect();
    names.sort();
    names.iter().map(|n| nic(&class.join(n), n)).collect()
}

fn nic(dir: &Path, name: &str) -> Nic {
    let text = |f: &str| {
        let t = std::fs::read_to_string(dir.join(f)).ok()?;
        Some(t.trim().to_string()).filter(|t| !t.is_empty())
    };
    let link_name = |f: &str| {
        let target = std::fs::read_link(dir.join(f)).ok()?;
        Some(target.file_name()?.to_string_lossy().into_owned())
    };
    let mac = text("address");
    let permanent_mac = text("bonding_slave/perm_hwaddr")
        .or_else(|| (text("addr_assign_type").as_deref() == Some("0")).then(|| mac.clone())?);
    // /sys/class/net/NAME -> ../../devices/<device path>/net/NAME
    let device_path = std::fs::read_link(dir).ok().and_then(|t| {
        let t = t.to_string_lossy().into_owned();
        let path = t
            .split_once("devices/")?
            .1
            .rsplit_once("/net/")?
            .0
            .to_string();
        (!path.starts_with("virtual")).then_some(path)
    });
    let device = link_name("device");
    let id_path = device
        .as_ref()
        .filter(|_| device_path.as_deref().is_some_and(|p| p.starts_with("pci")))
        .map(|d| format!("pci-{d}"));
    let ports = || {
        let rd = std::fs::read_dir(dir.join("brif")).ok()?;
        let mut v: Vec<String> = rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        Some(v)
    };
    let (kind, members) = if dir.join("bonding").is_dir() {
        let slaves = text("bonding/slaves").unwrap_or_default();
        (
            "bond",
            slaves.split_whitespace().map(String::from).collect(),
        )
    } else if dir.join("bridge").is_dir() {
        ("bridge", ports().unwrap_or_default())
    } else if device.is_some() {
        ("physical", Vec::new())
    } else {
        ("virtual", Vec::new())
    };
    Nic {
        name: name.to_string(),
        kind,
        mac,
        permanent_mac,
        device_path,
        id_path,
        driver: link_name("device/driver"),
        master: link_name("master"),
        members,
    }
}
