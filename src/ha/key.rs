//! The shared secret of an HA pair (`[ha] sync_key_file`) and the keyed
//! MAC it makes: HMAC-SHA256 over the whole datagram, truncated to its
//! first [`MAC_LEN`] bytes (RFC 2104, truncation as RFC 4868 allows).
//!
//! Why a file and these checks: the key must not sit in the config file
//! (which is shared, logged and diffed), and a key that others can read
//! or that is too short to resist guessing is worse than none because it
//! looks safe. [`SyncKey::load`] refuses both, and a missing or unreadable
//! file, with a message the config validation prefixes with the field.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use std::path::Path;

/// Bytes of the MAC at the end of every datagram.
pub const MAC_LEN: usize = 16;
/// The shortest key accepted, in bytes (after trimming whitespace).
pub const MIN_KEY_LEN: usize = 16;
/// The largest key file read.
pub const MAX_KEY_FILE_LEN: u64 = 4096;

/// A loaded key, ready to sign and verify datagrams. Its `Debug` never
/// shows the key.
#[derive(Clone)]
pub struct SyncKey {
    bytes: Vec<u8>,
    keyed: Hmac<Sha256>,
}

impl SyncKey {
    /// A key from its bytes; `None` when shorter than [`MIN_KEY_LEN`].
    pub fn new(bytes: &[u8]) -> Option<SyncKey> {
        if bytes.len() < MIN_KEY_LEN {
            return None;
        }
        let keyed = Hmac::<Sha256>::new_from_slice(bytes).ok()?;
        Some(SyncKey {
            bytes: bytes.to_vec(),
            keyed,
        })
    }

    /// Reads the key file: a regular file, no access for group or others
    /// (mode 600 or stricter), at most [`MAX_KEY_FILE_LEN`] bytes, whose
    /// content with leading and trailing whitespace removed is the key
    /// (used as bytes, not decoded), at least [`MIN_KEY_LEN`] of them.
    pub fn load(path: &Path) -> Result<SyncKey, String> {
        use std::io::Read;
        use std::os::unix::fs::PermissionsExt;
        let shown = path.display();
        let meta = std::fs::metadata(path).map_err(|e| format!("{shown}: {e}"))?;
        if !meta.is_file() {
            return Err(format!("{shown} is not a regular file"));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "{shown} is accessible to group or others (mode {mode:03o}): the key must be \
                 readable by its owner only (chmod 600 {shown})"
            ));
        }
        if meta.len() > MAX_KEY_FILE_LEN {
            return Err(format!(
                "{shown} is {} bytes, more than the {MAX_KEY_FILE_LEN} a key file may hold",
                meta.len()
            ));
        }
        let mut raw = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_KEY_FILE_LEN).read_to_end(&mut raw))
            .map_err(|e| format!("{shown}: {e}"))?;
        let key = raw.trim_ascii();
        SyncKey::new(key).ok_or_else(|| {
            format!(
                "{shown} holds a {}-byte key, shorter than {MIN_KEY_LEN} bytes; generate one \
                 with `openssl rand -hex 32 > {shown}`",
                key.len()
            )
        })
    }

    /// The MAC of `data`.
    pub fn mac(&self, data: &[u8]) -> [u8; MAC_LEN] {
        let mut m = self.keyed.clone();
        m.update(data);
        let full = m.finalize().into_bytes();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }

    /// True when `tag` is the MAC of `data` (compared in constant time).
    pub fn verify(&self, data: &[u8], tag: &[u8]) -> bool {
        if tag.len() != MAC_LEN {
            return false;
        }
        let mut m = self.keyed.clone();
        m.update(data);
        m.verify_truncated_left(tag).is_ok()
    }
}

impl PartialEq for SyncKey {
    fn eq(&self, other: &SyncKey) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for SyncKey {}

impl fmt::Debug for SyncKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SyncKey({} bytes, redacted)", self.bytes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn key_file(name: &str, content: &[u8], mode: u32) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("rvs-key-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("sync.key");
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn a_private_key_file_loads_trimmed() {
        let p = key_file("ok", b"  0123456789abcdef0123\n", 0o600);
        let k = SyncKey::load(&p).unwrap();
        assert_eq!(k, SyncKey::new(b"0123456789abcdef0123").unwrap());
    }

    #[test]
    fn a_key_readable_by_others_is_refused() {
        let p = key_file("open", b"0123456789abcdef0123", 0o644);
        let e = SyncKey::load(&p).unwrap_err();
        assert!(e.contains("mode 644") && e.contains("chmod 600"), "{e}");
    }

    #[test]
    fn a_short_key_is_refused() {
        let p = key_file("short", b"tooshort\n", 0o600);
        let e = SyncKey::load(&p).unwrap_err();
        assert!(
            e.contains("8-byte key") && e.contains("openssl rand"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_key_file_is_refused() {
        let e = SyncKey::load(Path::new("/nonexistent/rvs/sync.key")).unwrap_err();
        assert!(e.contains("/nonexistent/rvs/sync.key"), "{e}");
    }

    #[test]
    fn a_directory_is_not_a_key_file() {
        let p = key_file("dir", b"0123456789abcdef", 0o600);
        let dir = p.parent().unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(SyncKey::load(dir)
            .unwrap_err()
            .contains("not a regular file"));
    }

    #[test]
    fn macs_verify_only_with_the_same_key_and_data() {
        let k = SyncKey::new(b"0123456789abcdef").unwrap();
        let other = SyncKey::new(b"0123456789abcdeX").unwrap();
        let tag = k.mac(b"datagram");
        assert!(k.verify(b"datagram", &tag));
        assert!(!k.verify(b"datagraM", &tag));
        assert!(!other.verify(b"datagram", &tag));
        assert!(!k.verify(b"datagram", &tag[..MAC_LEN - 1]));
    }

    #[test]
    fn the_debug_form_hides_the_key() {
        let k = SyncKey::new(b"secret-secret-secret").unwrap();
        assert!(!format!("{k:?}").contains("secret"));
    }
}
