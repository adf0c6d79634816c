//! Dataset and snapshot names: `pool`, `pool/fs`, `pool/fs/child`, `pool/fs@snap`.
//! OpenZFS: zfs_namecheck.c. Components use [A-Za-z0-9_.:-]; `%` is reserved for the hidden
//! receive datasets; the whole name is at most ZFS_MAX_DATASET_NAME_LEN bytes.

use crate::error::DslError;
use crate::limits::ZFS_MAX_DATASET_NAME_LEN;

fn component_ok(c: &str) -> bool {
    !c.is_empty()
        && c != "."
        && c != ".."
        && c.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// Check a filesystem name belongs to `pool` and is well formed.
///
/// # Errors
/// `InvalidName`.
pub fn check_fs(pool: &str, name: &str) -> Result<(), DslError> {
    let bad = || DslError::InvalidName(name.to_owned());
    if name.len() > ZFS_MAX_DATASET_NAME_LEN || name.contains('@') {
        return Err(bad());
    }
    let mut parts = name.split('/');
    if parts.next() != Some(pool) {
        return Err(bad());
    }
    if parts.all(component_ok) {
        Ok(())
    } else {
        Err(bad())
    }
}

/// Split `pool/fs@snap` into (`pool/fs`, `snap`), checking both.
///
/// # Errors
/// `InvalidName`.
pub fn split_snapshot<'a>(pool: &str, name: &'a str) -> Result<(&'a str, &'a str), DslError> {
    let bad = || DslError::InvalidName(name.to_owned());
    let (fs, snap) = name.split_once('@').ok_or_else(bad)?;
    if name.len() > ZFS_MAX_DATASET_NAME_LEN || !component_ok(snap) {
        return Err(bad());
    }
    check_fs(pool, fs)?;
    Ok((fs, snap))
}

/// The parent of a filesystem name (None for the pool root).
#[must_use]
pub fn parent(name: &str) -> Option<&str> {
    name.rsplit_once('/').map(|(p, _)| p)
}

/// Check a pool name.
///
/// # Errors
/// `InvalidName`.
pub fn check_pool(name: &str) -> Result<(), DslError> {
    if name.len() > 64 || !component_ok(name) || !name.as_bytes()[0].is_ascii_alphabetic() {
        return Err(DslError::InvalidName(name.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_fs("tank", "tank").is_ok());
        assert!(check_fs("tank", "tank/a/b-c_d.e:f").is_ok());
        assert!(check_fs("tank", "other/a").is_err());
        assert!(check_fs("tank", "tank//a").is_err());
        assert!(check_fs("tank", "tank/a%recv").is_err());
        assert!(check_fs("tank", "tank/a@s").is_err());
        assert_eq!(split_snapshot("tank", "tank/a@s1").expect("ok"), ("tank/a", "s1"));
        assert!(split_snapshot("tank", "tank/a@").is_err());
        assert!(split_snapshot("tank", "tank/a").is_err());
        assert!(split_snapshot("tank", "tank/a@b@c").is_err());
        assert!(check_fs("tank", &format!("tank/{}", "x".repeat(300))).is_err());
        assert!(
            check_pool("tank").is_ok() && check_pool("9tank").is_err() && check_pool("").is_err()
        );
        assert_eq!(parent("tank/a/b"), Some("tank/a"));
        assert_eq!(parent("tank"), None);
    }
}
