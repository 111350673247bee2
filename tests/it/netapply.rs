//! `restore --only network --apply-network` with Debian's real ifupdown2 (3.0, extracted from its .deb by
//! .ci/run into `$PROXKEEP_IFUPDOWN2`, never installed), each test inside a network and mount namespace of its
//! own: `unshare --net --mount`, veth pairs standing in for the NICs (this kernel has no `dummy` driver), a
//! second namespace (`ip netns add gw`, under the test's private /run) as the gateway, and /etc an overlay
//! whose /etc/network is the test root's; /sys is the namespace's own sysfs (the host's would show, and let
//! ifupdown2 write to, this machine's interfaces). This machine's links and addresses are compared before and
//! after.

use crate::util::*;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub(crate) const OLD: &str = "auto lo\niface lo inet loopback\n\nauto v0\niface v0 inet manual\n\nauto vmbr0\niface vmbr0 inet static\n\taddress 10.9.0.5/24\n\tbridge-ports v0\n\tbridge-stp off\n\tbridge-fd 0\n";

pub(crate) fn new_config(gateway: &str, method: &str) -> String {
    format!(
        "auto lo\niface lo inet loopback\n\nauto v0\niface v0 inet manual\n\nauto vmbr0\niface vmbr0 inet {method}\n\taddress 10.9.0.2/24\n\tgateway {gateway}\n\tbridge-ports v0\n\tbridge-stp off\n\tbridge-fd 0\n"
    )
}

const COROSYNC: &str = "totem {\n  cluster_name: lab\n  version: 2\n}\nnodelist {\n  node {\n    name: pve1\n    nodeid: 1\n    ring0_addr: 10.9.0.2\n  }\n  node {\n    name: pve2\n    nodeid: 2\n    ring0_addr: 10.9.0.3\n  }\n}\n";

/// Where .ci/run extracted ifupdown2 (`$PROXKEEP_IFUPDOWN2`, which it sets, or its default). Absent is a
/// failure, never a skip.
fn ifupdown2() -> PathBuf {
    let dir = std::env::var_os("PROXKEEP_IFUPDOWN2").map(PathBuf::from);
    let dir = dir.unwrap_or_else(|| PathBuf::from("/var/cache/proxkeep-ifupdown2"));
    for t in ["ifup", "ifreload", "ifquery"] {
        assert!(
            dir.join("sbin").join(t).exists(),
            "{}/sbin/{t} is missing: run .ci/run (it extracts ifupdown2's .deb there)",
            dir.display()
        );
    }
    dir
}

/// This machine's links and addresses, which no test may change.
fn host_network() -> String {
    let links = sh_ok("ip -o link | sed 's/ qdisc.*//'");
    let addrs = sh_ok("ip -o addr | sed 's/ valid_lft.*//'"); // lifetimes count down under DHCP
    let paths = ["/etc/network", "/run/network"].map(|p| format!("{p}: {}", Path::new(p).exists()));
    format!("{links}{addrs}{}", paths.join("\n"))
}

/// Every file under `etc/network` of the root with its mode and content.
pub(crate) fn network_files(root: &Path) -> BTreeMap<String, (u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let base = root.join("etc/network");
    let mut stack = vec![base.clone()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let md = fs::symlink_metadata(e.path()).unwrap();
            if md.is_dir() {
                stack.push(e.path());
                continue;
            }
            let rel = e.path().strip_prefix(&base).unwrap().display().to_string();
            out.insert(rel, (md.mode() & 0o7777, fs::read(e.path()).unwrap()));
        }
    }
    out
}

pub(crate) struct Net {
    pub(crate) env: Env,
    pub(crate) archive: PathBuf,
    ifup: PathBuf,
    host: String,
    /// The NIC of the namespace (one end of the veth pair to the gateway).
    nic: String,
    /// What the apply command selects (`--only network`), and more of its arguments (`--nic OLD=NEW`).
    pub(crate) select: String,
    pub(crate) extra: String,
}

impl Net {
    /// A root whose archive holds `new` as /etc/network/interfaces, and whose live file is [`OLD`].
    fn new(new: &str) -> Net {
        Net::with(new, OLD, None, "v0")
    }

    /// A root whose archive holds `new` as /etc/network/interfaces and whose live file is `old`; `sys`: the
    /// fixture trees (tests/fixtures/sys) of its /sys at the backup and after it; `nic`: the namespace's NIC.
    pub(crate) fn with(new: &str, old: &str, sys: Option<[&str; 2]>, nic: &str) -> Net {
        let ifup = ifupdown2();
        let host = host_network();
        let mut env = Env::new("");
        // The namespace has its own loopback: the sink started there on this port gets the notifications.
        env.write_config(
            "[[notify.webhook]]\nname = \"hook\"\non = [\"failure\"]\nurl = \"http://127.0.0.1:8765/hook\"\n",
        );
        let r = &env.root;
        fs::create_dir_all(r.join("etc/corosync")).unwrap();
        fs::write(r.join("etc/hostname"), "pve1\n").unwrap();
        fs::write(r.join("etc/sysctl.conf"), "vm.swappiness = 10\n").unwrap();
        fs::write(r.join("etc/hosts"), "127.0.0.1 localhost\n10.9.0.2 pve1\n").unwrap();
        fs::write(r.join("etc/corosync/corosync.conf"), COROSYNC).unwrap();
        sh_ok(&format!(
            "cp -a '{}/root/etc/network' '{}/etc/'",
            ifup.display(),
            r.display()
        ));
        fs::write(r.join("etc/network/interfaces"), new).unwrap();
        if let Some([before, _]) = sys {
            materialize(&format!("sys/{before}"), r);
        }
        env.run(&["backup"]).expect(0);
        let archive = env.only_archive();
        if let Some([_, after]) = sys {
            fs::remove_dir_all(r.join("sys")).unwrap();
            materialize(&format!("sys/{after}"), r);
        }
        fs::write(r.join("etc/network/interfaces"), old).unwrap();
        Net {
            env,
            archive,
            ifup,
            host,
            nic: nic.into(),
            select: "--only network".into(),
            extra: String::new(),
        }
    }

    pub(crate) fn state_file(&self) -> PathBuf {
        self.env.root.join("var/lib/proxkeep/network-rollback.json")
    }

    pub(crate) fn state(&self) -> Option<serde_json::Value> {
        let text = fs::read(self.state_file()).ok()?;
        serde_json::from_slice(&text).ok()
    }

    pub(crate) fn apply_command(&self, window: &str) -> String {
        format!(
            "'{}' --config '{}' --root '{}' restore '{}' {} --apply-network --yes --dns-name dns-check.test --rollback-after {window}{}",
            bin().display(),
            self.env.config.display(),
            self.env.root.display(),
            self.archive.display(),
            self.select,
            self.extra
        )
    }

    pub(crate) fn out(&self, name: &str) -> String {
        fs::read_to_string(self.env.path(name)).unwrap_or_default()
    }

    /// Run `tail` in a new network and mount namespace set up as a PVE host's network: the old config
    /// applied by ifupdown2 over a veth pair whose peer (the gateway, 10.9.0.1) is in a namespace of its own.
    pub(crate) fn spawn(&self, tail: &str) -> Child {
        let ns = self.env.path("ns");
        let net = self.env.root.join("etc/network");
        let setup = format!(
            r#"set -e
mkdir -p '{ns}'; mount -t tmpfs proxkeep-test '{ns}'; mkdir '{ns}/up' '{ns}/work'
mount -t overlay overlay -o 'lowerdir=/etc,upperdir={ns}/up,workdir={ns}/work' /etc
mkdir -p /etc/network; mount --bind '{net}' /etc/network
echo '10.9.0.1 dns-check.test' >> /etc/hosts
mount -t tmpfs proxkeep-test /run; mkdir -p /run/network
mount -t tmpfs proxkeep-test /var/tmp
mount -t sysfs sysfs /sys
export PATH='{ifup}/sbin':$PATH
ip link set lo up
ip netns add gw
ip link add '{nic}' type veth peer name v0p
ip link set v0p netns gw
ip -n gw link set lo up; ip -n gw addr add 10.9.0.1/24 dev v0p; ip -n gw link set v0p up
ifreload -a
python3 '{sink}' 127.0.0.1 8765 sink.jsonl > sink.out 2>&1 &
SINK=$!; trap 'kill $SINK' EXIT
i=0; until grep -q listening sink.out; do i=$((i+1)); [ $i -lt 300 ] || exit 6; sleep 0.1; done
STATE='{state}'
wait_state() {{ i=0; until grep -Eq "\"status\": \"($1)\"" "$STATE" 2>/dev/null; do i=$((i+1)); [ $i -lt 900 ] || {{ echo "no state $1" >&2; exit 9; }}; sleep 0.1; done; }}
"#,
            ns = ns.display(),
            net = net.display(),
            ifup = self.ifup.display(),
            nic = self.nic,
            state = self.state_file().display(),
            sink = repo().join("tests/support/notify_sink.py").display(),
        );
        let out = fs::File::create(self.env.path("ns.out")).unwrap();
        let err = fs::File::create(self.env.path("ns.err")).unwrap();
        Command::new(tool("unshare"))
            .args(["--net", "--mount", "--propagation", "private", "sh", "-c"])
            .arg(format!("{setup}{tail}"))
            .current_dir(self.env.tmp.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap()
    }

    pub(crate) fn finish(&self, child: Child) {
        let mut child = child;
        let status = child.wait().unwrap();
        assert!(
            status.success(),
            "the namespace script failed ({status}):\n{}\n{}\napply: {}\n{}\nstate: {:?}\nlog: {}",
            self.out("ns.out"),
            self.out("ns.err"),
            self.out("apply.out"),
            self.out("apply.err"),
            self.state(),
            fs::read_to_string(self.env.logs.join("network.log")).unwrap_or_default()
        );
        assert_eq!(host_network(), self.host, "this machine's network changed");
    }

    /// `[--json] restore ARCHIVE --only network --apply-network EXTRA…` outside the namespaces.
    pub(crate) fn restore(&self, json: bool, extra: &[&str]) -> Run {
        let a = self.archive.display().to_string();
        let mut args = vec![
            "--json",
            "restore",
            &a,
            "--only",
            "network",
            "--apply-network",
        ];
        args.extend(extra);
        self.env.run(&args[usize::from(!json)..])
    }

    pub(crate) fn interfaces(&self) -> String {
        fs::read_to_string(self.env.root.join("etc/network/interfaces")).unwrap()
    }

    /// No staged file or rollback copy is left beside the live ones.
    pub(crate) fn no_leftovers(&self) {
        let left: Vec<String> = network_files(&self.env.root)
            .into_keys()
            .filter(|k| k.contains("proxkeep"))
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }

    pub(crate) fn pid_gone(&self, pid: u64) {
        wait_for("the rollback worker to end", 30, || {
            fs::read(format!("/proc/{pid}/cmdline")).map_or(true, |c| c.is_empty())
        });
    }
}

/// The tail that runs the apply, waits for the state to leave `armed`, and shows the addresses.
pub(crate) fn apply_and_wait(net: &Net, window: &str, end: &str) -> String {
    format!(
        "rc=0; {} > apply.out 2> apply.err || rc=$?; echo $rc > rc.tmp; mv rc.tmp apply.rc\nwait_state '{end}'\nip -4 -o addr show dev vmbr0 > addr.txt\n",
        net.apply_command(window)
    )
}

#[test]
fn good_config_confirmed_from_a_second_process() {
    let net = Net::new(&new_config("10.9.0.1", "static"));
    let child = net.spawn(&apply_and_wait(&net, "600s", "confirmed|rolled-back"));
    wait_for("the apply to end", 120, || {
        net.env.path("apply.rc").exists()
    });
    assert_eq!(
        net.out("apply.rc").trim(),
        "0",
        "{}\n{}",
        net.out("apply.out"),
        net.out("apply.err")
    );
    let s = net.state().unwrap();
    assert_eq!(s["status"], "armed", "{s}");
    assert_eq!(s["mechanism"]["kind"], "detached", "{s}");
    let checks: Vec<String> = s["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("{} {}", c["check"].as_str().unwrap(), c["ok"]))
        .collect();
    assert_eq!(
        checks,
        [
            "default route true",
            "gateway 10.9.0.1 answers ping true",
            "DNS resolves dns-check.test true",
            "corosync ring address 10.9.0.2 is assigned here true",
        ],
        "{s}"
    );
    let interfaces = net
        .env
        .root
        .join("etc/network/.interfaces.proxkeep-rollback");
    assert_eq!(fs::read_to_string(&interfaces).unwrap(), OLD);
    let st = net.env.run(&["--json", "network", "status"]);
    assert_eq!(st.expect(0).json()["status"], "armed");
    // A new session: the state file is all it needs.
    let c = net.env.run(&["network", "confirm"]);
    assert!(
        c.expect(0).stdout().contains("network  confirmed"),
        "{}",
        c.stdout()
    );
    net.finish(child);
    assert!(
        net.out("addr.txt").contains("inet 10.9.0.2/24"),
        "{}",
        net.out("addr.txt")
    );
    assert_eq!(net.interfaces(), new_config("10.9.0.1", "static"));
    net.no_leftovers();
    assert_eq!(net.state().unwrap()["status"], "confirmed");
    net.pid_gone(s["mechanism"]["pid"].as_u64().unwrap());
    assert_eq!(
        net.out("sink.jsonl"),
        "",
        "a kept network is no failure to notify"
    );
    // Confirmed is not news: no notice.
    let again = net.env.run(&["network", "status"]);
    assert!(
        !again.expect(0).stderr().contains("notice"),
        "{}",
        again.stderr()
    );
}

/// After a rollback: the old file back, the old address, a reason, the run log, and one notice.
fn assert_rolled_back(net: &Net, reason: &str) {
    let s = net.state().unwrap();
    assert_eq!(s["status"], "rolled-back", "{s}");
    let why = s["reason"].as_str().unwrap();
    assert!(why.contains(reason), "{why}");
    assert_eq!(net.interfaces(), OLD);
    assert!(
        net.out("addr.txt").contains("inet 10.9.0.5/24"),
        "{}",
        net.out("addr.txt")
    );
    net.no_leftovers();
    let log = fs::read_to_string(net.env.logs.join("network.log")).unwrap();
    assert!(
        log.contains("was rolled back") && log.contains(reason),
        "{log}"
    );
    let sent = net.out("sink.jsonl");
    let hook: Vec<serde_json::Value> = sent
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(hook.len(), 1, "{sent}");
    assert_eq!(hook[0]["path"], "/hook");
    let body = hook[0]["body"].as_str().unwrap();
    assert!(
        body.contains("was rolled back") && body.contains(reason),
        "{body}"
    );
    let first = net.env.run(&["network", "status"]);
    let notice = first.expect(0).stderr();
    assert!(
        notice.contains("notice: the network restore from") && notice.contains(reason),
        "{notice}\n{:?}",
        net.state()
    );
    assert!(
        first.stdout().contains("rolled back: "),
        "{}",
        first.stdout()
    );
    let second = net.env.run(&["--json", "network", "status"]);
    assert!(
        !second.stderr().contains("notice"),
        "told twice: {}",
        second.stderr()
    );
    assert_eq!(second.code(), 0);
    assert_eq!(second.json()["state"]["reason"], why);
}

/// `new_config(gateway)` applied with `window` until rolled back; the apply's exit code must be `code`.
fn applied(gateway: &str, window: &str, code: &str) -> Net {
    let net = Net::new(&new_config(gateway, "static"));
    let child = net.spawn(&apply_and_wait(&net, window, "rolled-back"));
    net.finish(child);
    assert_eq!(net.out("apply.rc").trim(), code, "{}", net.out("apply.err"));
    net
}

#[test]
fn failed_health_check_rolls_back_at_once() {
    // Nothing answers at 10.9.0.99: the gateway check fails.
    let net = applied("10.9.0.99", "600s", "1");
    assert!(
        net.out("apply.out")
            .contains("FAIL gateway 10.9.0.99 answers ping"),
        "{}",
        net.out("apply.out")
    );
    assert_rolled_back(&net, "health check failed: gateway 10.9.0.99 answers ping");
    let s = net.state().unwrap();
    net.pid_gone(s["mechanism"]["pid"].as_u64().unwrap());
}

#[test]
fn unconfirmed_network_is_rolled_back_at_the_deadline() {
    let net = applied("10.9.0.1", "2s", "0");
    assert_rolled_back(&net, "not confirmed within 2s");
    let c = net.env.run(&["network", "confirm"]);
    assert!(
        c.expect(1).stderr().contains("too late to confirm"),
        "{}",
        c.stderr()
    );
}

/// The shell lines that start the apply on a terminal (`script`'s pty, its input from the fifo `in`, held open
/// on fd 3) and wait for its `keep` prompt; `$SP` is script's pid.
fn at_the_prompt(net: &Net, window: &str) -> String {
    format!(
        r#"mkfifo in; exec 3<>in
script -qefc "exec {cmd}" /dev/null < in > apply.out 2>&1 &
SP=$!
i=0; until grep -q 'Type .keep. before' apply.out; do i=$((i+1)); [ $i -lt 900 ] || exit 7; sleep 0.1; done
"#,
        cmd = net.apply_command(window)
    )
}

#[test]
fn good_config_kept_by_typing_the_word_at_the_prompt() {
    let net = Net::new(&new_config("10.9.0.1", "static"));
    let tail = format!(
        "{}echo keep >&3\nrc=0; wait $SP || rc=$?; echo $rc > apply.rc\nip -4 -o addr show dev vmbr0 > addr.txt\n",
        at_the_prompt(&net, "600s")
    );
    net.finish(net.spawn(&tail));
    assert_eq!(net.out("apply.rc").trim(), "0", "{}", net.out("apply.out"));
    assert!(
        net.out("apply.out")
            .contains("kept: the rollback is disarmed"),
        "{}",
        net.out("apply.out")
    );
    let s = net.state().unwrap();
    assert_eq!(s["status"], "confirmed", "{s}");
    assert_eq!(net.interfaces(), new_config("10.9.0.1", "static"));
    assert!(
        net.out("addr.txt").contains("inet 10.9.0.2/24"),
        "{}",
        net.out("addr.txt")
    );
    net.no_leftovers();
    net.pid_gone(s["mechanism"]["pid"].as_u64().unwrap());
}

#[test]
fn rollback_survives_the_arming_session_hanging_up() {
    let net = Net::new(&new_config("10.9.0.1", "static"));
    // The apply at its `keep` prompt on a terminal (script's pty); killing `script` closes the pty, and the
    // kernel sends SIGHUP to the session, as when an SSH connection drops. The window is wide enough that the
    // apply and its health checks reach the prompt before it ends, also on a loaded machine (8 s was not).
    let tail = format!(
        r#"{prompt}AP=$(cat /proc/$SP/task/$SP/children)
kill -9 $SP
i=0; while kill -0 $AP 2>/dev/null; do i=$((i+1)); [ $i -lt 300 ] || exit 8; sleep 0.1; done
grep -Eo '"status": "[a-z-]+"' "$STATE" > when-hung-up.txt
echo $AP > apply.pid
wait_state rolled-back
ip -4 -o addr show dev vmbr0 > addr.txt
"#,
        prompt = at_the_prompt(&net, "30s")
    );
    let child = net.spawn(&tail);
    net.finish(child);
    // The apply was gone while the rollback was still armed: the detached worker did the rollback.
    assert_eq!(
        net.out("when-hung-up.txt").trim(),
        r#""status": "armed""#,
        "{}",
        net.out("apply.out")
    );
    let s = net.state().unwrap();
    let worker = s["mechanism"]["pid"].as_u64().unwrap();
    assert_ne!(worker.to_string(), net.out("apply.pid").trim());
    assert_rolled_back(&net, "not confirmed within 30s");
}

#[test]
fn syntax_error_is_refused_before_anything_changes() {
    let net = Net::new(&new_config("10.9.0.1", "bogus"));
    let before = network_files(&net.env.root);
    let child = net.spawn(&format!(
        "rc=0; {} > apply.out 2> apply.err || rc=$?; echo $rc > apply.rc\nip -4 -o addr show dev vmbr0 > addr.txt\n",
        net.apply_command("600s")
    ));
    net.finish(child);
    assert_eq!(net.out("apply.rc").trim(), "2", "{}", net.out("apply.out"));
    let err = net.out("apply.err");
    assert!(
        err.contains("ifup -a -s -i") && err.contains("unsupported address method"),
        "{err}"
    );
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(network_files(&net.env.root), before);
    assert!(!net.state_file().exists());
    assert!(
        net.out("addr.txt").contains("inet 10.9.0.5/24"),
        "{}",
        net.out("addr.txt")
    );
}

#[test]
fn dry_run_shows_the_sequence_and_touches_nothing() {
    let net = Net::new(&new_config("10.9.0.1", "static"));
    let before = network_files(&net.env.root);
    let r = net.restore(false, &["--dry-run", "--rollback-after", "90s"]);
    let out = r.expect(0).stdout();
    for want in [
        "/etc/network/.interfaces.proxkeep-new -> /etc/network/interfaces",
        "ifup -a -s -i ",
        "/etc/network/interfaces -> /etc/network/.interfaces.proxkeep-rollback",
        "arm the rollback (90s): detached proxkeep process",
        "network rollback --at ",
        "ifreload -a",
        "gateway 10.9.0.1 answers ping",
        "DNS resolves download.proxmox.com",
        "corosync ring address 10.9.0.2 is assigned here",
        "proxkeep network confirm",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    let j = net.restore(true, &["--dry-run"]);
    assert_eq!(j.expect(0).json()["rollback_after_s"], 180);
    assert_eq!(network_files(&net.env.root), before);
    assert!(!net.state_file().exists());
}

#[test]
fn apply_network_refuses_other_files_and_other_targets() {
    let net = Net::new(&new_config("10.9.0.1", "static"));
    fs::write(net.env.root.join("etc/sysctl.conf"), "changed\n").unwrap();
    let r = net.restore(false, &["--path", "/etc/sysctl.conf", "--yes"]);
    assert!(
        r.expect(2)
            .stderr()
            .contains("/etc/sysctl.conf (category sysctl)"),
        "{}",
        r.stderr()
    );
    let other = net.env.path("elsewhere");
    fs::create_dir_all(&other).unwrap();
    let t = other.display().to_string();
    let r = net.restore(false, &["--target", &t, "--yes"]);
    assert!(r.expect(2).stderr().contains("is not it"), "{}", r.stderr());
    assert_eq!(net.interfaces(), OLD);
    assert!(!net.state_file().exists());
    let r = net.env.run(&["network", "confirm"]);
    assert!(
        r.expect(2).stderr().contains("nothing to confirm"),
        "{}",
        r.stderr()
    );
}

#[test]
fn status_says_when_nothing_will_roll_an_armed_apply_back() {
    let env = Env::new("");
    let state = env.root.join("var/lib/proxkeep/network-rollback.json");
    fs::create_dir_all(state.parent().unwrap()).unwrap();
    let doc = serde_json::json!({
        "status": "armed", "archive": "a.tar.zst", "armed_at": 1000, "deadline": 1180,
        "mechanism": {"kind": "detached", "pid": null},
        "files": [{"path": "/etc/network/interfaces", "rollback": null}],
    });
    fs::write(&state, doc.to_string()).unwrap();
    let r = env.run(&["--json", "network", "status"]);
    let j = r.expect(0).json();
    assert_eq!(j["status"], "armed");
    assert!(
        j["notes"][0]
            .as_str()
            .unwrap()
            .contains("nothing rolled it back"),
        "{j}"
    );
    let t = env.run(&["network", "status"]);
    assert!(
        t.expect(0).stdout().contains("network confirm` or undo it"),
        "{}",
        t.stdout()
    );
}
