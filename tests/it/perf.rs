//! Issue 16 "Backup speed": the read-back sums the decoded stream instead of hashing every entry again, and
//! index.json is serialized as it is written. What must hold whatever the speed: the index lists every entry
//! with its exact hash, byte for byte what serde writes, and the archive verifies.

use crate::util::*;
use std::fs;

/// A few thousand entries (the index is far bigger than one 64 KiB chunk of the serializer): every file's
/// index hash is the SHA-256 of the file, the index is compact JSON in the writer's field order, and a full
/// `verify` (which hashes every entry) agrees with the read-back.
#[test]
fn a_large_index_is_written_whole_and_every_hash_is_the_files() {
    let env = Env::new("pve-node");
    let base = env.root.join("etc/pve/nodes/bulk");
    for d in 0..30 {
        let dir = base.join(format!("d{d:02}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..100 {
            fs::write(
                dir.join(format!("{f:03}.conf")),
                format!("vm {d} {f}\n").repeat(f + 1),
            )
            .unwrap();
        }
    }
    env.run(&["backup"]).expect(0);
    let archive = env.only_archive();
    let tar = format!("tar -xOf '{}' proxkeep/index.json", archive.display());
    let raw = sh_ok(&tar);
    let index: serde_json::Value = serde_json::from_str(&raw).unwrap();
    // Byte for byte compact JSON in the writer's field order, as before it was streamed.
    let compact = "import json,sys; d=sys.stdin.read(); \
                   print(json.dumps(json.loads(d), separators=(',',':'), ensure_ascii=False) == d)";
    assert_eq!(
        sh_ok(&format!("{tar} | python3 -c \"{compact}\"")).trim(),
        "True"
    );
    let entries = index["entries"].as_array().unwrap();
    let mut bulk = 0;
    for e in entries.iter().filter(|e| e["kind"] == "file") {
        let path = e["path"].as_str().unwrap();
        if !path.starts_with("etc/pve/nodes/bulk/") {
            continue;
        }
        bulk += 1;
        let on_disk = sha256_file(&env.root.join(path));
        assert_eq!(e["sha256"].as_str(), Some(on_disk.as_str()), "{path}");
    }
    assert_eq!(bulk, 3000);
    assert_eq!(
        index["totals"]["entries"].as_u64(),
        Some(entries.len() as u64)
    );
    env.run(&["verify", archive.to_str().unwrap()]).expect(0);
}
