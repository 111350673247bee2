//! Test helpers: materialized fixture roots, a per-test environment, and the real tools we check against.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub const FIXTURE_MTIME: i64 = 1767225600;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_proxkeep"))
}

/// A real tool the test needs. Missing is a failure, never a skip: CI installs everything.
pub fn tool(name: &str) -> &str {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "required tool `{name}` is not installed (see .ci/run)"
    );
    name
}

pub fn sh(cmd: &str) -> Output {
    Command::new("sh").arg("-c").arg(cmd).output().expect("sh")
}

/// Run a shell command and insist it succeeds.
pub fn sh_ok(cmd: &str) -> String {
    let out = sh(cmd);
    assert!(
        out.status.success(),
        "`{cmd}` failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn copy_tree(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for e in fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        let ft = e.file_type().unwrap();
        if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(e.path()).unwrap(), &to).unwrap();
        } else if ft.is_dir() {
            copy_tree(&e.path(), &to);
        } else {
            fs::copy(e.path(), &to).unwrap();
        }
    }
}

/// Modes as on a real host, from provenance.json (git keeps only 644/755), for one fixture root.
fn provenance_modes(root_name: &str) -> BTreeMap<String, u32> {
    let text = fs::read_to_string(repo().join("tests/fixtures/provenance.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out = BTreeMap::new();
    for f in v["files"].as_array().unwrap() {
        if f["root"] == root_name && f["kind"] != "symlink" {
            let mode = f["mode"].as_str().unwrap().trim_start_matches("0o");
            out.insert(
                f["dest"].as_str().unwrap().to_string(),
                u32::from_str_radix(mode, 8).unwrap(),
            );
        }
    }
    out
}

fn apply_modes(root: &Path, root_name: &str) {
    for (rel, mode) in provenance_modes(root_name) {
        let p = root.join(&rel);
        if p.exists() {
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        }
    }
    // Directory modes the fixture README gives: priv 0700, /etc/proxmox-backup 0700, root and .ssh 0700.
    for (rel, mode) in [
        ("etc/pve/priv", 0o700),
        ("etc/pve/priv/storage", 0o700),
        ("etc/pve/priv/realm", 0o700),
        ("etc/pve/priv/ceph", 0o700),
        ("etc/proxmox-backup", 0o700),
        ("root", 0o700),
        ("root/.ssh", 0o700),
    ] {
        let p = root.join(rel);
        if p.is_dir() {
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        }
    }
}

/// Set every mtime in the tree (links included) to the fixture time.
pub fn fix_mtimes(root: &Path) {
    sh_ok(&format!(
        "find '{}' -exec touch -h -d @{FIXTURE_MTIME} {{}} +",
        root.display()
    ));
}

/// A fixture host root materialized with real modes and mtimes: "pve-node", "pbs-node" or "dual".
pub fn materialize(name: &str, dst: &Path) {
    let fx = repo().join("tests/fixtures");
    match name {
        "dual" => {
            copy_tree(&fx.join("pve-node"), dst);
            apply_modes(dst, "pve-node");
            copy_tree(
                &fx.join("pbs-node/etc/proxmox-backup"),
                &dst.join("etc/proxmox-backup"),
            );
            fs::copy(
                fx.join("pbs-node/etc/apt/sources.list.d/pbs-enterprise.list"),
                dst.join("etc/apt/sources.list.d/pbs-enterprise.list"),
            )
            .unwrap();
            // Modes of the PBS part, without letting pbs-node's hosts/hostname/interfaces win.
            for (rel, mode) in provenance_modes("pbs-node") {
                if rel.starts_with("etc/proxmox-backup") {
                    fs::set_permissions(dst.join(&rel), fs::Permissions::from_mode(mode)).unwrap();
                }
            }
            fs::set_permissions(
                dst.join("etc/proxmox-backup"),
                fs::Permissions::from_mode(0o700),
            )
            .unwrap();
        }
        _ => {
            copy_tree(&fx.join(name), dst);
            apply_modes(dst, name);
        }
    }
    fix_mtimes(dst);
}

/// Build `var/lib/pve-cluster/config.db` from the root's `etc/pve` with the independent Python builder.
pub fn make_config_db(root: &Path) {
    let db = root.join("var/lib/pve-cluster/config.db");
    fs::create_dir_all(db.parent().unwrap()).unwrap();
    // Rebuilt from the tree as it is now (the script refuses to write over a db).
    let _ = fs::remove_file(&db);
    sh_ok(&format!(
        "python3 '{}' '{}' '{}'",
        repo().join("tests/support/make_config_db.py").display(),
        root.join("etc/pve").display(),
        db.display()
    ));
    fs::set_permissions(&db, fs::Permissions::from_mode(0o600)).unwrap();
}

/// One test's world: a host root, a backup dir, a log dir, a lock file and a config pointing at them.
pub struct Env {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub backups: PathBuf,
    pub logs: PathBuf,
    pub config: PathBuf,
    pub stubs: PathBuf,
    extra_config: String,
}

impl Env {
    pub fn new(fixture: &str) -> Env {
        let tmp = tempfile::Builder::new()
            .prefix("proxkeep-it-")
            .tempdir()
            .unwrap();
        let root = tmp.path().join("root");
        if fixture.is_empty() {
            fs::create_dir_all(&root).unwrap();
        } else {
            materialize(fixture, &root);
        }
        // A PVE node has its pmxcfs database: built from the fixture's /etc/pve, as pmxcfs would hold it.
        if matches!(fixture, "pve-node" | "dual") {
            make_config_db(&root);
        }
        let stubs = tmp.path().join("stubs");
        fs::create_dir_all(&stubs).unwrap();
        let mut env = Env {
            root,
            backups: tmp.path().join("backups"),
            logs: tmp.path().join("logs"),
            config: tmp.path().join("proxkeep.toml"),
            stubs,
            tmp,
            extra_config: String::new(),
        };
        env.write_config("");
        env
    }

    /// Rewrite the config: the test's paths plus `extra` (TOML appended as is).
    pub fn write_config(&mut self, extra: &str) {
        self.extra_config = extra.to_string();
        let text = format!(
            "backup_dir = \"{}\"\nlog_dir = \"{}\"\nlock_file = \"{}\"\nmin_free_space = 0\n{}\n",
            self.backups.display(),
            self.logs.display(),
            self.tmp.path().join("proxkeep.lock").display(),
            extra
        );
        fs::write(&self.config, text).unwrap();
    }

    pub fn lock_file(&self) -> PathBuf {
        self.tmp.path().join("proxkeep.lock")
    }

    /// A stub command on PATH (first), written as a shell script.
    pub fn stub(&self, name: &str, script: &str) {
        let p = self.stubs.join(name);
        fs::write(&p, format!("#!/bin/sh\n{script}\n")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(bin());
        c.arg("--config")
            .arg(&self.config)
            .arg("--root")
            .arg(&self.root);
        let path = format!(
            "{}:{}",
            self.stubs.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        c.env("PATH", path);
        c.env_remove("PROXKEEP_CONFIG");
        // The fixture root stands in for the running host, so the stub commands (systemctl, ifreload) run;
        // without it, proxkeep runs service commands only when the root is / (tests/it/safety.rs).
        c.env("PROXKEEP_LIVE_ROOT", &self.root);
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run(self.cmd().args(args).output().unwrap())
    }

    /// Visible archives in the backup dir, oldest first.
    pub fn archives(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(&self.backups)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        let n = p.file_name().unwrap().to_string_lossy().into_owned();
                        !n.starts_with('.') && n.contains(".tar") && !n.ends_with(".sha256")
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    pub fn only_archive(&self) -> PathBuf {
        let a = self.archives();
        assert_eq!(a.len(), 1, "expected one archive, found {a:?}");
        a[0].clone()
    }

    /// Hidden partial files left in the backup dir (the verify state file is not one: it stays).
    pub fn partials(&self) -> Vec<String> {
        fs::read_dir(&self.backups)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with('.') && n != ".proxkeep-verify.json")
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }
}

pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.0.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout()))
    }
    #[track_caller]
    pub fn expect(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
}

/// Kind, mode (permission bits) and link target of every entry under `dir`, keyed by relative path.
pub fn tree_state(dir: &Path) -> BTreeMap<String, (String, u32, Option<String>)> {
    let mut out = BTreeMap::new();
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, (String, u32, Option<String>)>) {
        let mut entries: Vec<_> = fs::read_dir(dir).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let md = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            let ft = md.file_type();
            let (kind, target) = if ft.is_symlink() {
                (
                    "link",
                    Some(fs::read_link(&p).unwrap().to_string_lossy().into_owned()),
                )
            } else if ft.is_dir() {
                ("dir", None)
            } else {
                ("file", None)
            };
            let mode = if ft.is_symlink() {
                0
            } else {
                md.mode() & 0o7777
            };
            out.insert(rel, (kind.to_string(), mode, target));
            if ft.is_dir() {
                walk(base, &p, out);
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

pub fn sha256_file(p: &Path) -> String {
    use sha2::{Digest, Sha256};
    let data = fs::read(p).unwrap();
    Sha256::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn sha256_bytes(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The archive's index.json, read with GNU tar (independent of our reader).
pub fn index_of(archive: &Path) -> serde_json::Value {
    let out = Command::new(tool("tar"))
        .arg("-xOf")
        .arg(archive)
        .arg("proxkeep/index.json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tar -xOf index.json: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub fn meta_of(archive: &Path) -> serde_json::Value {
    let out = Command::new(tool("tar"))
        .arg("-xOf")
        .arg(archive)
        .arg("proxkeep/meta.json")
        .output()
        .unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Extract with GNU tar (xattrs and permissions kept) into a new dir under the env.
pub fn gnu_extract(archive: &Path, into: &Path) {
    fs::create_dir_all(into).unwrap();
    sh_ok(&format!(
        "tar --xattrs --xattrs-include='*' -xpf '{}' -C '{}'",
        archive.display(),
        into.display()
    ));
}

/// The names in `dir`, sorted (none when it does not exist).
pub fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Poll until `f` holds (not a timing test: the bound only catches a hang).
pub fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let t = std::time::Instant::now();
    while !f() {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// Start proxkeep with its output going to `<tag>.out` / `<tag>.err` in the env (a pipe nobody reads would
/// block a long plan listing).
pub fn spawn(env: &Env, tag: &str, args: &[&str]) -> Child {
    let out = fs::File::create(env.path(&format!("{tag}.out"))).unwrap();
    let err = fs::File::create(env.path(&format!("{tag}.err"))).unwrap();
    env.cmd()
        .args(args)
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .unwrap()
}

/// Wait for a child started by [`spawn`] with the same tag.
pub fn finished(env: &Env, tag: &str, mut child: Child) -> Run {
    let status = child.wait().unwrap();
    Run(Output {
        status,
        stdout: fs::read(env.path(&format!("{tag}.out"))).unwrap(),
        stderr: fs::read(env.path(&format!("{tag}.err"))).unwrap(),
    })
}

/// A tmpfs mounted on `dir` (created), unmounted on drop.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn mount(dir: &Path, options: &str) -> Tmpfs {
        fs::create_dir_all(dir).unwrap();
        sh_ok(&format!(
            "mount -t tmpfs -o {options} proxkeep-test '{}'",
            dir.display()
        ));
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = sh(&format!("umount -l '{}'", self.0.display()));
    }
}
