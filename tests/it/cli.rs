//! `check`, `catalog` and `config show`.

use crate::util::*;

#[test]
fn catalog_lists_categories_and_what_this_host_has() {
    let env = Env::new("pve-node");
    let r = env.run(&["catalog"]);
    r.expect(0);
    let out = r.stdout();
    for cat in [
        "pve-cluster",
        "corosync",
        "pbs-config",
        "network",
        "storage-stack",
        "root-home",
        "inventory",
    ] {
        assert!(out.contains(cat), "{cat} missing:\n{out}");
    }
    assert!(out.contains("not collected on a pve host"), "{out}");
    let j = env.run(&["catalog", "--json"]).json();
    assert_eq!(j["role"], "pve");
    let cats = j["categories"].as_array().unwrap();
    let pve = cats.iter().find(|c| c["name"] == "pve-cluster").unwrap();
    assert_eq!(pve["active"], true);
    assert!(pve["found"]["files"].as_u64().unwrap() > 100);
    let pbs = cats.iter().find(|c| c["name"] == "pbs-config").unwrap();
    assert_eq!(pbs["active"], false);
}

#[test]
fn config_show_prints_the_effective_config() {
    let env = Env::new("");
    let r = env.run(&["config", "show"]);
    r.expect(0);
    let out = r.stdout();
    assert!(out.contains(&env.backups.display().to_string()), "{out}");
    assert!(
        out.contains("algorithm = \"zstd\"") && out.contains("level = 3"),
        "{out}"
    );
    // A missing explicit config is an error (exit 2).
    let r = Run(std::process::Command::new(bin())
        .args(["--config", "/nonexistent/proxkeep.toml", "config", "show"])
        .output()
        .unwrap());
    r.expect(2);
}

#[test]
fn check_prints_a_line_per_check_and_fails_with_4() {
    let env = Env::new("pve-node");
    make_config_db(&env.root);
    let r = env.run(&["check"]);
    r.expect(0);
    let out = r.stdout();
    assert!(
        out.contains("✓ backup directory") && out.contains("✓ lock") && out.contains("✓ config.db"),
        "{out}"
    );
    // pmxcfs down: /etc/pve empty → ✗ with the fix.
    std::fs::rename(env.root.join("etc/pve"), env.path("pve-away")).unwrap();
    std::fs::create_dir(env.root.join("etc/pve")).unwrap();
    let r = env.run(&["check"]);
    r.expect(4);
    assert!(
        r.stdout().contains("✗ /etc/pve") && r.stdout().contains("systemctl start pve-cluster"),
        "{}",
        r.stdout()
    );
}
