//! `list`, `show`, `ls`, `cat`, `verify`, `diff` end to end, against archives damaged with real tools.

use crate::util::*;
use std::fs;
use std::path::{Path, PathBuf};

fn run_at(env: &Env, now: &str, args: &[&str]) -> Run {
    Run(env
        .cmd()
        .env("PROXKEEP_NOW", now)
        .args(args)
        .output()
        .unwrap())
}

/// A backup of the env's root at `now`; returns the archive's path.
fn backup_at(env: &Env, now: &str, extra: &[&str]) -> PathBuf {
    let mut args = vec!["--json", "backup"];
    args.extend_from_slice(extra);
    let r = run_at(env, now, &args);
    r.expect(0);
    PathBuf::from(r.json()["archive"].as_str().unwrap())
}

/// Tar members of an uncompressed tar, read by Python's tarfile (independent of our reader):
/// (name, header offset, data offset, size).
fn members(tar: &Path) -> Vec<(String, u64, u64, u64)> {
    let out = sh_ok(&format!(
        "{} -c 'import json,sys,tarfile; print(json.dumps([[m.name, m.offset, m.offset_data, m.size] for m in tarfile.open(sys.argv[1])]))' '{}'",
        tool("python3"),
        tar.display()
    ));
    let v: Vec<(String, u64, u64, u64)> = serde_json::from_str(out.trim()).unwrap();
    assert!(v.len() > 10);
    v
}

/// Offsets of the block headers of a single-frame zstd file (format: RFC 8878, section 3.1.1).
fn zstd_block_headers(data: &[u8]) -> Vec<usize> {
    assert_eq!(data[..4], [0x28, 0xb5, 0x2f, 0xfd]);
    let fhd = data[4];
    let single = fhd & 0x20 != 0;
    let fcs = [usize::from(single), 2, 4, 8][(fhd >> 6) as usize];
    let mut pos = 5 + usize::from(!single) + [0, 1, 2, 4][(fhd & 3) as usize] + fcs;
    let mut out = Vec::new();
    loop {
        out.push(pos);
        let h =
            u32::from(data[pos]) | u32::from(data[pos + 1]) << 8 | u32::from(data[pos + 2]) << 16;
        let size = if (h >> 1) & 3 == 1 {
            1
        } else {
            (h >> 3) as usize
        };
        pos += 3 + size;
        if h & 1 == 1 {
            return out;
        }
    }
}

fn problems(r: &Run) -> Vec<serde_json::Value> {
    r.json()["problems"].as_array().cloned().unwrap_or_default()
}

fn has_problem(r: &Run, path: &str, message: &str) -> bool {
    problems(r)
        .iter()
        .any(|p| p["path"] == path && p["message"].as_str().unwrap_or("").contains(message))
}

// ------------------------------------------------------------------------------------------------
// cat, ls, show
// ------------------------------------------------------------------------------------------------

#[test]
fn cat_returns_every_file_byte_identical() {
    let env = Env::new("pve-node");
    make_config_db(&env.root);
    let archive = backup_at(&env, "2026-11-27T03:00:00Z", &[]);
    let index = index_of(&archive);
    let mut checked = 0;
    for e in index["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "file")
    {
        let path = e["path"].as_str().unwrap();
        let r = env.run(&["cat", "latest", path]);
        r.expect(0);
        let expected = if path.starts_with("proxkeep/") {
            // Not a host file (config.db snapshot): GNU tar's extraction is the reference.
            std::process::Command::new(tool("tar"))
                .arg("-xOf")
                .arg(&archive)
                .arg(path)
                .output()
                .unwrap()
                .stdout
        } else {
            fs::read(env.root.join(path)).unwrap()
        };
        assert!(
            r.0.stdout == expected,
            "{path}: cat gave {} bytes, expected {}",
            r.0.stdout.len(),
            expected.len()
        );
        checked += 1;
    }
    assert!(checked > 100, "{checked}");
    // A leading slash is accepted; --json carries the content and its hash.
    let j = env
        .run(&["--json", "cat", "latest", "/etc/pve/storage.cfg"])
        .json();
    assert_eq!(
        j["content"].as_str().unwrap().as_bytes(),
        fs::read(env.root.join("etc/pve/storage.cfg")).unwrap()
    );
    assert_eq!(
        j["sha256"],
        sha256_file(&env.root.join("etc/pve/storage.cfg"))
    );
    // Not a file, not there, no such archive.
    let r = env.run(&["cat", "latest", "etc/pve/local"]);
    r.expect(1);
    assert!(
        r.stderr().contains("symlink") && r.stderr().contains("nodes/due"),
        "{}",
        r.stderr()
    );
    env.run(&["cat", "latest", "etc/pve"]).expect(1);
    env.run(&["cat", "latest", "etc/nope"]).expect(1);
    env.run(&["cat", "latest~3", "etc/hosts"]).expect(2);
}

#[test]
fn ls_and_show_describe_the_archive() {
    let env = Env::new("pve-node");
    let archive = backup_at(&env, "2026-11-27T03:00:00Z", &[]);
    let index = index_of(&archive);
    let indexed: Vec<String> = index["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();

    // All entries, in archive order, meta first and index last.
    let j = env.run(&["--json", "ls", "latest"]).json();
    let listed: Vec<String> = j["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        listed.first().map(String::as_str),
        Some("proxkeep/meta.json")
    );
    assert_eq!(
        listed.last().map(String::as_str),
        Some("proxkeep/index.json")
    );
    assert_eq!(listed[1..listed.len() - 1], indexed[..]);
    let storage = j["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "etc/pve/storage.cfg")
        .unwrap();
    let e = index["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "etc/pve/storage.cfg")
        .unwrap();
    assert_eq!(storage["mode"], e["mode"]);
    assert_eq!(storage["size"], e["size"]);
    assert_eq!(storage["mtime"], FIXTURE_MTIME);

    // A prefix is whole path components; the human form looks like `ls -l`.
    let r = env.run(&["ls", "latest", "/etc/pve/nodes/due/qemu-server"]);
    r.expect(0);
    let out = r.stdout();
    assert!(out.lines().next().unwrap().starts_with("drwx"), "{out}");
    assert!(
        out.lines()
            .all(|l| l.contains("etc/pve/nodes/due/qemu-server")),
        "{out}"
    );
    assert!(
        out.contains("etc/pve/nodes/due/qemu-server/100.conf"),
        "{out}"
    );
    let links = env.run(&["ls", "latest", "etc/pve"]).stdout();
    assert!(
        links.contains("etc/pve/local -> nodes/due")
            && links.lines().any(|l| l.starts_with("lrwxrwxrwx")),
        "{links}"
    );
    env.run(&["ls", "latest", "etc/pve/nodes/du"]).expect(1);

    // show: what meta.json says, and counts per category that agree with the index.
    let s = env.run(&["--json", "show", "latest"]).json();
    assert_eq!(s["meta"]["host"], "due");
    assert_eq!(s["meta"]["role"], "pve");
    let cats = s["categories"].as_array().unwrap();
    for cat in ["pve-cluster", "network", "apt"] {
        let n = index["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["category"] == cat && e["kind"] == "file")
            .count();
        let c = cats.iter().find(|c| c["category"] == cat).unwrap();
        assert_eq!(c["files"], n, "{cat}");
    }
    assert_eq!(s["totals"], index["totals"]);
    let human = env.run(&["show", "latest"]);
    human.expect(0);
    assert!(
        human.stdout().contains("pve-cluster") && human.stdout().contains("warnings     0"),
        "{}",
        human.stdout()
    );
}

// ------------------------------------------------------------------------------------------------
// verify: each damage case
// ------------------------------------------------------------------------------------------------

#[test]
fn verify_passes_an_intact_archive_and_records_it() {
    let env = Env::new("pve-node");
    let archive = backup_at(&env, "2026-11-27T03:00:00Z", &[]);
    let r = env.run(&["--json", "verify"]);
    r.expect(0);
    let j = r.json();
    assert_eq!(j["ok"], true);
    assert_eq!(j["sidecar"], "ok");
    assert_eq!(j["sha256"].as_str().unwrap(), sha256_file(&archive));
    let state: serde_json::Value =
        serde_json::from_slice(&fs::read(env.backups.join(".proxkeep-verify.json")).unwrap())
            .unwrap();
    let name = archive.file_name().unwrap().to_str().unwrap();
    assert_eq!(state["archives"][name]["ok"], true);
    assert_eq!(state["archives"][name]["by"], "verify");
    // No sidecar is fine.
    fs::remove_file(env.backups.join(format!("{name}.sha256"))).unwrap();
    let r = env.run(&["--json", "verify", name]);
    r.expect(0);
    assert_eq!(r.json()["sidecar"], "absent");
}

#[test]
fn verify_names_the_file_behind_a_flipped_byte_or_the_block_where_the_stream_breaks() {
    let mut env = Env::new("pve-node");
    // 1 MiB that does not compress: zstd stores it in raw blocks, so the archive spans several 128 KiB blocks.
    fs::create_dir_all(env.root.join("srv/blob")).unwrap();
    sh_ok(&format!(
        "head -c 1048576 /dev/urandom > '{}'",
        env.root.join("srv/blob/data").display()
    ));
    env.write_config("[collect]\nextra_paths = [\"/srv/blob\"]\n");
    let archive = backup_at(&env, "2026-11-27T03:00:00Z", &[]);
    let orig_tar = env.path("orig.tar");
    sh_ok(&format!(
        "{} -dc '{}' > '{}'",
        tool("zstd"),
        archive.display(),
        orig_tar.display()
    ));
    let orig = fs::read(&orig_tar).unwrap();
    let members = members(&orig_tar);
    let len = fs::metadata(&archive).unwrap().len();

    let dir = env.path("damaged");
    fs::create_dir_all(&dir).unwrap();
    let damaged = dir.join(archive.file_name().unwrap());
    let (mut by_path, mut by_offset) = (0, 0);
    let blocks = zstd_block_headers(&fs::read(&archive).unwrap());
    assert!(blocks.len() >= 8, "{blocks:?}");
    // Bytes here and there, plus the top byte of a middle block's header (its size becomes impossible).
    let header = blocks[blocks.len() / 2] as u64 + 2;
    for pos in [200, len / 3, len / 2, len * 3 / 4, len - 20, header] {
        let mut data = fs::read(&archive).unwrap();
        data[pos as usize] ^= if pos == header { 0x40 } else { 0x10 };
        fs::write(&damaged, &data).unwrap();
        let r = env.run(&["--json", "verify", damaged.to_str().unwrap()]);
        // Ground truth from the zstd tool itself: decode ignoring the checksum and find the first changed byte.
        let out_tar = env.path("out.tar");
        let decoded = sh(&format!(
            "{} -dc --no-check '{}' > '{}'",
            tool("zstd"),
            damaged.display(),
            out_tar.display()
        ));
        let out = fs::read(&out_tar).unwrap();
        // A flip zstd itself cannot see (the frame decodes to the very same bytes and its checksum holds, as
        // when a match copies the tar's trailing zeros from another offset) is no damage of the contents.
        let zstd_ok = sh(&format!("{} -tq '{}'", tool("zstd"), damaged.display()));
        if decoded.status.success() && out == orig && zstd_ok.status.success() {
            r.expect(0);
            continue;
        }
        r.expect(6);
        let first_diff = orig
            .iter()
            .zip(&out)
            .position(|(a, b)| a != b)
            .unwrap_or(orig.len().min(out.len())) as u64;
        let inside = members
            .iter()
            .find(|m| first_diff >= m.2 && first_diff < m.2 + m.3);
        match inside {
            _ if decoded.status.success() && out == orig => {
                // The flip changed nothing the decoder outputs: only zstd's own checksum can tell.
                assert!(
                    problems(&r)
                        .iter()
                        .any(|p| p["message"].as_str().unwrap().contains("checksum")),
                    "{}",
                    r.stdout()
                );
            }
            Some((name, ..)) if decoded.status.success() && name.starts_with("proxkeep/") => {
                // meta.json or index.json decodes to wrong bytes. It may still parse (a changed hex digit of
                // a hash), and then another entry seems to differ from it: only zstd's checksum tells the
                // truth, at the end of the stream. Either is an answer; silence is not.
                let named = problems(&r).iter().any(|p| p["path"] == name.as_str());
                let checksum = problems(&r)
                    .iter()
                    .any(|p| p["message"].as_str().unwrap().contains("checksum"));
                assert!(
                    named || checksum,
                    "flip at {pos} changed {name}: {}",
                    r.stdout()
                );
            }
            Some((name, ..)) if decoded.status.success() => {
                // The stream decodes (to wrong bytes): verify must name the file whose content changed.
                assert!(
                    problems(&r).iter().any(|p| p["path"] == name.as_str()),
                    "flip at {pos} changed {name}: {}",
                    r.stdout()
                );
                by_path += 1;
            }
            _ => {
                // The stream breaks: verify must place it within one zstd block (128 KiB, plus the 16 KiB the
                // decoder is handed at a time) of the flipped byte.
                let near = problems(&r)
                    .iter()
                    .filter_map(|p| p["offset"].as_u64())
                    .any(|o| o.abs_diff(pos) <= (128 + 16) * 1024);
                assert!(near, "flip at {pos}: no offset near it: {}", r.stdout());
                by_offset += 1;
            }
        }
    }
    // Both kinds of outcome happened: a raw block flip changes one byte of the blob.
    assert!(
        by_path >= 1 && by_offset >= 1,
        "by path {by_path}, by offset {by_offset}"
    );
}

#[test]
fn verify_reports_where_a_truncated_file_ends() {
    let env = Env::new("pve-node");
    let zst = backup_at(&env, "2026-11-27T03:00:00Z", &[]);
    let gz = backup_at(&env, "2026-11-27T04:00:00Z", &["--compression", "gzip"]);
    let plain = backup_at(&env, "2026-11-27T05:00:00Z", &["--compression", "none"]);
    for archive in [&zst, &gz, &plain] {
        let cut = fs::metadata(archive).unwrap().len() * 2 / 3 + 7;
        sh_ok(&format!("truncate -s {cut} '{}'", archive.display()));
        let r = env.run(&["--json", "verify", archive.to_str().unwrap()]);
        r.expect(6);
        assert!(
            problems(&r)
                .iter()
                .any(|p| p["offset"] == cut && p["message"].as_str().unwrap().contains("cut off")),
            "{}: {}",
            archive.display(),
            r.stdout()
        );
        // The sidecar cannot be checked (the file's end was never reached), and is not blamed.
        assert_eq!(r.json()["sidecar"], "unchecked");
    }
    // The human form names the offset.
    let r = env.run(&["verify", zst.to_str().unwrap()]);
    r.expect(6);
    assert!(
        r.stdout().contains("DAMAGED") && r.stdout().contains("cut off"),
        "{}",
        r.stdout()
    );
}

#[test]
fn verify_names_a_file_changed_inside_an_uncompressed_tar_and_cat_still_gives_its_bytes() {
    let env = Env::new("pve-node");
    let archive = backup_at(&env, "2026-11-27T03:00:00Z", &["--compression", "none"]);
    let (_, _, data_at, size) = members(&archive)
        .into_iter()
        .find(|m| m.0 == "etc/pve/storage.cfg")
        .unwrap();
    // Patch bytes of the content in place (same length: only the hash can tell).
    let mut data = fs::read(&archive).unwrap();
    let at = (data_at + size / 2) as usize;
    data[at] = if data[at] == b'X' { b'Y' } else { b'X' };
    fs::write(&archive, &data).unwrap();
    let r = env.run(&["--json", "verify"]);
    r.expect(6);
    assert!(
        has_problem(&r, "etc/pve/storage.cfg", "content hash differs"),
        "{}",
        r.stdout()
    );
    // The file's own sidecar no longer matches either.
    let name = archive.file_name().unwrap().to_str().unwrap();
    assert!(
        has_problem(&r, &format!("{name}.sha256"), "says sha256"),
        "{}",
        r.stdout()
    );
    // Nothing else is blamed.
    assert_eq!(problems(&r).len(), 2, "{}", r.stdout());

    // cat gives the bytes it has, then says they are not the ones backed up.
    let c = env.run(&["cat", "latest", "etc/pve/storage.cfg"]);
    c.expect(6);
    assert_eq!(c.0.stdout.len() as u64, size);
    assert!(
        c.stderr().contains("differs from the index"),
        "{}",
        c.stderr()
    );
    // Another file of the same archive is fine.
    env.run(&["cat", "latest", "etc/hosts"]).expect(0);
}

#[test]
fn verify_notices_a_removed_index() {
    let env = Env::new("pve-node");
    let archive = backup_at(&env, "2026-11-27T03:00:00Z", &["--compression", "none"]);
    // Rebuild the archive with GNU tar from its own entries, in order, without index.json.
    let x = env.path("x");
    gnu_extract(&archive, &x);
    let list = env.path("list");
    sh_ok(&format!(
        "tar -tf '{}' | grep -vx proxkeep/index.json > '{}'",
        archive.display(),
        list.display()
    ));
    let rebuilt = env.path("rebuilt").join(archive.file_name().unwrap());
    fs::create_dir_all(rebuilt.parent().unwrap()).unwrap();
    sh_ok(&format!(
        "tar --format=gnu --numeric-owner --no-recursion -cf '{}' -C '{}' -T '{}'",
        rebuilt.display(),
        x.display(),
        list.display()
    ));
    let r = env.run(&["--json", "verify", rebuilt.to_str().unwrap()]);
    r.expect(6);
    assert!(
        problems(&r)
            .iter()
            .any(|p| p["message"] == "proxkeep/index.json is missing"),
        "{}",
        r.stdout()
    );
    // show needs the index: it says so, with the damage exit code.
    let s = env.run(&["show", rebuilt.to_str().unwrap()]);
    s.expect(6);
    assert!(
        s.stderr().contains("index.json is missing"),
        "{}",
        s.stderr()
    );
}

#[test]
fn verify_notices_an_entry_appended_after_the_index() {
    let env = Env::new("pve-node");
    let archive = backup_at(&env, "2026-11-27T03:00:00Z", &["--compression", "none"]);
    let extra = env.path("evil.sh");
    fs::write(&extra, "#!/bin/sh\necho pwned\n").unwrap();
    sh_ok(&format!(
        "cd '{}' && tar -rf '{}' evil.sh",
        env.tmp.path().display(),
        archive.display()
    ));
    assert!(
        sh_ok(&format!("tar -tf '{}'", archive.display()))
            .lines()
            .last()
            == Some("evil.sh")
    );
    let r = env.run(&["--json", "verify"]);
    r.expect(6);
    assert!(
        has_problem(&r, "evil.sh", "after proxkeep/index.json"),
        "{}",
        r.stdout()
    );
    assert!(
        has_problem(&r, "evil.sh", "not in the index"),
        "{}",
        r.stdout()
    );
}

#[test]
fn verify_notices_a_wrong_sidecar_and_verify_all_prints_a_table() {
    let env = Env::new("pve-node");
    let good = backup_at(&env, "2026-11-27T03:00:00Z", &[]);
    let bad = backup_at(&env, "2026-11-28T03:00:00Z", &[]);
    let bad_name = bad.file_name().unwrap().to_str().unwrap().to_string();
    let sidecar = env.backups.join(format!("{bad_name}.sha256"));
    // A hash of something else, in proper `sha256sum` format.
    fs::write(&sidecar, format!("{}  {bad_name}\n", sha256_file(&good))).unwrap();
    let r = env.run(&["--json", "verify", &bad_name]);
    r.expect(6);
    assert!(
        has_problem(&r, &format!("{bad_name}.sha256"), "says sha256"),
        "{}",
        r.stdout()
    );
    assert_eq!(
        problems(&r).len(),
        1,
        "only the sidecar is wrong: {}",
        r.stdout()
    );
    assert_eq!(r.json()["sidecar"], "mismatch");

    fs::write(env.backups.join("notes.txt"), "not an archive").unwrap();
    let all = env.run(&["verify", "--all"]);
    all.expect(6);
    let out = all.stdout();
    assert!(out.starts_with("ARCHIVE"), "{out}");
    let good_name = good.file_name().unwrap().to_str().unwrap();
    assert!(
        out.lines()
            .any(|l| l.starts_with(good_name) && l.trim_end().ends_with("ok")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with(&bad_name) && l.contains("DAMAGED")),
        "{out}"
    );
    assert!(
        out.contains("2 archive(s): 1 ok, 1 damaged") && !out.contains("notes.txt"),
        "{out}"
    );
    // The right sidecar back: everything is ok.
    sh_ok(&format!(
        "cd '{}' && sha256sum '{bad_name}' > '{bad_name}.sha256'",
        env.backups.display()
    ));
    env.run(&["verify", "--all"]).expect(0);
}

// ------------------------------------------------------------------------------------------------
// list
// ------------------------------------------------------------------------------------------------

#[test]
fn list_shows_fifty_archives_a_truncated_one_and_ignores_the_rest() {
    let env = Env::new("pve-node");
    let real = backup_at(&env, "2026-11-27T03:00:00Z", &[]);
    let real_name = real.file_name().unwrap().to_str().unwrap().to_string();
    // 49 more under other valid names (one per hour before it): list reads meta.json of each.
    let mut copies = Vec::new();
    for i in 1..50 {
        let t = jiff::Timestamp::from_second(1_795_662_000 - i * 3600).unwrap();
        let name = format!("due-pve-{}.tar.zst", t.strftime("%Y%m%dT%H%M%SZ"));
        fs::copy(&real, env.backups.join(&name)).unwrap();
        copies.push(name);
    }
    let truncated = "due-pve-20251001T000000Z.tar.zst";
    let data = fs::read(&real).unwrap();
    fs::write(env.backups.join(truncated), &data[..data.len() / 2]).unwrap();
    fs::write(env.backups.join("notes.txt"), "unrelated").unwrap();
    fs::write(env.backups.join("due-pve-garbage.tar.zst"), "unrelated too").unwrap();
    fs::create_dir(env.backups.join("due-pve-20251002T000000Z.tar.zst")).unwrap();
    fs::copy(
        &real,
        env.backups.join("other-pve-20261126T030000Z.tar.zst"),
    )
    .unwrap();

    let r = env.run(&["--json", "list"]);
    r.expect(0);
    let rows = r.json().as_array().unwrap().clone();
    assert_eq!(rows.len(), 51, "{}", r.stdout());
    let state = |name: &str| {
        rows.iter()
            .find(|x| x["name"] == name)
            .map(|x| x["state"].as_str().unwrap().to_string())
    };
    assert_eq!(
        state(&real_name).as_deref(),
        Some("ok"),
        "the backup recorded its own read-back"
    );
    assert!(
        copies
            .iter()
            .all(|c| state(c).as_deref() == Some("unverified"))
    );
    assert_eq!(state(truncated).as_deref(), Some("damaged"));
    assert_eq!(
        state("other-pve-20261126T030000Z.tar.zst"),
        None,
        "another host's archive"
    );
    // Newest first; the real one carries its counts.
    assert_eq!(rows[0]["name"], real_name.as_str());
    assert_eq!(rows[50]["name"], truncated);
    assert_eq!(rows[0]["files"], index_of(&real)["totals"]["files"]);
    assert!(rows[1]["files"].is_null());

    // Verify one copy: ok. Damage another and verify it: damaged. Touch a verified one: unverified again.
    env.run(&["verify", &copies[0]]).expect(0);
    let mut flipped = fs::read(env.backups.join(&copies[1])).unwrap();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x55;
    fs::write(env.backups.join(&copies[1]), &flipped).unwrap();
    env.run(&["verify", &copies[1]]).expect(6);
    env.run(&["verify", &copies[2]]).expect(0);
    sh_ok(&format!(
        "touch -d '2020-01-01' '{}'",
        env.backups.join(&copies[2]).display()
    ));
    let rows = env
        .run(&["--json", "list"])
        .json()
        .as_array()
        .unwrap()
        .clone();
    let row = |name: &str| rows.iter().find(|x| x["name"] == name).unwrap().clone();
    assert_eq!(row(&copies[0])["state"], "ok");
    assert_eq!(row(&copies[1])["state"], "damaged");
    assert_eq!(row(&copies[2])["state"], "unverified");
    assert!(
        row(&copies[2])["reason"]
            .as_str()
            .unwrap()
            .contains("changed"),
        "{}",
        row(&copies[2])
    );

    // The table: one line per archive plus the header, the damaged ones explained below it.
    let r = env.run(&["list"]);
    r.expect(0);
    let out = r.stdout();
    let header = out.lines().next().unwrap();
    for col in [
        "TIME",
        "ROLE",
        "SIZE",
        "COMPRESSION",
        "FILES",
        "WARNINGS",
        "STATE",
    ] {
        assert!(header.contains(col), "{header}");
    }
    assert_eq!(
        out.lines()
            .filter(|l| l.contains(".tar.zst") && !l.starts_with("damaged:"))
            .count(),
        51,
        "{out}"
    );
    assert!(
        out.contains(&format!("damaged: {truncated}: cut off")),
        "{out}"
    );
    // Every host with --all-hosts; another directory with --dir.
    assert_eq!(
        env.run(&["--json", "list", "--all-hosts"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        52
    );
    let empty = env.path("empty");
    let r = env.run(&["list", "--dir", empty.to_str().unwrap()]);
    r.expect(0);
    assert!(r.stdout().contains("no archives"), "{}", r.stdout());
}

#[test]
fn list_calls_a_cut_gzip_archive_damaged_from_its_recorded_size() {
    let env = Env::new("pve-node");
    let gz = backup_at(&env, "2026-11-27T03:00:00Z", &["--compression", "gzip"]);
    let xz = backup_at(&env, "2026-11-27T04:00:00Z", &["--compression", "xz"]);
    let plain = backup_at(&env, "2026-11-27T05:00:00Z", &["--compression", "none"]);
    for a in [&gz, &xz, &plain] {
        let len = fs::metadata(a).unwrap().len();
        sh_ok(&format!("truncate -s {} '{}'", len - 100, a.display()));
    }
    let rows = env
        .run(&["--json", "list"])
        .json()
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(rows.len(), 3);
    for r in &rows {
        assert_eq!(r["state"], "damaged", "{r}");
        assert!(r["reason"].as_str().unwrap().contains("cut off"), "{r}");
    }
}

// ------------------------------------------------------------------------------------------------
// diff
// ------------------------------------------------------------------------------------------------

#[test]
fn diff_between_two_backups_shows_exactly_the_four_changes_by_category() {
    let env = Env::new("pve-node");
    let first = backup_at(&env, "2026-11-27T03:00:00Z", &[]);
    // Nothing changed yet: the host matches the backup exactly.
    let r = env.run(&["diff", "latest", "--live", "--exit-code"]);
    r.expect(0);
    assert!(r.stdout().contains("no differences"), "{}", r.stdout());

    let storage = env.root.join("etc/pve/storage.cfg");
    let mut text = fs::read_to_string(&storage).unwrap();
    text.push_str("\ndir: scratch\n\tpath /srv/scratch\n\tcontent iso\n");
    fs::write(&storage, text).unwrap();
    fs::remove_file(env.root.join("etc/pve/nodes/due/qemu-server/101.conf")).unwrap();
    fs::write(
        env.root.join("etc/network/interfaces.d/vlan10"),
        "auto vlan10\niface vlan10 inet manual\n",
    )
    .unwrap();
    sh_ok(&format!(
        "chmod 0600 '{}'",
        env.root.join("etc/vzdump.conf").display()
    ));
    let second = backup_at(&env, "2026-11-28T03:00:00Z", &[]);
    assert_ne!(first, second);

    let r = env.run(&["--json", "diff", "latest~1", "latest"]);
    r.expect(0);
    let j = r.json();
    let got: Vec<(String, String, String)> = j["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["category"].as_str().unwrap().into(),
                d["path"].as_str().unwrap().into(),
                d["change"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want: Vec<(String, String, String)> = [
        (
            "pve-cluster",
            "etc/pve/nodes/due/qemu-server/101.conf",
            "removed",
        ),
        ("pve-cluster", "etc/pve/storage.cfg", "changed"),
        ("pve-host", "etc/vzdump.conf", "changed"),
        ("network", "etc/network/interfaces.d/vlan10", "added"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(got, want);
    let diffs = j["differences"].as_array().unwrap();
    assert_eq!(diffs[1]["details"][0]["field"], "content");
    assert_eq!(
        diffs[2]["details"],
        serde_json::json!([{"field": "mode", "from": "0644", "to": "0600"}])
    );
    assert_eq!(
        (
            j["added"].as_u64(),
            j["removed"].as_u64(),
            j["changed"].as_u64()
        ),
        (Some(1), Some(1), Some(2))
    );

    // Human form: grouped under category headings, in catalog order.
    let r = env.run(&["diff", "latest~1", "latest"]);
    r.expect(0);
    let out = r.stdout();
    let pos = |s: &str| out.find(s).unwrap_or_else(|| panic!("{s} missing:\n{out}"));
    assert!(
        pos("\npve-cluster\n") < pos("- etc/pve/nodes/due/qemu-server/101.conf"),
        "{out}"
    );
    assert!(pos("~ etc/pve/storage.cfg") < pos("\npve-host\n"), "{out}");
    assert!(
        pos("\npve-host\n") < pos("~ etc/vzdump.conf: mode 0644 → 0600"),
        "{out}"
    );
    assert!(
        pos("\nnetwork\n") < pos("+ etc/network/interfaces.d/vlan10"),
        "{out}"
    );
    assert!(
        out.contains("4 difference(s): 1 added, 1 removed, 2 changed"),
        "{out}"
    );
    // --exit-code: 1 when they differ; the same archive twice: 0.
    env.run(&["diff", "latest~1", "latest", "--exit-code"])
        .expect(1);
    env.run(&["diff", "latest", "latest", "--exit-code"])
        .expect(0);

    // --patch: a unified diff that `patch` applies to the old file to give the new one.
    let p = env.run(&["diff", "latest~1", "latest", "--patch"]).stdout();
    assert!(
        p.contains("--- a/etc/pve/storage.cfg\n+++ b/etc/pve/storage.cfg")
            && p.contains("+dir: scratch"),
        "{p}"
    );
    assert!(
        p.contains("--- a/etc/pve/nodes/due/qemu-server/101.conf\n+++ /dev/null"),
        "{p}"
    );
    let old = env.path("old-storage.cfg");
    fs::write(
        &old,
        env.run(&["cat", "latest~1", "etc/pve/storage.cfg"])
            .0
            .stdout,
    )
    .unwrap();
    let start = p.find("--- a/etc/pve/storage.cfg").unwrap();
    let patch_file = env.path("storage.patch");
    // The patch ends at the next entry line (indented) or the blank line before the next category.
    let hunk: String = p[start..]
        .lines()
        .take_while(|l| !l.is_empty() && !l.starts_with("  "))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(&patch_file, hunk).unwrap();
    sh_ok(&format!(
        "patch -s '{}' < '{}'",
        old.display(),
        patch_file.display()
    ));
    assert_eq!(fs::read(&old).unwrap(), fs::read(&storage).unwrap());
}

#[test]
fn diff_live_shows_an_edit_and_hides_secrets_unless_asked() {
    let env = Env::new("pve-node");
    backup_at(&env, "2026-11-27T03:00:00Z", &[]);
    let hosts = env.root.join("etc/hosts");
    let text = fs::read_to_string(&hosts).unwrap().replace(
        "10.10.10.2 due.example.com due",
        "10.10.10.42 due.example.com due",
    );
    fs::write(&hosts, text).unwrap();
    let secret = env.root.join("etc/pve/priv/storage/backup.pw");
    fs::write(&secret, "hunter2-new-password\n").unwrap();
    let old_secret = env
        .run(&["cat", "latest", "etc/pve/priv/storage/backup.pw"])
        .stdout();
    assert!(!old_secret.is_empty());

    let r = env.run(&["diff", "latest", "--live", "--patch", "--exit-code"]);
    r.expect(1);
    let out = r.stdout();
    assert!(
        out.contains("~ etc/hosts: content")
            && out.contains("-10.10.10.2 due")
            && out.contains("+10.10.10.42 due"),
        "{out}"
    );
    assert!(
        out.contains("~ etc/pve/priv/storage/backup.pw: content (secret: not shown)"),
        "{out}"
    );
    assert!(
        !out.contains("hunter2") && !out.contains(old_secret.trim()),
        "a secret leaked:\n{out}"
    );
    let j = env.run(&["--json", "diff", "latest", "--live", "--patch"]);
    let json = j.stdout();
    assert!(
        !json.contains("hunter2") && !json.contains(old_secret.trim()),
        "a secret leaked:\n{json}"
    );
    assert!(
        !json.contains(&sha256_file(&secret)),
        "a secret's hash leaked:\n{json}"
    );
    let d = j.json()["differences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["path"] == "etc/pve/priv/storage/backup.pw")
        .unwrap()
        .clone();
    assert_eq!(d["secret"], true);
    // Asked for: shown.
    let shown = env
        .run(&["diff", "latest", "--live", "--patch", "--show-secrets"])
        .stdout();
    assert!(shown.contains("+hunter2-new-password"), "{shown}");
    // Exactly the two edits.
    assert_eq!(
        env.run(&["--json", "diff", "latest", "--live"]).json()["differences"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // A diff needs a second side.
    env.run(&["diff", "latest"]).expect(2);
}

#[test]
fn diff_live_with_pmxcfs_down_compares_the_tree_in_config_db() {
    let env = Env::new("pve-node");
    make_config_db(&env.root);
    // pmxcfs not mounted: /etc/pve is empty, both the backup and the live side read config.db.
    fs::rename(env.root.join("etc/pve"), env.path("pve-saved")).unwrap();
    fs::create_dir(env.root.join("etc/pve")).unwrap();
    // A warning (exit 3) since issue 12: /etc/pve rebuilt from config.db.
    run_at(&env, "2026-11-27T03:00:00Z", &["backup"]).expect(3);
    let r = env.run(&["diff", "latest", "--live", "--exit-code"]);
    r.expect(0);
    let db = env.root.join("var/lib/pve-cluster/config.db");
    sh_ok(&format!(
        "{} '{}' \"UPDATE tree SET data = CAST(CAST(data AS TEXT) || 'user:new@pve:1:0::::::' || char(10) AS BLOB) WHERE name = 'user.cfg'\"",
        tool("sqlite3"),
        db.display()
    ));
    let r = env.run(&["diff", "latest", "--live", "--patch", "--exit-code"]);
    r.expect(1);
    let out = r.stdout();
    assert!(
        out.contains("~ etc/pve/user.cfg: content") && out.contains("+user:new@pve:1:0::::::"),
        "{out}"
    );
    assert!(out.contains("1 difference(s)"), "{out}");
}

#[test]
fn cat_keeps_secrets_off_a_terminal_unless_asked() {
    let env = Env::new("pve-node");
    backup_at(&env, "2026-11-27T03:00:00Z", &[]);
    let secret = fs::read_to_string(env.root.join("etc/pve/priv/storage/backup.pw")).unwrap();
    // `script` gives the command a pseudo-terminal as stdout.
    let on_tty = |extra: &str| {
        sh(&format!(
            "{} -qec \"'{}' --config '{}' --root '{}' cat latest etc/pve/priv/storage/backup.pw {extra}\" /dev/null",
            tool("script"),
            bin().display(),
            env.config.display(),
            env.root.display()
        ))
    };
    let refused = on_tty("");
    assert_eq!(refused.status.code(), Some(2));
    let shown = String::from_utf8_lossy(&refused.stdout);
    assert!(
        shown.contains("holds secrets") && !shown.contains(secret.trim()),
        "{shown}"
    );
    let asked = on_tty("--show-secrets");
    assert_eq!(asked.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&asked.stdout).contains(secret.trim()));
    // Into a pipe or a file (what restoring one file by hand looks like), no flag is needed.
    let piped = env.run(&["cat", "latest", "etc/pve/priv/storage/backup.pw"]);
    piped.expect(0);
    assert_eq!(piped.stdout(), secret);
}

#[test]
fn an_interrupt_ends_a_reading_command_with_130() {
    let mut env = Env::new("pve-node");
    fs::create_dir_all(env.root.join("srv/blob")).unwrap();
    sh_ok(&format!(
        "head -c 4000000 /dev/urandom > '{}'",
        env.root.join("srv/blob/data").display()
    ));
    env.write_config("[collect]\nextra_paths = [\"/srv/blob\"]\n");
    backup_at(&env, "2026-11-27T03:00:00Z", &[]);
    // stdout is a pipe nobody reads: `cat` blocks once it is full, and SIGINT must still end it.
    let mut child = env
        .cmd()
        .args(["cat", "latest", "srv/blob/data"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    sh_ok(&format!("kill -INT {}", child.id()));
    let started = std::time::Instant::now();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

#[test]
fn ls_and_cat_on_a_cut_archive_give_what_comes_before_the_damage() {
    let env = Env::new("pve-node");
    let archive = backup_at(&env, "2026-11-27T03:00:00Z", &["--compression", "none"]);
    let members = members(&archive);
    // Cut inside the content of an entry two thirds in: everything before it is intact.
    let victim = members[members.len() * 2 / 3..]
        .iter()
        .find(|m| m.3 > 100)
        .unwrap()
        .clone();
    let before: Vec<&str> = members
        .iter()
        .take_while(|m| m.0 != victim.0)
        .map(|m| m.0.as_str())
        .collect();
    let cut = victim.2 + victim.3 / 2;
    sh_ok(&format!("truncate -s {cut} '{}'", archive.display()));

    let r = env.run(&["ls", "latest"]);
    r.expect(6);
    let listed: Vec<String> = r
        .stdout()
        .lines()
        .map(|l| l.split_whitespace().nth(5).unwrap().to_string())
        .collect();
    // Every entry before the cut is listed (the cut one too: its header is intact), then the error.
    assert_eq!(&listed[..before.len()], &before[..], "{}", r.stdout());
    assert!(
        r.stderr().contains("damaged") && r.stderr().contains(&cut.to_string()),
        "{}",
        r.stderr()
    );
    let j = env.run(&["--json", "ls", "latest"]);
    j.expect(6);
    assert!(
        j.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("damaged")
    );
    assert_eq!(j.json()["error"]["code"], 6);

    // A file before the cut comes out whole, and cat says it could not check it against the (lost) index.
    let early = members
        .iter()
        .find(|m| m.3 > 0 && !m.0.starts_with("proxkeep/"))
        .unwrap();
    assert!(early.1 < victim.1, "{} is before the cut", early.0);
    let c = env.run(&["cat", "latest", &early.0]);
    c.expect(6);
    assert_eq!(c.0.stdout, fs::read(env.root.join(&early.0)).unwrap());
    assert!(
        c.stderr().contains("could not be checked"),
        "{}",
        c.stderr()
    );
    // The cut file itself: its first bytes, then the error.
    let c = env.run(&["cat", "latest", &victim.0]);
    c.expect(6);
    let want = fs::read(env.root.join(&victim.0)).unwrap();
    assert!(
        !c.0.stdout.is_empty() && want.starts_with(&c.0.stdout),
        "{} bytes",
        c.0.stdout.len()
    );
}
