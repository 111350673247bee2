//! What proxkeep collects, as data: categories of paths, globs, commands and the pmxcfs database.
//!
//! The catalog is compiled in and printed by `proxkeep catalog`, so an admin can see exactly what a backup
//! will hold without reading code. Everything else (walker, command runner, restore guards) reads it.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Applies {
    /// Every host (plain Debian included).
    Any,
    /// Hosts running Proxmox VE (role `pve` or `dual`).
    Pve,
    /// Hosts running Proxmox Backup Server (role `pbs` or `dual`).
    Pbs,
}

/// One thing to collect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Source {
    /// A file, symlink or directory tree (absolute host path).
    Path { path: &'static str },
    /// A glob over absolute host paths; wildcards only in the last components (`/etc/systemd/system/*.mount`).
    /// A matching directory is collected whole.
    Glob { pattern: &'static str },
    /// A glob as [`Source::Glob`], but a matching directory whose files total more than `max` bytes is left
    /// out (`catalog` and `--dry-run` name it): dot-directories of root's home are config up to a size.
    SmallDirs { pattern: &'static str, max: u64 },
    /// A tree as [`Source::Path`], but a file over `max` bytes (a vendored binary) is not stored: its path,
    /// size and SHA-256 are listed in `proxkeep/listed-files.json`.
    Listing { path: &'static str, max: u64 },
    /// The files another file names, each collected as a [`Source::Path`]: key files in `/etc/crypttab`,
    /// `credentials=` files in `/etc/fstab`.
    NamedIn { file: &'static str, names: Names },
    /// The files proxkeep's own config names: `[encryption] recipients_file`, and with `[[remote]]`s the
    /// rclone config (`$RCLONE_CONFIG`, else root's). `passphrase_file` never: the key must not travel
    /// inside the archive it opens.
    OwnConfig,
    /// Network interfaces from `/sys/class/net` under the root (name, permanent MAC, PCI path, driver, bond
    /// and bridge membership), stored as `proxkeep/commands/<category>/nics.json`.
    Nics,
    /// A command whose stdout is stored as `proxkeep/commands/<category>/<output>`.
    Command {
        output: &'static str,
        program: &'static str,
        args: &'static [&'static str],
    },
    /// Consistent snapshot of `/var/lib/pve-cluster/config.db` (SQLite online backup), stored as
    /// `proxkeep/pmxcfs/config.db`; also rebuilds `/etc/pve` from it when the mount is empty.
    Pmxcfs,
}

/// How a [`Source::NamedIn`] file names other files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Names {
    /// crypttab(5): the third field, unless `none`, `-`, a device or a key on another device (`path:dev`).
    CrypttabKeys,
    /// fstab(5): `credentials=` / `cred=` in the options (CIFS).
    FstabCredentials,
}

impl Names {
    /// The absolute paths `text` (the naming file's content) names.
    pub fn paths(self, text: &str) -> Vec<String> {
        let lines = text.lines().map(str::trim);
        let fields = lines
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split_whitespace().collect());
        let named = fields.flat_map(|f: Vec<&str>| match self {
            Names::CrypttabKeys => f
                .get(2)
                .map(|k| k.to_string())
                .into_iter()
                .collect::<Vec<_>>(),
            Names::FstabCredentials => (f.get(3).into_iter())
                .flat_map(|o| o.split(','))
                .filter_map(|o| o.strip_prefix("credentials=").or(o.strip_prefix("cred=")))
                .map(String::from)
                .collect(),
        });
        let usable = |p: &String| {
            p.starts_with('/')
                && !p.contains(':')
                && !["/dev/", "/proc/", "/sys/"]
                    .iter()
                    .any(|d| p.starts_with(d))
        };
        named.filter(usable).collect()
    }
}

/// A named group of sources that backup and restore handle as a unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Category {
    pub name: &'static str,
    pub description: &'static str,
    pub applies: Applies,
    pub sources: &'static [Source],
    /// Globs (absolute host paths) left out of this category's trees.
    pub exclude: &'static [&'static str],
}

/// Path of the pmxcfs database on a PVE host.
pub const CONFIG_DB: &str = "/var/lib/pve-cluster/config.db";

/// Files bound to this machine's hardware or installation. Restore holds them back unless they are named
/// explicitly (`--only`, `--path`): restoring a foreign fstab or zpool.cache onto a new install breaks boot.
pub const HELD_ON_RESTORE: &[&str] = &[
    "/etc/fstab",
    "/etc/crypttab",
    "/etc/kernel/proxmox-boot-uuids",
    "/etc/zfs/zpool.cache",
    "/etc/network/interfaces",
    "/etc/systemd/network/*.link",
    "/usr/local/lib/systemd/network/*.link",
    "/etc/udev/rules.d/*net*.rules",
    "/etc/hostname",
    "/etc/hosts",
    // System accounts belong to the install (packages allocate their IDs); restore merges these.
    "/etc/passwd",
    "/etc/group",
    "/etc/shadow",
    "/etc/gshadow",
];

/// Left out of pve-cluster: the raw db files, replaced by the consistent snapshot (a copy of a WAL-mode db is
/// not consistent), and the pmxcfs status files in /etc/pve: generated by pmxcfs at run time, not stored in
/// config.db, not restorable.
const PVE_CLUSTER_EXCLUDE: &[&str] = &[
    "/var/lib/pve-cluster/config.db",
    "/var/lib/pve-cluster/config.db-wal",
    "/var/lib/pve-cluster/config.db-shm",
    "/etc/pve/.version",
    "/etc/pve/.members",
    "/etc/pve/.vmlist",
    "/etc/pve/.clusterlog",
    "/etc/pve/.rrd",
    "/etc/pve/.debug",
];

/// Left out of root's home: not configuration, and often most of its bytes.
const ROOT_HOME_EXCLUDE: &[&str] = &[
    // caches and trash
    "/root/.cache",
    "/root/.ccache",
    "/root/.local/share/Trash",
    "/root/.Trash",
    // toolchains and language package stores
    "/root/.cargo",
    "/root/.rustup",
    "/root/.npm",
    "/root/.nvm",
    "/root/.yarn",
    "/root/.pnpm-store",
    "/root/.local/share/pnpm",
    "/root/.bun",
    "/root/.deno",
    "/root/.pyenv",
    "/root/.local/lib",
    "/root/.local/pipx",
    "/root/.conda",
    "/root/.m2",
    "/root/.gradle",
    "/root/.ivy2",
    "/root/.sbt",
    "/root/.go",
    "/root/.dotnet",
    "/root/.nuget",
    "/root/.cpan",
    "/root/.ghcup",
    "/root/.stack",
    "/root/.opam",
    "/root/.sdkman",
    // editor servers
    "/root/.vscode-server",
    "/root/.vscode-remote-containers",
    "/root/.cursor-server",
    "/root/.windsurf-server",
    "/root/.local/share/nvim",
    // histories
    "/root/.*_history",
    "/root/.history",
    "/root/.lesshst",
    "/root/.viminfo",
    "/root/.wget-hsts",
    "/root/.local/share/fish/fish_history",
];

const fn p(path: &'static str) -> Source {
    Source::Path { path }
}
const fn g(pattern: &'static str) -> Source {
    Source::Glob { pattern }
}
const fn c(output: &'static str, program: &'static str, args: &'static [&'static str]) -> Source {
    Source::Command {
        output,
        program,
        args,
    }
}

/// [`c`] for the Proxmox tools, whose JSON output takes `--output-format json`.
macro_rules! c_json {
    ($output:literal, $program:literal, $($arg:literal),*) => {
        c($output, $program, &[$($arg,)* "--output-format", "json"])
    };
}

/// The catalog, in collection order. When two categories reach the same path, the first one owns it.
pub const CATEGORIES: &[Category] = &[
    Category {
        name: "pve-cluster",
        description: "/etc/pve (pmxcfs: guests, storage, users, cluster, certificates) and its config.db",
        applies: Applies::Pve,
        sources: &[
            p("/etc/pve"),
            Source::Pmxcfs,
            p("/var/lib/pve-cluster"),
            c("pvecm-status.txt", "pvecm", &["status"]),
            c("pvecm-nodes.txt", "pvecm", &["nodes"]),
            c_json!(
                "cluster-resources.json",
                "pvesh",
                "get",
                "/cluster/resources"
            ),
            c_json!(
                "ha-status.json",
                "pvesh",
                "get",
                "/cluster/ha/status/current"
            ),
            c_json!("pveum-users.json", "pveum", "user", "list"),
        ],
        exclude: PVE_CLUSTER_EXCLUDE,
    },
    Category {
        name: "corosync",
        description: "corosync cluster engine config and its authkey (not in /etc/pve)",
        applies: Applies::Pve,
        sources: &[p("/etc/corosync")],
        exclude: &[],
    },
    Category {
        name: "pve-host",
        description: "node-local PVE files: vzdump.conf, snippets, vBIOS files, firewall state",
        applies: Applies::Pve,
        sources: &[
            p("/etc/vzdump.conf"),
            p("/var/lib/vz/snippets"),
            g("/usr/share/kvm/*.vbios"),
            p("/var/lib/pve-firewall"),
            p("/etc/pve-manager"),
            c("pveversion.txt", "pveversion", &["-v"]),
            c("pvesm-status.txt", "pvesm", &["status"]),
            c("qm-list.txt", "qm", &["list"]),
            c("pct-list.txt", "pct", &["list"]),
            c_json!("nodes.json", "pvesh", "get", "/nodes"),
        ],
        exclude: &[],
    },
    Category {
        name: "ceph",
        description: "Ceph client and cluster config (no daemon data)",
        applies: Applies::Pve,
        sources: &[
            p("/etc/ceph"),
            c("ceph-status.json", "ceph", &["status", "--format", "json"]),
            c(
                "ceph-osd-tree.json",
                "ceph",
                &["osd", "tree", "--format", "json"],
            ),
        ],
        exclude: &[],
    },
    Category {
        name: "pbs-config",
        description: "/etc/proxmox-backup whole: datastores, users, ACLs, jobs, remotes, keys, certificates",
        applies: Applies::Pbs,
        sources: &[
            p("/etc/proxmox-backup"),
            c_json!("pbs-versions.json", "proxmox-backup-manager", "versions"),
            c_json!(
                "datastore-list.json",
                "proxmox-backup-manager",
                "datastore",
                "list"
            ),
            c_json!("user-list.json", "proxmox-backup-manager", "user", "list"),
            c_json!(
                "remote-list.json",
                "proxmox-backup-manager",
                "remote",
                "list"
            ),
            c_json!(
                "sync-job-list.json",
                "proxmox-backup-manager",
                "sync-job",
                "list"
            ),
            c_json!("disk-list.json", "proxmox-backup-manager", "disk", "list"),
        ],
        exclude: &[],
    },
    Category {
        name: "network",
        description: "interfaces, systemd-networkd and .link pinning, hosts, hostname, resolver, FRR, NIC inventory",
        applies: Applies::Any,
        sources: &[
            p("/etc/network"),
            p("/etc/systemd/network"),
            p("/usr/local/lib/systemd/network"),
            p("/etc/hosts"),
            p("/etc/hostname"),
            p("/etc/resolv.conf"),
            p("/etc/frr"),
            Source::Nics,
            c("ip-addr.json", "ip", &["-j", "addr"]),
            c("ip-link.json", "ip", &["-j", "-d", "link"]),
            c(
                "ip-route.json",
                "ip",
                &["-j", "route", "show", "table", "all"],
            ),
        ],
        exclude: &[],
    },
    Category {
        name: "storage-stack",
        description: "fstab, crypttab and the key and credentials files they name, iSCSI, multipath, autofs, mdadm, LVM config and metadata backups, mount units",
        applies: Applies::Any,
        sources: &[
            p("/etc/fstab"),
            p("/etc/crypttab"),
            Source::NamedIn {
                file: "/etc/crypttab",
                names: Names::CrypttabKeys,
            },
            Source::NamedIn {
                file: "/etc/fstab",
                names: Names::FstabCredentials,
            },
            p("/etc/iscsi"),
            p("/var/lib/iscsi"),
            g("/etc/multipath*"),
            g("/etc/auto.*"),
            p("/etc/mdadm"),
            p("/etc/lvm/lvm.conf"),
            p("/etc/lvm/lvmlocal.conf"),
            p("/etc/lvm/backup"),
            p("/etc/lvm/archive"),
            g("/etc/systemd/system/*.mount"),
            g("/etc/systemd/system/*.automount"),
            c("lsblk.json", "lsblk", &["-J", "-O"]),
            c("blkid.txt", "blkid", &[]),
            c("findmnt.json", "findmnt", &["-J"]),
            c(
                "lvm-report.json",
                "lvm",
                &["fullreport", "--reportformat", "json"],
            ),
        ],
        exclude: &[],
    },
    Category {
        name: "zfs",
        description: "ZFS config, zpool.cache, hostid, pool and dataset inventory",
        applies: Applies::Any,
        sources: &[
            p("/etc/zfs"),
            p("/etc/hostid"),
            c("zpool-status.txt", "zpool", &["status", "-P"]),
            c(
                "zpool-list.txt",
                "zpool",
                &["list", "-v", "-o", "name,size,guid,health"],
            ),
            c(
                "zfs-list.txt",
                "zfs",
                &["list", "-o", "name,used,avail,mountpoint"],
            ),
        ],
        exclude: &[],
    },
    Category {
        name: "boot",
        description: "kernel cmdline, boot UUIDs, grub defaults, modules, modprobe.d, udev rules",
        applies: Applies::Any,
        sources: &[
            p("/etc/kernel"),
            p("/etc/default/grub"),
            p("/etc/default/grub.d"),
            p("/etc/modules"),
            p("/etc/modules-load.d"),
            p("/etc/modprobe.d"),
            p("/etc/udev/rules.d"),
            p("/etc/initramfs-tools"),
        ],
        exclude: &[],
    },
    Category {
        name: "apt",
        description: "package sources, pinning, apt config and keyrings; installed package lists",
        applies: Applies::Any,
        sources: &[
            p("/etc/apt/sources.list"),
            p("/etc/apt/sources.list.d"),
            p("/etc/apt/preferences"),
            p("/etc/apt/preferences.d"),
            p("/etc/apt/apt.conf.d"),
            p("/etc/apt/auth.conf.d"),
            p("/etc/apt/trusted.gpg.d"),
            p("/etc/apt/keyrings"),
            p("/usr/share/keyrings"),
            c("dpkg-list.txt", "dpkg", &["-l"]),
            c("apt-manual.txt", "apt-mark", &["showmanual"]),
        ],
        exclude: &[],
    },
    Category {
        name: "ssh",
        description: "sshd config and host keys, root's and every user's keys and known hosts",
        applies: Applies::Any,
        sources: &[p("/etc/ssh"), p("/root/.ssh"), g("/home/*/.ssh")],
        exclude: &[],
    },
    Category {
        name: "cron",
        description: "crontabs and cron.* directories",
        applies: Applies::Any,
        sources: &[
            p("/etc/crontab"),
            p("/etc/cron.d"),
            p("/etc/cron.hourly"),
            p("/etc/cron.daily"),
            p("/etc/cron.weekly"),
            p("/etc/cron.monthly"),
            p("/var/spool/cron/crontabs"),
        ],
        exclude: &[],
    },
    Category {
        name: "systemd",
        description: "local units, drop-ins and timers; enabled unit list",
        applies: Applies::Any,
        sources: &[
            p("/etc/systemd/system"),
            p("/etc/systemd/journald.conf"),
            p("/etc/systemd/timesyncd.conf"),
            c(
                "unit-files.txt",
                "systemctl",
                &["list-unit-files", "--no-pager"],
            ),
            c(
                "timers.txt",
                "systemctl",
                &["list-timers", "--all", "--no-pager"],
            ),
        ],
        exclude: &[],
    },
    Category {
        name: "ssl",
        description: "system CA additions and private certificates",
        applies: Applies::Any,
        sources: &[
            p("/etc/ssl/openssl.cnf"),
            p("/etc/ssl/private"),
            p("/usr/local/share/ca-certificates"),
        ],
        exclude: &[],
    },
    Category {
        name: "accounts",
        description: "users, groups, password hashes, sudoers",
        applies: Applies::Any,
        sources: &[
            p("/etc/passwd"),
            p("/etc/group"),
            p("/etc/shadow"),
            p("/etc/gshadow"),
            p("/etc/subuid"),
            p("/etc/subgid"),
            p("/etc/sudoers"),
            p("/etc/sudoers.d"),
        ],
        exclude: &[],
    },
    Category {
        name: "firewall",
        description: "iptables and nftables rule files; live rule dump",
        applies: Applies::Any,
        sources: &[
            p("/etc/iptables"),
            p("/etc/nftables.conf"),
            p("/etc/nftables.d"),
            c("nft-ruleset.txt", "nft", &["list", "ruleset"]),
            c("iptables-save.txt", "iptables-save", &[]),
        ],
        exclude: &[],
    },
    Category {
        name: "sysctl",
        description: "kernel parameters",
        applies: Applies::Any,
        sources: &[p("/etc/sysctl.conf"), p("/etc/sysctl.d")],
        exclude: &[],
    },
    Category {
        name: "mail",
        description: "postfix config, aliases, sender maps",
        applies: Applies::Any,
        sources: &[p("/etc/postfix"), p("/etc/aliases"), p("/etc/mailname")],
        exclude: &[],
    },
    Category {
        name: "proxkeep",
        description: "proxkeep's own config and the files it names (never the passphrase file)",
        applies: Applies::Any,
        sources: &[p("/etc/proxkeep"), Source::OwnConfig],
        exclude: &[],
    },
    Category {
        name: "root-home",
        description: "root's configuration: dotfiles, ~/.config, dot-directories up to 16 MiB",
        applies: Applies::Any,
        sources: &[
            p("/root/.config"),
            Source::SmallDirs {
                pattern: "/root/.*",
                max: 16 << 20,
            },
        ],
        exclude: ROOT_HOME_EXCLUDE,
    },
    Category {
        name: "local-scripts",
        description: "admin scripts in /usr/local/bin and /usr/local/sbin (files over 4 MiB listed, not stored)",
        applies: Applies::Any,
        sources: &[
            Source::Listing {
                path: "/usr/local/bin",
                max: 4 << 20,
            },
            Source::Listing {
                path: "/usr/local/sbin",
                max: 4 << 20,
            },
        ],
        exclude: &[],
    },
    Category {
        name: "inventory",
        description: "facts for rebuilding: OS release, kernel, hardware, disks, services",
        applies: Applies::Any,
        sources: &[
            p("/etc/os-release"),
            p("/etc/debian_version"),
            p("/etc/timezone"),
            p("/etc/machine-id"),
            c("uname.txt", "uname", &["-a"]),
            c("hostname-f.txt", "hostname", &["-f"]),
            c("lspci.txt", "lspci", &["-nnk"]),
            c("lscpu.json", "lscpu", &["-J"]),
            c("df.txt", "df", &["-hT"]),
            c(
                "services.txt",
                "systemctl",
                &["list-units", "--type=service", "--all", "--no-pager"],
            ),
        ],
        exclude: &[],
    },
];

/// Name of the category that holds the configured extra paths.
pub const EXTRA: &str = "extra";

/// Names of every category, `extra` included: what `skip_categories` and `--only` accept.
pub fn category_names() -> Vec<&'static str> {
    CATEGORIES.iter().map(|c| c.name).chain([EXTRA]).collect()
}

/// Look a category up by name.
pub fn find(name: &str) -> Option<&'static Category> {
    CATEGORIES.iter().find(|c| c.name == name)
}

/// Whether `path` (absolute host path) is one of the pmxcfs run-time status files.
pub fn is_pmxcfs_virtual(path: &str) -> bool {
    path.starts_with("/etc/pve/.") && PVE_CLUSTER_EXCLUDE.contains(&path)
}

impl Category {
    /// Whether this category is collected on a host with these roles.
    pub fn applies_to(&self, pve: bool, pbs: bool) -> bool {
        match self.applies {
            Applies::Any => true,
            Applies::Pve => pve,
            Applies::Pbs => pbs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn named_files_of_crypttab_and_fstab() {
        let crypttab = "# name dev key opts\ncrypt1 UUID=a /etc/keys/c1.key luks\nswap /dev/sdb2 /dev/urandom swap\n\
                        c2 UUID=b none luks\nc3 UUID=c /k.key:LABEL=usb luks\nc4 UUID=d - luks\n";
        assert_eq!(Names::CrypttabKeys.paths(crypttab), ["/etc/keys/c1.key"]);
        let fstab = "//nas/s /mnt/s cifs credentials=/root/.smb,uid=0 0 0\n//n/t /mnt/t cifs rw,cred=/etc/t.cred 0 0\n\
                     UUID=x / ext4 defaults 0 1\n";
        assert_eq!(
            Names::FstabCredentials.paths(fstab),
            ["/root/.smb", "/etc/t.cred"]
        );
    }

    #[test]
    fn names_are_unique_and_kebab_case() {
        let mut seen = HashSet::new();
        for name in category_names() {
            assert!(seen.insert(name), "duplicate category {name}");
            assert!(
                name.chars().all(|ch| ch.is_ascii_lowercase() || ch == '-'),
                "{name}"
            );
        }
    }

    #[test]
    fn paths_are_absolute_and_outputs_unique_per_category() {
        for cat in CATEGORIES {
            let mut outputs = HashSet::new();
            for src in cat.sources {
                match src {
                    Source::Path { path } => assert!(path.starts_with('/'), "{path}"),
                    Source::Glob { pattern } | Source::SmallDirs { pattern, .. } => {
                        assert!(pattern.starts_with('/'), "{pattern}")
                    }
                    Source::Listing { path, .. } => assert!(path.starts_with('/'), "{path}"),
                    Source::Command { output, .. } => {
                        assert!(outputs.insert(*output), "{}: {output} twice", cat.name);
                        assert!(!output.contains('/'));
                    }
                    Source::Pmxcfs => assert_eq!(cat.name, "pve-cluster"),
                    Source::NamedIn { file, .. } => assert!(file.starts_with('/'), "{file}"),
                    Source::OwnConfig => assert_eq!(cat.name, "proxkeep"),
                    Source::Nics => assert_eq!(cat.name, "network"),
                }
            }
            for ex in cat.exclude {
                assert!(ex.starts_with('/'), "{ex}");
                globset::Glob::new(ex).unwrap();
            }
        }
        for held in HELD_ON_RESTORE {
            globset::Glob::new(held).unwrap();
        }
    }

    #[test]
    fn issue_named_paths_are_in_the_catalog() {
        let all: Vec<&str> = CATEGORIES
            .iter()
            .flat_map(|c| c.sources)
            .filter_map(|s| match s {
                Source::Path { path } => Some(*path),
                Source::Glob { pattern } | Source::SmallDirs { pattern, .. } => Some(*pattern),
                Source::Listing { path, .. } => Some(*path),
                _ => None,
            })
            .collect();
        for needed in [
            "/etc/pve",
            "/etc/corosync",
            "/etc/vzdump.conf",
            "/var/lib/vz/snippets",
            "/usr/share/kvm/*.vbios",
            "/var/lib/pve-firewall",
            "/etc/ceph",
            "/etc/proxmox-backup",
            "/etc/network",
            "/etc/fstab",
            "/etc/zfs",
            "/etc/hostid",
            "/etc/kernel",
            "/etc/ssh",
            "/root/.ssh",
            "/home/*/.ssh",
            "/root/.*",
            "/etc/proxkeep",
            "/var/lib/iscsi",
            "/etc/lvm/archive",
            "/etc/auto.*",
            "/etc/multipath*",
            "/etc/shadow",
            "/usr/local/sbin",
        ] {
            assert!(all.contains(&needed), "{needed} missing from the catalog");
        }
    }
}
