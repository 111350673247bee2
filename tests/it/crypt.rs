//! age encryption (issue 6) end to end, with Debian's real `age` CLI on the other side of every interop check:
//! archives proxkeep encrypts are opened by `age -d`, archives `age` encrypts are read by proxkeep, for X25519,
//! ssh-ed25519 and passphrase (scrypt, driven through a pty: age asks on a terminal only) recipients.

use crate::util::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const PASSPHRASE: &str = "correct horse battery staple";

/// A new identity from `proxkeep key generate --out`, and its recipient (what the command printed).
fn keygen(env: &Env, name: &str) -> (PathBuf, String) {
    let key = env.path(name);
    let r = env.run(&["key", "generate", "--out", key.to_str().unwrap()]);
    r.expect(0);
    let public = r.stdout().trim().to_string();
    assert!(public.starts_with("age1"), "{public}");
    (key, public)
}

fn recipients_config(env: &mut Env, recipients: &[&str]) {
    let list: Vec<String> = recipients.iter().map(|r| format!("{r:?}")).collect();
    env.write_config(&format!(
        "[encryption]\nrecipients = [{}]\n",
        list.join(", ")
    ));
}

fn backup(env: &Env) -> PathBuf {
    env.run(&["backup"]).expect(0);
    let a = env.only_archive();
    assert!(a.to_string_lossy().ends_with(".tar.zst.age"), "{a:?}");
    a
}

/// `age -d` with the CLI's own arguments; the plaintext.
fn age_decrypt(args: &[&str], archive: &Path) -> Vec<u8> {
    let out = Command::new(tool("age"))
        .arg("-d")
        .args(args)
        .arg(archive)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "age -d failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// GNU tar's listing of a plain .tar.zst given as bytes.
fn tar_list(plain: &[u8], env: &Env, name: &str) -> Vec<String> {
    let p = env.path(name);
    fs::write(&p, plain).unwrap();
    let list = sh_ok(&format!("tar -tf '{}'", p.display()));
    list.lines().map(String::from).collect()
}

fn age_pty(args: &[&str]) -> std::process::Output {
    Command::new("python3")
        .arg(repo().join("tests/support/age_pty.py"))
        .arg(tool("age"))
        .args(args)
        .env("AGE_PASS", PASSPHRASE)
        .output()
        .unwrap()
}

#[test]
fn the_age_cli_decrypts_a_proxkeep_archive_and_gnu_tar_lists_it() {
    let mut env = Env::new("pve-node");
    let (key, public) = keygen(&env, "key.txt");
    let mode = fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // A second identity made by age-keygen, named in a recipients file: either key opens the archive.
    sh_ok(&format!(
        "{} -o '{}' 2>/dev/null",
        tool("age-keygen"),
        env.path("keygen.txt").display()
    ));
    let other = sh_ok(&format!(
        "age-keygen -y '{}'",
        env.path("keygen.txt").display()
    ));
    fs::write(
        env.path("recipients.txt"),
        format!("# the team's key\n{}\n\n", other.trim()),
    )
    .unwrap();
    env.write_config(&format!(
        "[encryption]\nrecipients = [\"{public}\"]\nrecipients_file = \"{}\"\n",
        env.path("recipients.txt").display()
    ));
    let check = env.run(&["check"]);
    assert!(
        check
            .stdout()
            .contains("✓ encryption: age: 2 recipients (x25519)"),
        "{}",
        check.stdout()
    );
    let archive = backup(&env);
    assert_eq!(
        fs::metadata(&archive).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let raw = fs::read(&archive).unwrap();
    assert!(raw.starts_with(b"age-encryption.org/v1\n"));
    // The sidecar covers the bytes on disk, the encrypted ones: sha256sum -c agrees.
    sh_ok(&format!(
        "cd '{}' && sha256sum -c --quiet '{}.sha256'",
        env.backups.display(),
        archive.file_name().unwrap().to_string_lossy()
    ));

    for k in [&key, &env.path("keygen.txt")] {
        let plain = age_decrypt(&["-i", k.to_str().unwrap()], &archive);
        let list = tar_list(&plain, &env, "plain.tar.zst");
        assert_eq!(list[0], "proxkeep/meta.json");
        assert!(list.iter().any(|l| l == "etc/pve/storage.cfg"), "{list:?}");
        assert_eq!(list.last().unwrap(), "proxkeep/index.json");
    }
    // And proxkeep reads it back with either key.
    for k in [&key, &env.path("keygen.txt")] {
        env.run(&["verify", "-i", k.to_str().unwrap()]).expect(0);
    }
    let shown = env.run(&["show", "latest", "-i", key.to_str().unwrap()]);
    shown.expect(0);
    assert!(
        shown
            .stdout()
            .contains("encryption   age: 2 recipients (x25519)"),
        "{}",
        shown.stdout()
    );
    // `decrypt` writes the plain archive, 0600, and GNU tar lists it like any other.
    let out = env.path("out.tar.zst");
    env.run(&[
        "decrypt",
        "latest",
        out.to_str().unwrap(),
        "-i",
        key.to_str().unwrap(),
    ])
    .expect(0);
    assert_eq!(
        fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let listed = sh_ok(&format!("tar -tf '{}'", out.display()));
    assert!(listed.contains("etc/pve/storage.cfg"));
    // Never over an existing file.
    let again = env.run(&[
        "decrypt",
        "latest",
        out.to_str().unwrap(),
        "-i",
        key.to_str().unwrap(),
    ]);
    assert_eq!(again.code(), 1, "{}", again.stderr());
    assert!(again.stderr().contains("exists"), "{}", again.stderr());
}

#[test]
fn proxkeep_reads_archives_the_age_cli_encrypted_binary_and_armored() {
    let env = Env::new("pve-node");
    env.run(&["backup"]).expect(0);
    let plain = env.only_archive();
    let (key, public) = keygen(&env, "key.txt");
    let name = plain.file_name().unwrap().to_string_lossy().into_owned();
    let binary = env.path(&format!("{name}.age"));
    let armored = env.path("armored.age");
    sh_ok(&format!(
        "age -r {public} -o '{}' '{}'",
        binary.display(),
        plain.display()
    ));
    sh_ok(&format!(
        "age -a -r {public} -o '{}' '{}'",
        armored.display(),
        plain.display()
    ));
    assert!(
        fs::read_to_string(&armored)
            .unwrap()
            .starts_with("-----BEGIN AGE ENCRYPTED FILE-----")
    );
    for a in [&binary, &armored] {
        let r = env.run(&["verify", a.to_str().unwrap(), "-i", key.to_str().unwrap()]);
        r.expect(0);
        assert!(
            r.stdout().contains("every hash and header matches"),
            "{}",
            r.stdout()
        );
        let cat = env.run(&[
            "cat",
            a.to_str().unwrap(),
            "etc/pve/storage.cfg",
            "-i",
            key.to_str().unwrap(),
        ]);
        cat.expect(0);
        assert_eq!(
            cat.0.stdout,
            fs::read(env.root.join("etc/pve/storage.cfg")).unwrap()
        );
    }
}

#[test]
fn passphrase_mode_interoperates_with_the_age_cli_and_never_shows_the_passphrase() {
    let mut env = Env::new("pve-node");
    let pass_file = env.path("passphrase");
    fs::write(&pass_file, format!("{PASSPHRASE}\n")).unwrap();
    fs::set_permissions(&pass_file, fs::Permissions::from_mode(0o600)).unwrap();
    env.write_config(&format!(
        "[encryption]\npassphrase_file = \"{}\"\n",
        pass_file.display()
    ));
    let r = env.run(&["backup", "--json", "-v"]);
    r.expect(0);
    let archive = env.only_archive();
    assert_eq!(r.json()["encryption"], "age: passphrase (scrypt)");
    // The passphrase appears nowhere: not in --json, stderr, the run log, the config dump.
    let log = fs::read_dir(&env.logs)
        .unwrap()
        .flatten()
        .map(|e| fs::read_to_string(e.path()).unwrap())
        .collect::<String>();
    let shown = env.run(&["config", "show"]);
    for (what, text) in [
        ("--json", r.stdout()),
        ("stderr", r.stderr()),
        ("run log", log),
        ("config show", shown.stdout()),
    ] {
        assert!(!text.contains(PASSPHRASE), "{what} shows the passphrase");
        assert!(
            !text.contains("battery staple"),
            "{what} shows the passphrase"
        );
    }
    assert!(
        fs::read(&archive)
            .unwrap()
            .windows(9)
            .any(|w| w == b"-> scrypt"),
        "scrypt stanza"
    );

    // age (on a terminal) decrypts it; GNU tar lists the result.
    let out = env.path("from-age.tar.zst");
    let d = age_pty(&["-d", "-o", out.to_str().unwrap(), archive.to_str().unwrap()]);
    assert!(
        d.status.success(),
        "age -d: {}",
        String::from_utf8_lossy(&d.stdout)
    );
    assert!(sh_ok(&format!("tar -tf '{}'", out.display())).contains("etc/pve/storage.cfg"));

    // age -p encrypts a plain proxkeep archive; proxkeep reads it with --passphrase-file.
    let plain = env.path("plain.tar.zst");
    fs::copy(&out, &plain).unwrap();
    let enc = env.path("by-age.tar.zst.age");
    let e = age_pty(&["-p", "-o", enc.to_str().unwrap(), plain.to_str().unwrap()]);
    assert!(
        e.status.success(),
        "age -p: {}",
        String::from_utf8_lossy(&e.stdout)
    );
    env.run(&[
        "verify",
        enc.to_str().unwrap(),
        "--passphrase-file",
        pass_file.to_str().unwrap(),
    ])
    .expect(0);
    // Without flags the config's passphrase_file is used: the host checks its own archives.
    env.run(&["verify"]).expect(0);

    // A wrong passphrase: exit 6, said plainly.
    let wrong = env.path("wrong");
    fs::write(&wrong, "not it\n").unwrap();
    fs::set_permissions(&wrong, fs::Permissions::from_mode(0o600)).unwrap();
    let r = env.run(&["verify", "--passphrase-file", wrong.to_str().unwrap()]);
    r.expect(6);
    assert!(r.stderr().contains("wrong passphrase"), "{}", r.stderr());
}

#[test]
fn an_ssh_ed25519_recipient_works_with_the_age_cli() {
    let mut env = Env::new("pve-node");
    let key = env.path("id_ed25519");
    sh_ok(&format!(
        "{} -q -t ed25519 -N '' -C proxkeep-test -f '{}'",
        tool("ssh-keygen"),
        key.display()
    ));
    let public = fs::read_to_string(env.path("id_ed25519.pub")).unwrap();
    recipients_config(&mut env, &[public.trim()]);
    let archive = backup(&env);
    let plain = age_decrypt(&["-i", key.to_str().unwrap()], &archive);
    assert!(tar_list(&plain, &env, "p.tar.zst").contains(&"etc/pve/storage.cfg".to_string()));
    env.run(&["verify", "-i", key.to_str().unwrap()]).expect(0);
    // The other direction: age encrypts to the ssh key, proxkeep decrypts with the ssh private key.
    let p = env.path("p.tar.zst");
    let by_age = env.path("by-age.age");
    sh_ok(&format!(
        "age -R '{}' -o '{}' '{}'",
        env.path("id_ed25519.pub").display(),
        by_age.display(),
        p.display()
    ));
    env.run(&[
        "verify",
        by_age.to_str().unwrap(),
        "-i",
        key.to_str().unwrap(),
    ])
    .expect(0);
}

#[test]
fn restore_extract_and_diff_from_an_encrypted_archive_match_a_plain_one() {
    let mut env = Env::new("pve-node");
    env.run(&["backup"]).expect(0);
    let plain = env.only_archive();
    let (key, public) = keygen(&env, "key.txt");
    let k = key.to_str().unwrap().to_string();
    recipients_config(&mut env, &[&public]);
    env.run(&["backup"]).expect(0);
    let enc = env
        .archives()
        .into_iter()
        .find(|a| a.to_string_lossy().ends_with(".age"))
        .unwrap();

    // extract: the same tree from both.
    let (a, b) = (env.path("x-plain"), env.path("x-enc"));
    env.run(&["extract", plain.to_str().unwrap(), a.to_str().unwrap()])
        .expect(0);
    env.run(&[
        "extract",
        enc.to_str().unwrap(),
        b.to_str().unwrap(),
        "-i",
        &k,
    ])
    .expect(0);
    assert_eq!(tree_state(&a), tree_state(&b));

    // restore --path / into empty targets: the same tree, and the same output.
    let (ta, tb) = (env.path("t-plain"), env.path("t-enc"));
    fs::create_dir_all(&ta).unwrap();
    fs::create_dir_all(&tb).unwrap();
    let restore_into = |archive: &Path, target: &Path, keys: &[&str]| {
        let mut args = vec![
            "restore",
            archive.to_str().unwrap(),
            "--target",
            target.to_str().unwrap(),
            "--path",
            "/",
            "--yes",
            "--no-safety-backup",
            "--json",
        ];
        args.extend_from_slice(keys);
        env.run(&args)
    };
    let ra = restore_into(&plain, &ta, &[]);
    ra.expect(0);
    let rb = restore_into(&enc, &tb, &["-i", &k]);
    rb.expect(0);
    assert_eq!(tree_state(&ta), tree_state(&tb));
    assert_eq!(ra.json()["report"], rb.json()["report"]);

    // diff: plain against encrypted shows no difference; --live on the encrypted one shows none either.
    let d = env.run(&[
        "diff",
        plain.to_str().unwrap(),
        enc.to_str().unwrap(),
        "--exit-code",
        "-i",
        &k,
    ]);
    d.expect(0);
    env.run(&[
        "diff",
        enc.to_str().unwrap(),
        "--live",
        "--exit-code",
        "-i",
        &k,
    ])
    .expect(0);

    // A restore onto a changed target with encryption configured: the safety archive is encrypted too, and
    // restoring it (with the key) undoes the restore.
    fs::write(tb.join("etc/pve/storage.cfg"), b"dir: local\n").unwrap();
    let changed = tree_state(&tb);
    env.run(&[
        "restore",
        enc.to_str().unwrap(),
        "--target",
        tb.to_str().unwrap(),
        "--only",
        "pve-cluster",
        "--yes",
        "-i",
        &k,
    ])
    .expect(0);
    let safety: Vec<PathBuf> = env
        .archives()
        .into_iter()
        .filter(|a| a.to_string_lossy().contains("-restore-safety-"))
        .collect();
    assert_eq!(safety.len(), 1, "{safety:?}");
    assert!(safety[0].to_string_lossy().ends_with(".tar.zst.age"));
    assert!(
        fs::read(&safety[0])
            .unwrap()
            .starts_with(b"age-encryption.org/v1\n")
    );
    env.run(&[
        "restore",
        safety[0].to_str().unwrap(),
        "--target",
        tb.to_str().unwrap(),
        "--path",
        "/",
        "--yes",
        "--no-safety-backup",
        "-i",
        &k,
    ])
    .expect(0);
    assert_eq!(tree_state(&tb), changed);
}

#[test]
fn wrong_key_flipped_byte_and_truncation_exit_6_and_write_nothing() {
    let mut env = Env::new("pve-node");
    let (key, public) = keygen(&env, "key.txt");
    let (wrong, _) = keygen(&env, "wrong.txt");
    recipients_config(&mut env, &[&public]);
    let archive = backup(&env);
    let a = archive.to_str().unwrap();
    let (k, w) = (key.to_str().unwrap(), wrong.to_str().unwrap());

    // Wrong identity: every read command says so and exits 6; nothing is written.
    let target = env.path("target");
    fs::create_dir_all(&target).unwrap();
    for args in [
        vec!["verify", a, "-i", w],
        vec!["ls", a, "-i", w],
        vec![
            "restore",
            a,
            "--target",
            target.to_str().unwrap(),
            "--yes",
            "-i",
            w,
        ],
        vec!["decrypt", a, env.path("d1").to_str().unwrap(), "-i", w],
    ] {
        let r = env.run(&args);
        r.expect(6);
        assert!(
            r.stderr().contains("none of the given keys can decrypt"),
            "{args:?}: {}",
            r.stderr()
        );
        assert!(r.stderr().contains(a), "names the archive: {}", r.stderr());
    }
    assert!(!env.path("d1").exists());
    assert_eq!(fs::read_dir(&target).unwrap().count(), 0);
    // No key at all: a usage error that says what to give.
    let r = env.run(&["ls", a]);
    r.expect(2);
    assert!(r.stderr().contains("--identity"), "{}", r.stderr());

    // One flipped byte in the payload, then a cut-off copy.
    let data = fs::read(&archive).unwrap();
    let flipped = env.path("flipped.tar.zst.age");
    let mut f = data.clone();
    let at = data.len() - 100;
    f[at] ^= 0x01;
    fs::write(&flipped, &f).unwrap();
    let cut = env.path("cut.tar.zst.age");
    fs::write(&cut, &data[..data.len() / 2]).unwrap();
    for bad in [&flipped, &cut] {
        let b = bad.to_str().unwrap();
        let r = env.run(&["verify", b, "-i", k]);
        r.expect(6);
        assert!(
            r.stdout().contains("damaged, tampered with or cut off"),
            "{}",
            r.stdout()
        );
        let out = env.path("plain-out");
        let r = env.run(&["decrypt", b, out.to_str().unwrap(), "-i", k]);
        r.expect(6);
        assert!(r.stderr().contains(b), "{}", r.stderr());
        assert!(!out.exists(), "no partial output");
        let leftovers = sh_ok(&format!(
            "find '{}' -maxdepth 1 -name '.proxkeep-*'",
            env.tmp.path().display()
        ));
        assert_eq!(leftovers.trim(), "");
        let t = env.path("t2");
        fs::create_dir_all(&t).unwrap();
        env.run(&["extract", b, t.to_str().unwrap(), "-i", k])
            .expect(6);
    }
    // A wrong key is not damage: it is not recorded, and `list` does not call the archive damaged.
    let l = env.run(&["list", "--json", "-i", k]);
    assert_eq!(l.json()[0]["state"], "ok", "{}", l.stdout());
}

#[test]
fn a_bad_recipient_stops_the_backup_before_anything_is_written() {
    let mut env = Env::new("pve-node");
    let good = "age1w267nx0rjtee7xz6kclvfu0lhvuwfx3k4sn6dr34zjafrwg05dtsksrl9g";
    for (recipients, expect) in [
        (vec![good, "age1qqqqnotakey"], "recipients[1]"),
        (vec!["age1pq1qqqqqqqq"], "post-quantum"),
        (vec!["age1yubikey1qqqqqqqqqq"], "plugin"),
        (vec!["ssh-dss AAAAB3NzaC1kc3MAAACBAP"], "recipients[0]"),
    ] {
        recipients_config(&mut env, &recipients);
        let r = env.run(&["backup"]);
        r.expect(2);
        assert!(r.stderr().contains(expect), "{expect}: {}", r.stderr());
        assert!(
            r.stderr().contains("proxkeep.toml:6:"),
            "names file and line: {}",
            r.stderr()
        );
        assert!(!env.backups.exists(), "nothing written");
    }
    // A recipients file with a bad line, or missing: exit 2 naming it; never a plain archive instead.
    fs::write(env.path("r.txt"), format!("{good}\n# ok\nnot-a-key\n")).unwrap();
    env.write_config(&format!(
        "[encryption]\nrecipients_file = \"{}\"\n",
        env.path("r.txt").display()
    ));
    let r = env.run(&["backup"]);
    r.expect(2);
    assert!(r.stderr().contains("r.txt, line 3"), "{}", r.stderr());
    env.write_config("[encryption]\nrecipients_file = \"/nonexistent/recipients.txt\"\n");
    // `check` catches it ahead of the night's backup.
    let c = env.run(&["check"]);
    c.expect(4);
    assert!(
        c.stdout()
            .contains("✗ encryption: cannot read the recipients file"),
        "{}",
        c.stdout()
    );
    let r = env.run(&["backup"]);
    r.expect(2);
    assert!(
        r.stderr().contains("/nonexistent/recipients.txt"),
        "{}",
        r.stderr()
    );
    // An empty [encryption] and a recipients + passphrase mix are config errors too.
    env.write_config("[encryption]\n");
    env.run(&["backup"]).expect(2);
    env.write_config(&format!(
        "[encryption]\nrecipients = [\"{good}\"]\npassphrase_file = \"/p\"\n"
    ));
    let r = env.run(&["backup"]);
    r.expect(2);
    assert!(r.stderr().contains("not both"), "{}", r.stderr());
    assert!(!env.backups.exists() || env.archives().is_empty());
}

#[test]
fn list_shows_an_encrypted_archive_from_its_name_without_a_key() {
    let mut env = Env::new("pve-node");
    let (key, public) = keygen(&env, "key.txt");
    recipients_config(&mut env, &[&public]);
    let archive = backup(&env);
    let l = env.run(&["list", "--json"]);
    l.expect(0);
    let row = &l.json()[0];
    assert_eq!(row["encrypted"], true);
    assert_eq!(row["host"], "due");
    assert_eq!(row["role"], "pve");
    assert_eq!(row["size"], fs::metadata(&archive).unwrap().len());
    assert!(
        row.get("level").is_none(),
        "no details without a key: {row}"
    );
    // The backup read it back, so the state is known from the record even without a key.
    assert_eq!(row["state"], "ok");
    let table = env.run(&["list"]).stdout();
    assert!(table.contains("zstd, age"), "{table}");
    // With the key: the details from meta.json.
    let l = env.run(&["list", "--json", "-i", key.to_str().unwrap()]);
    assert_eq!(l.json()[0]["level"], 3);
    assert_eq!(l.json()[0]["purpose"], "backup");
    // verify without a key still checks the file against its sidecar, and catches a cut-off file.
    let r = env.run(&["verify"]);
    r.expect(0);
    assert!(
        r.stdout().contains("content was not checked"),
        "{}",
        r.stdout()
    );
    let data = fs::read(&archive).unwrap();
    fs::write(&archive, &data[..data.len() - 10]).unwrap();
    env.run(&["verify"]).expect(6);
}

#[test]
fn key_files_in_collected_paths_or_readable_by_others_are_warned_about() {
    let mut env = Env::new("pve-node");
    // /root/.ssh is collected (category ssh): a key there would travel inside the archives it opens.
    let inside = env.root.join("root/.ssh/proxkeep-identity.txt");
    let r = env.run(&["key", "generate", "--out", inside.to_str().unwrap()]);
    r.expect(3);
    assert!(
        r.stderr().contains("travel with the lock"),
        "{}",
        r.stderr()
    );
    // Encrypting to that key anyway: the backup spots the secret key in the stream and warns (exit 3).
    let inside_public = r.stdout().trim().to_string();
    recipients_config(&mut env, &[&inside_public]);
    let r = env.run(&["backup"]);
    r.expect(3);
    assert!(
        r.stderr().contains(&format!(
            "/root/.ssh/proxkeep-identity.txt: holds the age identity of recipient {inside_public}"
        )),
        "{}",
        r.stderr()
    );
    // root's SSH key as the recipient, while /root/.ssh is collected: the same mistake, said the same way.
    sh_ok(&format!(
        "ssh-keygen -q -t ed25519 -N '' -f '{}'",
        env.root.join("root/.ssh/id_ed25519").display()
    ));
    let ssh_pub = fs::read_to_string(env.root.join("root/.ssh/id_ed25519.pub")).unwrap();
    recipients_config(&mut env, &[ssh_pub.trim()]);
    let r = env.run(&["backup"]);
    r.expect(3);
    assert!(
        r.stderr()
            .contains("/root/.ssh/id_ed25519: is the SSH key of recipient ssh-ed25519"),
        "{}",
        r.stderr()
    );
    // Keys of other recipients in the tree are none of the backup's business: no warning.
    let (key, public) = keygen(&env, "key.txt");
    recipients_config(&mut env, &[&public]);
    env.run(&["backup"]).expect(0);
    // An identity others can read is warned about when used.
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let r = env.run(&["verify", "-i", key.to_str().unwrap()]);
    r.expect(0);
    assert!(r.stderr().contains("mode 0644"), "{}", r.stderr());
    // A passphrase file inside the collected tree: the backup warns (exit 3) and still encrypts.
    let pass = env.root.join("root/.ssh/proxkeep-pass");
    fs::write(&pass, "secret words here\n").unwrap();
    fs::set_permissions(&pass, fs::Permissions::from_mode(0o600)).unwrap();
    env.write_config(&format!(
        "[encryption]\npassphrase_file = \"{}\"\n",
        pass.display()
    ));
    let r = env.run(&["backup"]);
    r.expect(3);
    assert!(
        r.stderr().contains("travels with the lock"),
        "{}",
        r.stderr()
    );
}
