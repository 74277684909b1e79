//! Reading the configuration file with bounds.
//!
//! Why not `fs::read_to_string`: given a FIFO it blocks until a writer
//! comes (rvsd, `--check` and a reload all hang), and given `/dev/zero` or
//! a character device it reads until memory runs out. So the file is
//! opened without blocking (`O_NONBLOCK`, which changes nothing for a
//! regular file), checked to be a regular file on the descriptor that was
//! opened (no window for a swap between a check and the open), and read to
//! at most `MAX_CONFIG_BYTES` and one byte more, which tells a file at the
//! cap from one beyond it.

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The largest configuration file rvs reads: 16 MiB, far beyond any real
/// one (65,535 real servers take about 3 MiB of TOML).
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// The text of the regular file at `path`, at most `cap` bytes of UTF-8.
/// The error says what is wrong (not the path: the caller names it).
pub fn read_bounded(path: &Path, cap: u64) -> Result<String, String> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot read the configuration file: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read the configuration file: {e}"))?;
    if !meta.file_type().is_file() {
        return Err(format!(
            "the configuration file must be a regular file, not {}",
            kind_name(&meta.file_type())
        ));
    }
    if meta.len() > cap {
        return Err(too_big(cap));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the configuration file: {e}"))?;
    // The file may have grown since the fstat.
    if bytes.len() as u64 > cap {
        return Err(too_big(cap));
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "the configuration file is not UTF-8 text (byte {})",
            e.utf8_error().valid_up_to()
        )
    })
}

fn too_big(cap: u64) -> String {
    format!(
        "the configuration file is larger than the {cap}-byte cap ({} MiB)",
        cap >> 20
    )
}

/// What kind of file `t` is, for an error that refuses it (the config
/// reader's, the control socket's path check).
pub(crate) fn kind_name(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_file() {
        "a regular file"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn temp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("rvs-file-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_regular_file_is_read_whole() {
        let dir = temp("regular");
        let path = dir.join("c.toml");
        std::fs::write(&path, "[dpdk]\n").unwrap();
        assert_eq!(read_bounded(&path, 100).unwrap(), "[dpdk]\n");
    }

    #[test]
    fn a_file_exactly_at_the_cap_is_read() {
        let dir = temp("at-cap");
        let path = dir.join("c.toml");
        std::fs::write(&path, "x".repeat(64)).unwrap();
        assert_eq!(read_bounded(&path, 64).unwrap().len(), 64);
    }

    #[test]
    fn a_file_beyond_the_cap_is_refused_with_the_cap() {
        let dir = temp("over-cap");
        let path = dir.join("c.toml");
        std::fs::write(&path, "x".repeat(65)).unwrap();
        let e = read_bounded(&path, 64).unwrap_err();
        assert!(e.contains("64-byte cap"), "{e}");
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = temp("fifo");
        let path = dir.join("c.toml");
        // A FIFO with no writer: a blocking open would wait for ever.
        let made = std::process::Command::new("mkfifo").arg(&path).status();
        assert!(made.unwrap().success());
        let t = Instant::now();
        let e = read_bounded(&path, MAX_CONFIG_BYTES).unwrap_err();
        assert!(e.contains("not a FIFO"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn dev_zero_is_refused_as_a_character_device() {
        let e = read_bounded(Path::new("/dev/zero"), MAX_CONFIG_BYTES).unwrap_err();
        assert!(e.contains("not a character device"), "{e}");
    }

    #[test]
    fn a_directory_is_refused() {
        let dir = temp("dir");
        let e = read_bounded(&dir, MAX_CONFIG_BYTES).unwrap_err();
        assert!(e.contains("not a directory"), "{e}");
    }

    #[test]
    fn a_missing_file_says_it_cannot_be_read() {
        let e = read_bounded(Path::new("/nonexistent/rvs.toml"), 10).unwrap_err();
        assert!(e.contains("cannot read"), "{e}");
    }

    #[test]
    fn bytes_that_are_not_utf8_are_refused() {
        let dir = temp("utf8");
        let path = dir.join("c.toml");
        std::fs::write(&path, b"ab\xffcd").unwrap();
        let e = read_bounded(&path, 10).unwrap_err();
        assert!(e.contains("not UTF-8"), "{e}");
    }
}
