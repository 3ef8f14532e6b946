//! Reading a file a user named — a plugin, a spec, a secret — as what it claims to be: a
//! regular file of bounded size. A device (`/dev/zero`), a pipe or a directory is refused
//! before anything is read (opened without blocking, so a path swapped for a FIFO after
//! the check cannot hang the reader), and the read stops past the limit, so a file that
//! grows meanwhile cannot make it unbounded.

use std::io::Read as _;
use std::path::Path;

/// Why a bounded read failed.
#[derive(Debug, thiserror::Error)]
pub enum BoundedReadError {
    /// Opening, inspecting or reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Not a regular file.
    #[error("not a regular file")]
    NotAFile,
    /// Longer than the limit.
    #[error("larger than {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
}

/// The bytes of `path`, a regular file of at most `limit` bytes.
pub fn read_bounded_file(path: &Path, limit: u64) -> Result<Vec<u8>, BoundedReadError> {
    if !std::fs::metadata(path)?.is_file() {
        return Err(BoundedReadError::NotAFile);
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let file = options.open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(BoundedReadError::NotAFile);
    }
    if meta.len() > limit {
        return Err(BoundedReadError::TooLarge { limit });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(BoundedReadError::TooLarge { limit });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_within_the_limit_are_read() {
        let dir = std::env::temp_dir().join(format!("rivulet-bounded-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let f = dir.join("f");
        std::fs::write(&f, b"12345").expect("write");
        assert_eq!(read_bounded_file(&f, 5).expect("at the limit"), b"12345");
        assert!(matches!(read_bounded_file(&f, 4), Err(BoundedReadError::TooLarge { limit: 4 })));
        assert!(matches!(read_bounded_file(&dir, 100), Err(BoundedReadError::NotAFile)));
        assert!(matches!(read_bounded_file(Path::new("/dev/zero"), 100), Err(BoundedReadError::NotAFile)));
        assert!(matches!(read_bounded_file(&dir.join("missing"), 100), Err(BoundedReadError::Io(_))));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
