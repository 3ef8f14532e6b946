//! Where objects live — checkpoints, savepoints, an objects connector's files — as one
//! type: a local directory (always absolute) or an S3 bucket and prefix. Every location
//! string is turned into a [`Location`] here, once, against a stated base directory;
//! what is checked and what is opened is then the same value, never a string read again
//! relative to whatever the process's working directory happens to be.
//!
//! Accepted forms: a path (relative ones resolve against the base), `file:///ABSOLUTE`,
//! and `s3://BUCKET[/PREFIX]`. Anything else that looks like a URL — `file:/x`,
//! `file://host/x`, `http://…` — is refused rather than guessed at.

use std::fmt;
use std::path::{Component, Path, PathBuf};

/// A resolved location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A directory on this machine's filesystem (absolute, `.` and `..` folded lexically;
    /// symlinks are left to whoever checks it).
    Local(PathBuf),
    /// A prefix in an S3 bucket.
    S3 {
        /// The bucket's name.
        bucket: String,
        /// The prefix inside it, without leading or trailing `/` (may be empty).
        prefix: String,
    },
}

/// Why a location string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("location '{location}': {reason}")]
pub struct LocationError {
    /// As written.
    pub location: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Location {
    /// Resolve `text` against `base` (the directory relative paths mean).
    pub fn parse(text: &str, base: &Path) -> Result<Location, LocationError> {
        let refuse = |reason: String| LocationError { location: text.to_owned(), reason };
        if text.is_empty() {
            return Err(refuse("empty".into()));
        }
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            check_bucket(bucket).map_err(refuse)?;
            return Ok(Location::S3 { bucket: bucket.to_owned(), prefix: prefix.trim_matches('/').to_owned() });
        }
        let path = if let Some(rest) = text.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(refuse("a file:// URL must name an absolute path on this machine (file:///PATH); a host is not allowed".into()));
            }
            rest
        } else if text.starts_with("file:") {
            return Err(refuse("write a file location as a path or file:///ABSOLUTE_PATH".into()));
        } else if let Some((scheme, _)) = text.split_once("://") {
            return Err(refuse(format!("the scheme {scheme}:// is not supported (a directory, file:///PATH or s3://BUCKET/PREFIX)")));
        } else {
            text
        };
        if path.contains('\0') {
            return Err(refuse("contains a NUL byte".into()));
        }
        Ok(Location::Local(absolute(&base.join(path))))
    }

    /// Resolve `text` against the process's working directory: for locations typed on
    /// a command line (`--checkpoint-dir`, `--restore`), as every command-line tool does.
    pub fn parse_from_cwd(text: &str) -> Result<Location, LocationError> {
        let cwd = std::env::current_dir()
            .map_err(|e| LocationError { location: text.to_owned(), reason: format!("the working directory cannot be read: {e}") })?;
        Location::parse(text, &cwd)
    }

    /// The local directory, if this is one.
    pub fn local(&self) -> Option<&Path> {
        match self {
            Location::Local(p) => Some(p),
            Location::S3 { .. } => None,
        }
    }
}

impl fmt::Display for Location {
    /// The canonical text: an absolute path or `s3://bucket/prefix`; parsing it again
    /// (against any base) gives the same location.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Location::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// S3's bucket naming rules (3–63 characters: lower-case letters, digits, `.` and `-`,
/// starting and ending with a letter or digit), so a name cannot smuggle a host, port or
/// credentials into the request URL.
fn check_bucket(bucket: &str) -> Result<(), String> {
    let ok_chars = bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    let ok_ends =
        bucket.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric()) && bucket.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric());
    if bucket.is_empty() {
        Err("no bucket name".into())
    } else if !(3..=63).contains(&bucket.len()) || !ok_chars || !ok_ends {
        Err(format!("'{bucket}' is not a valid S3 bucket name (3-63 lower-case letters, digits, '.' and '-')"))
    } else {
        Ok(())
    }
}

/// `p` made absolute with `.` and `..` folded lexically (no filesystem access).
fn absolute(p: &Path) -> PathBuf {
    let p = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_against_the_base_and_urls_are_taken_only_when_understood() {
        let base = Path::new("/srv/data/files");
        let local = |t: &str| Location::parse(t, base).expect(t);
        assert_eq!(local("out/x"), Location::Local("/srv/data/files/out/x".into()));
        assert_eq!(local("/abs/dir/"), Location::Local("/abs/dir".into()));
        assert_eq!(local("a/../../b"), Location::Local("/srv/data/b".into()));
        assert_eq!(local("file:///tmp/x"), Location::Local("/tmp/x".into()));
        assert_eq!(local("s3://my-bucket/a/b/"), Location::S3 { bucket: "my-bucket".into(), prefix: "a/b".into() });
        assert_eq!(local("s3://my-bucket").to_string(), "s3://my-bucket");
        for bad in
            ["file:/etc", "file://localhost/etc", "file://etc", "file:etc", "http://x/y", "gs://b/p", "s3://", "s3://A_B/x", "s3://h:80@x/p", ""]
        {
            assert!(Location::parse(bad, base).is_err(), "{bad}");
        }
        let sp = local("s3://bucket.one/p");
        assert_eq!(Location::parse(&sp.to_string(), Path::new("/elsewhere")).expect("again"), sp, "the canonical text parses back");
        let l = local("x");
        assert_eq!(Location::parse(&l.to_string(), Path::new("/elsewhere")).expect("again"), l);
    }
}
