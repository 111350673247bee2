//! Which archive paths hold secrets (passwords, private keys, tokens, cluster auth keys).
//!
//! Output that would show file content (`diff --patch`, `cat` to a terminal) leaves these out unless the admin
//! asks for them with `--show-secrets`. The rule errs on the side of hiding: a public key that looks like a
//! private one (`authkey.pub`) is hidden too, which costs nothing but a flag.

/// Whether `path` (archive path, `etc/pve/priv/shadow.cfg`; a leading `/` is ignored) is secret.
pub fn is_secret(path: &str) -> bool {
    let path = path.trim_start_matches('/').to_ascii_lowercase();
    let components: Vec<&str> = path.split('/').collect();
    let name = components.last().copied().unwrap_or("");
    let dirs = &components[..components.len().saturating_sub(1)];
    // Whole directories of secrets: pmxcfs `priv/` (any depth: `nodes/<n>/priv`), `/etc/ssl/private`.
    if dirs.iter().any(|d| *d == "priv" || *d == "private") {
        return true;
    }
    if path.starts_with("etc/wireguard/") {
        return true; // interface configs carry their PrivateKey inline
    }
    name.ends_with(".key")
        || name.ends_with(".pw")
        || name.starts_with("token")
        || name.contains("shadow")
        || name.starts_with("authkey")
        || name.contains("keyring")
        || name.starts_with("tfa")
        || name.contains("secret")
        // PBS keeps notification endpoint credentials in `notifications-priv.cfg`.
        || name.contains("-priv.")
        // ssh private keys: `ssh_host_ed25519_key`, `~/.ssh/id_rsa` (their `.pub` halves are public).
        || (name.starts_with("ssh_host_") && name.ends_with("_key"))
        || (dirs.last() == Some(&".ssh") && name.starts_with("id_") && !name.ends_with(".pub"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_paths() {
        for p in [
            "etc/pve/priv/authkey.key",
            "etc/pve/priv/shadow.cfg",
            "etc/pve/priv/storage/backup.pw",
            "etc/pve/priv/ceph/ceph-external.keyring",
            "etc/pve/priv/known_hosts",
            "etc/pve/nodes/due/priv/lock",
            "etc/pve/nodes/due/pve-ssl.key",
            "etc/pve/pve-www.key",
            "/etc/shadow",
            "etc/gshadow",
            "etc/shadow-",
            "etc/corosync/authkey",
            "etc/proxmox-backup/token.shadow",
            "etc/proxmox-backup/shadow.json",
            "etc/proxmox-backup/tfa.json",
            "etc/proxmox-backup/proxy.key",
            "etc/proxmox-backup/notifications-priv.cfg",
            "etc/ceph/ceph.client.admin.keyring",
            "etc/ssh/ssh_host_ed25519_key",
            "root/.ssh/id_rsa",
            "etc/ssl/private/ssl-cert-snakeoil.key",
            "etc/wireguard/wg0.conf",
            "etc/pve/sdn/client-secret.json",
        ] {
            assert!(is_secret(p), "{p} should be secret");
        }
        for p in [
            "etc/pve/storage.cfg",
            "etc/pve/user.cfg",
            "etc/pve/nodes/due/pve-ssl.pem",
            "etc/ssh/ssh_host_ed25519_key.pub",
            "root/.ssh/id_rsa.pub",
            "root/.ssh/authorized_keys",
            "etc/passwd",
            "etc/network/interfaces",
            "etc/pve/notifications.cfg",
            "etc/pve/firewall/cluster.fw",
            "etc/privoxy/config",
        ] {
            assert!(!is_secret(p), "{p} should not be secret");
        }
    }
}
