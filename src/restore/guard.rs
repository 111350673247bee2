//! Decisions about the live host, as pure functions of what the host reports: whether `/etc/pve` is a live
//! pmxcfs mount (from `/proc/self/mountinfo`), how `/etc/pve` may therefore be written, and whether this
//! node is part of a quorate cluster (from `pvecm status`). The impure parts only read those texts.

use crate::fsx::Mount;
use crate::restore::plan::PveWrite;
use crate::runner::{CommandResult, Status};

/// Whether the last mount at `at` is a FUSE file system (pmxcfs shows as `fuse`, source `/dev/fuse`).
pub fn pmxcfs_mounted(mounts: &[Mount], at: &str) -> bool {
    mounts
        .iter()
        .rev()
        .find(|m| m.mount_point == at)
        .is_some_and(|m| m.fstype == "fuse" || m.fstype.starts_with("fuse."))
}

/// How `/etc/pve` may be written: only the real `/` of a running system has the pmxcfs question.
pub fn pve_verdict(target_is_system_root: bool, pmxcfs_mounted: bool) -> PveWrite {
    match (target_is_system_root, pmxcfs_mounted) {
        (false, _) => PveWrite::Plain,
        (true, true) => PveWrite::ThroughMount,
        (true, false) => PveWrite::Refuse,
    }
}

/// What `pvecm status` says about this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cluster {
    /// No cluster: pvecm is not installed, or there is no corosync config.
    Standalone,
    /// Part of a cluster that has no quorum here (isolated node, or the others are down).
    NotQuorate,
    Quorate,
    /// pvecm failed or timed out: quorum unknown.
    Unknown(String),
}

/// The `Quorate:` line of `pvecm status`.
pub fn parse_quorate(stdout: &str) -> Option<bool> {
    stdout.lines().find_map(|l| {
        let v = l.trim().strip_prefix("Quorate:")?.trim();
        Some(v.eq_ignore_ascii_case("yes"))
    })
}

const NOT_CLUSTERED: &str = "does not exist - is this node part of a cluster";

pub fn cluster_state(r: &CommandResult) -> Cluster {
    let out = String::from_utf8_lossy(&r.stdout);
    let err = String::from_utf8_lossy(&r.stderr);
    match &r.status {
        Status::Absent => Cluster::Standalone,
        _ if [&err, &out].iter().any(|t| t.contains(NOT_CLUSTERED)) => Cluster::Standalone,
        Status::Exited(0) => match parse_quorate(&out) {
            Some(true) => Cluster::Quorate,
            Some(false) => Cluster::NotQuorate,
            None => Cluster::Unknown("`pvecm status` printed no `Quorate:` line".into()),
        },
        other => Cluster::Unknown(format!("`pvecm status` {other}: {}", r.stderr_tail(300))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsx::parse_mountinfo;
    use std::time::Duration;

    const MOUNTINFO: &str = "\
22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/mapper/pve-root rw,errors=remount-ro
25 22 0:22 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
52 22 0:46 / /etc/pve rw,nosuid,nodev,relatime shared:27 - fuse /dev/fuse rw,user_id=0,group_id=0,default_permissions,allow_other
60 22 0:50 / /mnt/with\\040space rw,relatime shared:30 - nfs4 srv:/x rw
";

    #[test]
    fn mountinfo_and_verdict() {
        let m = parse_mountinfo(MOUNTINFO);
        assert_eq!(m.len(), 4);
        assert_eq!(
            m[2],
            Mount {
                mount_point: "/etc/pve".into(),
                fstype: "fuse".into(),
                source: "/dev/fuse".into()
            }
        );
        assert_eq!(m[3].mount_point, "/mnt/with space");
        assert!(pmxcfs_mounted(&m, "/etc/pve"));
        assert!(!pmxcfs_mounted(&m[..2], "/etc/pve"));
        assert!(!pmxcfs_mounted(&parse_mountinfo("garbage\n\n"), "/etc/pve"));
        // Mounted over by something else later: the last mount wins.
        let over = format!("{MOUNTINFO}70 52 0:60 / /etc/pve rw - tmpfs tmpfs rw\n");
        assert!(!pmxcfs_mounted(&parse_mountinfo(&over), "/etc/pve"));
        for (root, mounted, want) in [
            (false, false, PveWrite::Plain),
            (false, true, PveWrite::Plain),
            (true, true, PveWrite::ThroughMount),
            (true, false, PveWrite::Refuse),
        ] {
            assert_eq!(pve_verdict(root, mounted), want, "{root} {mounted}");
        }
    }

    fn result(status: Status, stdout: &str, stderr: &str) -> CommandResult {
        CommandResult {
            status,
            stdout: stdout.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
            stdout_truncated: false,
            stderr_truncated: false,
            duration: Duration::ZERO,
        }
    }

    #[test]
    fn pvecm_status_table() {
        let quorate = "Cluster information\n-------------------\nName:             testcluster\n\nQuorum information\n------------------\nNodes:            3\nNode ID:          0x00000002\nQuorate:          Yes\n";
        assert_eq!(parse_quorate(quorate), Some(true));
        assert_eq!(parse_quorate("Quorate: No\n"), Some(false));
        assert_eq!(parse_quorate("Nodes: 1\n"), None);
        for (r, want) in [
            (result(Status::Exited(0), quorate, ""), Cluster::Quorate),
            (
                result(Status::Exited(0), &quorate.replace("Yes", "No"), ""),
                Cluster::NotQuorate,
            ),
            (result(Status::Absent, "", ""), Cluster::Standalone),
            (
                result(
                    Status::Exited(2),
                    "",
                    "Error: Corosync config '/etc/pve/corosync.conf' does not exist - is this node part of a cluster?\n",
                ),
                Cluster::Standalone,
            ),
        ] {
            assert_eq!(cluster_state(&r), want);
        }
        assert!(matches!(
            cluster_state(&result(Status::TimedOut, "", "")),
            Cluster::Unknown(_)
        ));
        assert!(
            matches!(cluster_state(&result(Status::Exited(255), "", "ipcc_send_rec[1] failed")), Cluster::Unknown(m) if m.contains("ipcc"))
        );
    }
}
