//! Names under a restore target: the entry rules (shared with `verify`, in `archive::rules`) and
//! `--map-node`.

pub use crate::archive::rules::{Checker, Hostile, ancestors, normalize, show, split};
use std::borrow::Cow;

/// A single path component usable as a node name (`--map-node`).
fn check_node_name(name: &str) -> Result<(), String> {
    crate::pmxcfs::check_component(name).map_err(|_| format!("invalid node name {name:?}"))
}

const NODES: &[u8] = b"etc/pve/nodes/";

/// `--map-node OLD=NEW`: entries under `etc/pve/nodes/OLD` go to `etc/pve/nodes/NEW`, for a host reinstalled
/// under another name (guest configs are keyed by node name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeMap {
    pub old: String,
    pub new: String,
}

impl NodeMap {
    pub fn parse(spec: &str) -> Result<NodeMap, String> {
        let (old, new) = spec
            .split_once('=')
            .ok_or_else(|| format!("--map-node {spec:?}: expected OLD=NEW (node names)"))?;
        check_node_name(old)?;
        check_node_name(new)?;
        Ok(NodeMap {
            old: old.into(),
            new: new.into(),
        })
    }

    /// `p` with its leading `dir` components (`etc/pve/nodes/` + the node name, with `prefix` in front) moved
    /// from the old node to the new one; `None` when `p` is not in the old node's directory.
    fn moved(&self, p: &[u8], prefix: &[u8], dir: &[u8]) -> Option<Vec<u8>> {
        let rest = p.strip_prefix([prefix, dir, self.old.as_bytes()].concat().as_slice())?;
        (rest.is_empty() || rest[0] == b'/')
            .then(|| [prefix, dir, self.new.as_bytes(), rest].concat())
    }

    pub fn path<'a>(&self, p: &'a [u8]) -> Cow<'a, [u8]> {
        self.moved(p, b"", NODES)
            .map_or(Cow::Borrowed(p), Cow::Owned)
    }

    /// Map a symlink's target: pmxcfs' links in `etc/pve` (`local` → `nodes/OLD`, `qemu-server` →
    /// `nodes/OLD/qemu-server`) and absolute links into `/etc/pve/nodes/OLD`.
    pub fn link<'a>(&self, link_path: &[u8], target: &'a [u8]) -> Cow<'a, [u8]> {
        let in_etc_pve = split(link_path).0 == b"etc/pve";
        let rel = in_etc_pve
            .then(|| self.moved(target, b"", b"nodes/"))
            .flatten();
        rel.or_else(|| self.moved(target, b"/", NODES))
            .map_or(Cow::Borrowed(target), Cow::Owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_map() {
        assert!(NodeMap::parse("due").is_err());
        assert!(NodeMap::parse("due=../x").is_err());
        assert!(NodeMap::parse("=x").is_err());
        let m = NodeMap::parse("due=quattro").unwrap();
        assert_eq!(&*m.path(b"etc/pve/nodes/due"), b"etc/pve/nodes/quattro");
        assert_eq!(
            &*m.path(b"etc/pve/nodes/due/qemu-server/100.conf"),
            b"etc/pve/nodes/quattro/qemu-server/100.conf"
        );
        assert_eq!(
            &*m.path(b"etc/pve/nodes/duex/config"),
            b"etc/pve/nodes/duex/config"
        );
        assert_eq!(
            &*m.path(b"etc/pve/nodes/uno/config"),
            b"etc/pve/nodes/uno/config"
        );
        assert_eq!(&*m.path(b"etc/nodes/due"), b"etc/nodes/due");
        assert_eq!(&*m.link(b"etc/pve/local", b"nodes/due"), b"nodes/quattro");
        assert_eq!(
            &*m.link(b"etc/pve/qemu-server", b"nodes/due/qemu-server"),
            b"nodes/quattro/qemu-server"
        );
        assert_eq!(&*m.link(b"etc/pve/local", b"nodes/duex"), b"nodes/duex");
        assert_eq!(&*m.link(b"etc/other/local", b"nodes/due"), b"nodes/due");
        assert_eq!(
            &*m.link(b"root/x", b"/etc/pve/nodes/due/priv"),
            b"/etc/pve/nodes/quattro/priv"
        );
    }
}
