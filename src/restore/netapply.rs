//! `restore --only network --apply-network`: the new network files applied with a timed rollback. Pure: the
//! names, the state the sequence records, the checks it runs and how their output is judged. The doing is in
//! `app::network`.
//!
//! ```text
//! stage (hidden names beside the live files) ─► syntax check (ifup -a -s -i STAGED) ─► rollback copies
//!    ─► arm (systemd timer, else a detached proxkeep) + state file ─► move into place ─► ifreload -a
//!    ─► health checks ─► confirmed (network confirm / typed word) or rolled back (failed check, deadline)
//! ```
//!
//! Staged files and rollback copies are dot files (`.interfaces.proxkeep-new`): `source
//! /etc/network/interfaces.d/*` does not match them, so ifupdown2 never reads them as configuration.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The state file under the root (0600, written atomically).
pub const STATE_PATH: &str = "/var/lib/proxkeep/network-rollback.json";
/// The transient systemd unit of the rollback timer.
pub const UNIT: &str = "proxkeep-network-rollback";
/// What the admin types at the prompt to keep the new network.
pub const CONFIRM_WORD: &str = "keep";
/// The name `getent hosts` resolves for the DNS check unless `--dns-name` says otherwise.
pub const DNS_NAME: &str = "download.proxmox.com";
/// The main interfaces file: the one the syntax check reads.
pub const INTERFACES: &str = "/etc/network/interfaces";

/// A host path with its last component prefixed by `.` and suffixed by `suffix`.
fn sibling(path: &str, suffix: &str) -> String {
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    format!("{dir}/.{name}.{suffix}")
}

/// Where the new content waits before it is moved into place.
pub fn staged_name(path: &str) -> String {
    sibling(path, "proxkeep-new")
}

/// Where the live file is kept until the new network is confirmed.
pub fn rollback_name(path: &str) -> String {
    sibling(path, "proxkeep-rollback")
}

/// How the rollback outlives the admin's session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Mechanism {
    /// A transient timer: `systemd-run --on-active=… --unit=UNIT … network rollback`.
    Systemd { unit: String },
    /// `proxkeep network rollback --at T` in a session of its own (setsid, SIGHUP ignored).
    Detached { pid: Option<u32> },
}

impl Mechanism {
    /// systemd where it is PID 1 and `systemd-run` is there; else the detached process.
    pub fn choose(pid1_is_systemd: bool, systemd_run: bool) -> Mechanism {
        if pid1_is_systemd && systemd_run {
            Mechanism::Systemd { unit: UNIT.into() }
        } else {
            Mechanism::Detached { pid: None }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Mechanism::Systemd { unit } => format!("transient systemd timer {unit}.timer"),
            Mechanism::Detached { pid: Some(p) } => format!("detached proxkeep process (pid {p})"),
            Mechanism::Detached { pid: None } => {
                "detached proxkeep process (setsid, SIGHUP ignored)".into()
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Applied (or being applied); rolled back at the deadline unless confirmed.
    Armed,
    Confirmed,
    RolledBack,
    /// The rollback itself failed somewhere: the state says where.
    RollbackFailed,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Armed => "armed",
            Status::Confirmed => "confirmed",
            Status::RolledBack => "rolled-back",
            Status::RollbackFailed => "rollback-failed",
        }
    }
}

/// One file of the applied set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileState {
    /// Host path (`/etc/network/interfaces`).
    pub path: String,
    /// The copy of the live file (`None`: there was no file: the rollback removes the new one).
    pub rollback: Option<String>,
}

/// A health check and how it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    pub check: String,
    pub ok: bool,
    pub detail: String,
}

/// Everything the state file records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub status: Status,
    pub archive: String,
    /// Unix seconds.
    pub armed_at: i64,
    pub deadline: i64,
    pub mechanism: Mechanism,
    pub files: Vec<FileState>,
    /// Directories made for new files (removed again by a rollback when empty).
    #[serde(default)]
    pub created_dirs: Vec<String>,
    #[serde(default)]
    pub checks: Vec<CheckResult>,
    /// Why it was rolled back (or how the rollback failed).
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub ended_at: Option<i64>,
    /// The rollback was told once at the start of a later command.
    #[serde(default)]
    pub reported: bool,
}

impl State {
    /// The one line the next command prints (once) after a rollback.
    pub fn notice(&self) -> Option<String> {
        let why = self.reason.as_deref().unwrap_or("unknown");
        match self.status {
            Status::RolledBack => Some(format!(
                "the network restore from {} was rolled back: {why} (proxkeep network status)",
                self.archive
            )),
            Status::RollbackFailed => Some(format!(
                "the network restore from {} could NOT be rolled back: {why} (proxkeep network status)",
                self.archive
            )),
            _ => None,
        }
    }
}

/// What the rollback worker does when it wakes up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// Still armed, deadline not reached: wait this many seconds more.
    Wait(i64),
    RollBack(String),
    /// Confirmed or already rolled back: nothing to do.
    Done,
}

pub fn due(state: &State, now: i64) -> Due {
    if state.status != Status::Armed {
        return Due::Done;
    }
    if now < state.deadline {
        return Due::Wait(state.deadline - now);
    }
    let window = state.deadline - state.armed_at;
    Due::RollBack(format!(
        "not confirmed within {window}s (deadline {})",
        show_time(state.deadline)
    ))
}

/// Still armed a minute past its deadline: whatever was to roll it back is gone.
pub fn overdue(state: &State, now: i64) -> bool {
    state.status == Status::Armed && now > state.deadline + 60
}

pub fn show_time(unix: i64) -> String {
    jiff::Timestamp::from_second(unix).map_or_else(|_| unix.to_string(), |t| t.to_string())
}

/// A health check run after `ifreload -a`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "check", content = "arg", rename_all = "kebab-case")]
pub enum Check {
    DefaultRoute,
    Gateway(String),
    Dns(String),
    /// A corosync ring address of this node, assigned to a local interface.
    RingAddress(String),
    /// pmxcfs answers under this path (it was mounted before the apply).
    Pmxcfs(String),
}

impl Check {
    pub fn name(&self) -> String {
        match self {
            Check::DefaultRoute => "default route".into(),
            Check::Gateway(g) => format!("gateway {g} answers ping"),
            Check::Dns(n) => format!("DNS resolves {n}"),
            Check::RingAddress(a) => format!("corosync ring address {a} is assigned here"),
            Check::Pmxcfs(p) => format!("pmxcfs answers at {p}"),
        }
    }

    /// The command that runs it (through the runner).
    pub fn command(&self) -> Vec<String> {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect();
        match self {
            Check::DefaultRoute => v(&["ip", "-j", "route", "show", "default"]),
            Check::Gateway(g) => v(&["ping", "-c", "1", "-W", "2", g]),
            Check::Dns(n) => v(&["getent", "hosts", n]),
            Check::RingAddress(_) => v(&["ip", "-j", "addr", "show"]),
            Check::Pmxcfs(p) => v(&["stat", "-c", "%s", &format!("{p}/.version")]),
        }
    }

    /// Whether the command's successful output passes the check (a failed command never does).
    pub fn passes(&self, stdout: &str) -> bool {
        match self {
            Check::DefaultRoute => json_array_len(stdout) > 0,
            Check::RingAddress(a) => addr_assigned(stdout, a),
            _ => true,
        }
    }
}

fn json_array_len(s: &str) -> usize {
    serde_json::from_str::<Vec<serde_json::Value>>(s).map_or(0, |v| v.len())
}

/// Whether `ip -j addr` lists `addr` on some interface.
pub fn addr_assigned(ip_addr_json: &str, addr: &str) -> bool {
    let Ok(ifaces) = serde_json::from_str::<Vec<serde_json::Value>>(ip_addr_json) else {
        return false;
    };
    let want: Option<IpAddr> = addr.parse().ok();
    ifaces
        .iter()
        .flat_map(|i| i["addr_info"].as_array().into_iter().flatten())
        .filter_map(|a| a["local"].as_str()?.parse::<IpAddr>().ok())
        .any(|a| Some(a) == want)
}

/// The `gateway` lines of an interfaces file.
pub fn gateways(interfaces: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in interfaces.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("gateway")
            && let Some(g) = words.next()
            && g.parse::<IpAddr>().is_ok()
            && !out.iter().any(|o| o == g)
        {
            out.push(g.to_string());
        }
    }
    out
}

/// The `ringN_addr` values of `node` in a corosync.conf that are IP addresses (names are left to DNS).
pub fn ring_addresses(corosync: &str, node: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut in_node, mut name, mut addrs) = (false, None::<String>, Vec::new());
    for line in corosync.lines().map(str::trim) {
        if line.ends_with('{') {
            // Only `node {` blocks hold names and ring addresses; they have no blocks inside.
            in_node = line.strip_suffix('{').map(str::trim) == Some("node");
            (name, addrs) = (None, Vec::new());
            continue;
        }
        if line == "}" {
            if std::mem::take(&mut in_node) && name.as_deref() == Some(node) {
                out.append(&mut addrs);
            }
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if in_node && k == "name" {
            name = Some(v.to_string());
        } else if in_node
            && k.starts_with("ring")
            && k.ends_with("_addr")
            && v.parse::<IpAddr>().is_ok()
        {
            addrs.push(v.to_string());
        }
    }
    out
}

/// What the checks are decided from.
#[derive(Debug, Clone, Default)]
pub struct CheckInputs<'a> {
    /// The new `interfaces` content (or the live one when the set does not replace it).
    pub interfaces: Option<&'a str>,
    pub corosync: Option<&'a str>,
    pub node: &'a str,
    pub dns_name: &'a str,
    /// `/etc/pve` under the root was a pmxcfs mount before the apply.
    pub pmxcfs: Option<String>,
}

/// The health checks, in the order they run.
pub fn checks(i: &CheckInputs) -> Vec<Check> {
    let mut out = vec![Check::DefaultRoute];
    let gw = i.interfaces.map(gateways).unwrap_or_default();
    out.extend(gw.into_iter().map(Check::Gateway));
    if !i.dns_name.is_empty() {
        out.push(Check::Dns(i.dns_name.to_string()));
    }
    let rings = i
        .corosync
        .map(|c| ring_addresses(c, i.node))
        .unwrap_or_default();
    out.extend(rings.into_iter().map(Check::RingAddress));
    out.extend(i.pmxcfs.clone().map(Check::Pmxcfs));
    out
}

/// The syntax check of a staged interfaces file with ifupdown2's own parser.
pub fn syntax_check(staged_interfaces: &str) -> Vec<String> {
    ["ifup", "-a", "-s", "-i", staged_interfaces]
        .map(String::from)
        .to_vec()
}

pub fn reload() -> Vec<String> {
    ["ifreload", "-a"].map(String::from).to_vec()
}

/// Why `--apply-network` cannot take this selection: files outside the network category, or entries that
/// are not plain files (`paths` are host paths with their category and kind name).
pub fn refuse_selection<'a>(
    steps: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
) -> Result<(), String> {
    let mut bad = Vec::new();
    let mut files = 0;
    for (path, category, kind) in steps {
        if category != "network" {
            bad.push(format!("{path} (category {category})"));
        } else if kind == "file" {
            files += 1;
        } else if kind != "dir" {
            bad.push(format!("{path} (a {kind})"));
        }
    }
    if !bad.is_empty() {
        return Err(format!(
            "--apply-network applies network files only; the selection also writes: {} (select with --only network or --path /etc/network/...)",
            bad.join(", ")
        ));
    }
    if files == 0 {
        return Err(
            "--apply-network: the selection writes no network file (nothing to apply)".into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_and_rollback_names_are_hidden_siblings() {
        for (p, new, back) in [
            (
                "/etc/network/interfaces",
                "/etc/network/.interfaces.proxkeep-new",
                "/etc/network/.interfaces.proxkeep-rollback",
            ),
            (
                "/etc/hosts",
                "/etc/.hosts.proxkeep-new",
                "/etc/.hosts.proxkeep-rollback",
            ),
            (
                "/etc/network/interfaces.d/vlan",
                "/etc/network/interfaces.d/.vlan.proxkeep-new",
                "/etc/network/interfaces.d/.vlan.proxkeep-rollback",
            ),
        ] {
            assert_eq!(staged_name(p), new);
            assert_eq!(rollback_name(p), back);
        }
    }

    #[test]
    fn mechanism_is_systemd_only_where_it_runs() {
        let table = [
            (true, true, Mechanism::Systemd { unit: UNIT.into() }),
            (true, false, Mechanism::Detached { pid: None }),
            (false, true, Mechanism::Detached { pid: None }),
            (false, false, Mechanism::Detached { pid: None }),
        ];
        for (pid1, run, want) in table {
            assert_eq!(Mechanism::choose(pid1, run), want, "{pid1} {run}");
        }
    }

    fn state(status: Status) -> State {
        State {
            status,
            archive: "a.tar.zst".into(),
            armed_at: 1000,
            deadline: 1180,
            mechanism: Mechanism::Detached { pid: Some(7) },
            files: Vec::new(),
            created_dirs: Vec::new(),
            checks: Vec::new(),
            reason: Some("gateway down".into()),
            ended_at: None,
            reported: false,
        }
    }

    #[test]
    fn the_worker_rolls_back_only_an_armed_state_past_its_deadline() {
        let table = [
            (Status::Armed, 1000, Some(Due::Wait(180))),
            (Status::Armed, 1179, Some(Due::Wait(1))),
            (Status::Armed, 1180, None),
            (Status::Armed, 5000, None),
            (Status::Confirmed, 5000, Some(Due::Done)),
            (Status::RolledBack, 5000, Some(Due::Done)),
            (Status::RollbackFailed, 1000, Some(Due::Done)),
        ];
        for (status, now, want) in table {
            let got = due(&state(status), now);
            match want {
                Some(w) => assert_eq!(got, w, "{status:?} {now}"),
                None => assert!(
                    matches!(&got, Due::RollBack(why) if why.contains("not confirmed within 180s")),
                    "{got:?}"
                ),
            }
        }
    }

    #[test]
    fn armed_a_minute_past_the_deadline_is_overdue() {
        let table = [
            (Status::Armed, 1180, false),
            (Status::Armed, 1240, false),
            (Status::Armed, 1241, true),
            (Status::Confirmed, 9999, false),
            (Status::RolledBack, 9999, false),
        ];
        for (status, now, want) in table {
            assert_eq!(overdue(&state(status), now), want, "{status:?} {now}");
        }
    }

    #[test]
    fn only_a_rollback_has_a_notice() {
        assert_eq!(state(Status::Armed).notice(), None);
        assert_eq!(state(Status::Confirmed).notice(), None);
        let n = state(Status::RolledBack).notice().unwrap();
        assert!(n.contains("rolled back: gateway down"), "{n}");
        assert!(
            state(Status::RollbackFailed)
                .notice()
                .unwrap()
                .contains("could NOT")
        );
    }

    #[test]
    fn gateways_are_ip_addresses_once_each() {
        let text = "auto vmbr0\niface vmbr0 inet static\n\taddress 10.0.0.2/24\n\tgateway 10.0.0.1\n\
                    iface vmbr0 inet6 static\n\tgateway fe80::1\n# gateway 1.2.3.4 is not a comment here\n\
                    iface x inet static\n\tgateway 10.0.0.1\n\tgateway name.example\n";
        assert_eq!(gateways(text), ["10.0.0.1", "fe80::1"]);
        assert!(gateways("").is_empty());
    }

    #[test]
    fn ring_addresses_of_this_node_that_are_ips() {
        let conf = "totem {\n  version: 2\n  interface {\n    linknumber: 0\n  }\n}\nnodelist {\n  node {\n    name: pve1\n    nodeid: 1\n    ring0_addr: 10.9.0.2\n    ring1_addr: 10.10.0.2\n  }\n  node {\n    name: pve2\n    ring0_addr: 10.9.0.3\n  }\n  node {\n    name: pve3\n    ring0_addr: pve3\n  }\n}\n";
        let table: [(&str, &[&str]); 4] = [
            ("pve1", &["10.9.0.2", "10.10.0.2"]),
            ("pve2", &["10.9.0.3"]),
            ("pve3", &[]),
            ("other", &[]),
        ];
        for (node, want) in table {
            assert_eq!(ring_addresses(conf, node), want, "{node}");
        }
    }

    #[test]
    fn checks_follow_the_inputs() {
        let i = CheckInputs {
            interfaces: Some("iface v inet static\n gateway 10.9.0.1\n"),
            corosync: Some("nodelist {\n node {\n name: n1\n ring0_addr: 10.9.0.2\n }\n}\n"),
            node: "n1",
            dns_name: "dns.test",
            pmxcfs: Some("/etc/pve".into()),
        };
        let want = [
            Check::DefaultRoute,
            Check::Gateway("10.9.0.1".into()),
            Check::Dns("dns.test".into()),
            Check::RingAddress("10.9.0.2".into()),
            Check::Pmxcfs("/etc/pve".into()),
        ];
        assert_eq!(checks(&i), want);
        let bare = CheckInputs {
            node: "n1",
            ..Default::default()
        };
        assert_eq!(checks(&bare), [Check::DefaultRoute]);
    }

    #[test]
    fn check_output_is_judged() {
        let addrs = r#"[{"ifname":"lo","addr_info":[{"local":"127.0.0.1"}]},{"ifname":"vmbr0","addr_info":[{"local":"10.9.0.2","prefixlen":24},{"local":"fe80::1"}]}]"#;
        let table = [
            (Check::DefaultRoute, "[]", false),
            (Check::DefaultRoute, "", false),
            (
                Check::DefaultRoute,
                r#"[{"dst":"default","gateway":"10.9.0.1"}]"#,
                true,
            ),
            (Check::RingAddress("10.9.0.2".into()), addrs, true),
            (Check::RingAddress("fe80:0::1".into()), addrs, true),
            (Check::RingAddress("10.9.0.3".into()), addrs, false),
            (Check::RingAddress("10.9.0.2".into()), "not json", false),
            (Check::Gateway("10.9.0.1".into()), "", true),
        ];
        for (check, out, want) in table {
            assert_eq!(check.passes(out), want, "{check:?} {out}");
        }
    }

    #[test]
    fn only_network_files_can_be_applied() {
        let ok = [
            ("/etc/network", "network", "dir"),
            ("/etc/network/interfaces", "network", "file"),
        ];
        assert_eq!(refuse_selection(ok), Ok(()));
        let mixed = [
            ("/etc/network/interfaces", "network", "file"),
            ("/etc/pve/storage.cfg", "pve-cluster", "file"),
        ];
        let e = refuse_selection(mixed).unwrap_err();
        assert!(
            e.contains("/etc/pve/storage.cfg (category pve-cluster)"),
            "{e}"
        );
        let link = [("/etc/network/if-up.d/x", "network", "symlink")];
        assert!(refuse_selection(link).unwrap_err().contains("(a symlink)"));
        let none = [("/etc/network", "network", "dir")];
        assert!(
            refuse_selection(none)
                .unwrap_err()
                .contains("no network file")
        );
    }
}
