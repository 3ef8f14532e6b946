//! What a job sent to the server may touch, as the server's operator decides: files
//! only below the allowed roots (`<data-dir>/files/` and each `--allow-path`), network
//! connections only to `--allow-connect` hosts, and only harmless client properties.
//! Every file path, location, endpoint and property a spec names is checked here before
//! the job is stored; the command line (`rivulet run`, the user's own process) has no
//! such limits.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rivulet_connectors::{Access, Accessed};
use rivulet_job::JobSpec;

use crate::ServerError;

/// A host (and port) connections may go to: `db.example.com:5432`, `kafka-1`
/// (any port), `*.internal:9092` (any subdomain), `10.0.0.5`, `[::1]:9092`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    /// Lower-case host; a leading `*.` matches any subdomain.
    host: String,
    /// The port, or any.
    port: Option<u16>,
}

impl FromStr for HostPattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (h, after) = rest.split_once(']').ok_or_else(|| format!("'{s}': missing ']'"))?;
            (h, after.strip_prefix(':'))
        } else {
            match s.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') => (h, Some(p)),
                _ => (s, None),
            }
        };
        if host.is_empty() || host.contains('/') || host.contains('@') {
            return Err(format!("'{s}' is not HOST[:PORT]"));
        }
        let port = port.map(|p| p.parse::<u16>().map_err(|_| format!("'{s}': '{p}' is not a port"))).transpose()?;
        Ok(HostPattern { host: host.to_ascii_lowercase(), port })
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        match self.port {
            Some(p) => write!(f, "{host}:{p}"),
            None => write!(f, "{host}"),
        }
    }
}

impl HostPattern {
    fn matches(&self, host: &str, port: Option<u16>) -> bool {
        let host = host.to_ascii_lowercase();
        let host_ok = match self.host.strip_prefix("*.") {
            Some(suffix) => host.len() > suffix.len() + 1 && host.ends_with(suffix) && host[..host.len() - suffix.len()].ends_with('.'),
            None => host == self.host,
        };
        // A connection with no port named goes to the client's default port: only a
        // pattern for any port covers it.
        host_ok && (self.port.is_none() || self.port == port)
    }
}

/// What jobs sent to a server may touch.
#[derive(Debug, Clone)]
pub struct AccessPolicy {
    /// `<data-dir>/files`: relative paths resolve here.
    files_dir: PathBuf,
    /// Canonical roots files may be read and written below.
    roots: Vec<PathBuf>,
    /// The server's own checkpoint store: savepoints may also be read from it.
    checkpoints_dir: PathBuf,
    /// Hosts connections may go to.
    connect: Vec<HostPattern>,
}

impl AccessPolicy {
    /// The policy of a server with data in `data_dir`: files below
    /// `<data-dir>/files/` (created) and below each of `allow_paths` (which must exist),
    /// connections to `allow_connect`.
    pub fn new(data_dir: &Path, allow_paths: &[PathBuf], allow_connect: Vec<HostPattern>) -> Result<Self, ServerError> {
        let files_dir = data_dir.join("files");
        std::fs::create_dir_all(&files_dir).map_err(|e| ServerError::Internal(format!("{}: {e}", files_dir.display())))?;
        let canonical = |p: &Path, what: &str| std::fs::canonicalize(p).map_err(|e| ServerError::BadRequest(format!("{what} {}: {e}", p.display())));
        let files_dir = canonical(&files_dir, "the files directory")?;
        let mut roots = vec![files_dir.clone()];
        for p in allow_paths {
            let root = canonical(p, "--allow-path")?;
            if !root.is_dir() {
                return Err(ServerError::BadRequest(format!("--allow-path {}: not a directory", p.display())));
            }
            roots.push(root);
        }
        let checkpoints_dir = data_dir.join("checkpoints");
        std::fs::create_dir_all(&checkpoints_dir).map_err(|e| ServerError::Internal(format!("{}: {e}", checkpoints_dir.display())))?;
        let checkpoints_dir = canonical(&checkpoints_dir, "the checkpoints directory")?;
        Ok(AccessPolicy { files_dir, roots, checkpoints_dir, connect: allow_connect })
    }

    /// Where relative paths of a job's spec resolve.
    pub fn files_dir(&self) -> &Path {
        &self.files_dir
    }

    /// Check everything `spec` touches, and the savepoint it starts from; the first
    /// thing not allowed is a `BadRequest` naming the field, the value and what is
    /// allowed.
    pub fn check(&self, spec: &JobSpec, savepoint: Option<&str>) -> Result<(), ServerError> {
        let mut all = rivulet_connectors::accesses(spec);
        if let Some(dir) = spec.checkpoint.as_ref().and_then(|c| c.dir.as_ref()) {
            all.push(Accessed { at: "checkpoint.dir".into(), access: Access::Location { url: dir.clone(), writes: true } });
        }
        for a in &all {
            self.check_one(a).map_err(|why| ServerError::BadRequest(format!("{}: {why}", a.at)))?;
        }
        if let Some(sp) = savepoint {
            self.check_savepoint(sp).map_err(|why| ServerError::BadRequest(format!("savepoint: {why}")))?;
        }
        Ok(())
    }

    fn check_one(&self, a: &Accessed) -> Result<(), String> {
        match &a.access {
            Access::ReadFile(p) => self.readable_file(p, &self.roots).map(drop),
            Access::WriteDir(p) => self.writable_dir(p).map(drop),
            Access::Location { url, writes } => self.location(url, *writes, &self.roots),
            Access::Connect { host, port } => {
                if self.connect.iter().any(|pat| pat.matches(host, *port)) {
                    return Ok(());
                }
                let target = match port {
                    Some(p) => format!("{host}:{p}"),
                    None => host.clone(),
                };
                Err(format!(
                    "connecting to {target} is not allowed (allowed: {}; the server's --allow-connect HOST[:PORT] adds one)",
                    self.allowed_hosts()
                ))
            }
            Access::UncheckableEndpoint(why) => {
                Err(format!("{why}: a job sent to the server may connect only to hosts it names, checked against --allow-connect"))
            }
            Access::ClientProperty { key, safe } => {
                if *safe {
                    Ok(())
                } else {
                    Err(format!(
                        "the client property '{key}' is not allowed in a job sent to the server (security, timeout, batching and compression settings are)"
                    ))
                }
            }
        }
    }

    fn check_savepoint(&self, location: &str) -> Result<(), String> {
        let mut roots = self.roots.clone();
        roots.push(self.checkpoints_dir.clone());
        self.location(location, false, &roots)
    }

    /// A location of objects: S3 (whose endpoint and credentials the server's
    /// environment sets) or a directory below the roots.
    fn location(&self, url: &str, writes: bool, roots: &[PathBuf]) -> Result<(), String> {
        if url.starts_with("s3://") {
            return Ok(());
        }
        let path = match url.split_once("://") {
            Some(("file", rest)) => rest,
            Some((scheme, _)) => {
                return Err(format!("'{url}': the scheme {scheme}:// is not allowed (use a directory below the allowed roots or s3://)"));
            }
            None => url,
        };
        if writes {
            self.writable_dir(path).map(drop)
        } else {
            let p = self.canonical_existing(path)?;
            self.within(path, &p, roots)
        }
    }

    /// A regular file below `roots`, symlinks and `..` resolved.
    fn readable_file(&self, p: &str, roots: &[PathBuf]) -> Result<PathBuf, String> {
        let canonical = self.canonical_existing(p)?;
        let meta = std::fs::metadata(&canonical).map_err(|e| format!("{p}: {e}"))?;
        if !meta.is_file() {
            return Err(format!("{p} is not a regular file"));
        }
        self.within(p, &canonical, roots)?;
        Ok(canonical)
    }

    /// Where the sinks of `spec` write, each with its field: local directories resolved
    /// (symlinks, `..`), object-store URLs as written. Two jobs writing overlapping
    /// locations would clear and commit over each other.
    pub fn written_locations(&self, spec: &JobSpec) -> Vec<(String, String)> {
        rivulet_connectors::accesses(spec)
            .into_iter()
            .filter_map(|a| {
                let local = match &a.access {
                    Access::WriteDir(p) => p.as_str(),
                    Access::Location { url, writes: true } => match url.split_once("://") {
                        Some(("file", rest)) => rest,
                        Some(_) => return Some((a.at, url.trim_end_matches('/').to_owned())),
                        None => url.as_str(),
                    },
                    _ => return None,
                };
                Some((a.at, self.resolve_for_write(local).ok()?.display().to_string()))
            })
            .collect()
    }

    /// A directory (existing or to be created) below the roots.
    fn writable_dir(&self, p: &str) -> Result<PathBuf, String> {
        let canonical = self.resolve_for_write(p)?;
        self.within(p, &canonical, &self.roots)?;
        Ok(canonical)
    }

    /// A directory (existing or to be created): its deepest existing ancestor is
    /// resolved (symlinks, `..`); the names after it are plain names.
    fn resolve_for_write(&self, p: &str) -> Result<PathBuf, String> {
        let path = self.resolve(p);
        let mut existing = path.as_path();
        let mut rest = Vec::new();
        // A dangling symlink counts as existing: resolving it fails below.
        while existing.symlink_metadata().is_err() {
            let name = existing.file_name().ok_or_else(|| format!("{p}: no existing ancestor"))?;
            rest.push(name.to_owned());
            existing = existing.parent().ok_or_else(|| format!("{p}: no existing ancestor"))?;
        }
        let mut canonical = std::fs::canonicalize(existing).map_err(|e| format!("{p}: {e}"))?;
        if rest.is_empty() && !canonical.is_dir() {
            return Err(format!("{p} exists and is not a directory"));
        }
        for name in rest.iter().rev() {
            canonical.push(name);
        }
        Ok(canonical)
    }

    fn canonical_existing(&self, p: &str) -> Result<PathBuf, String> {
        std::fs::canonicalize(self.resolve(p)).map_err(|e| format!("{p}: {e}"))
    }

    fn resolve(&self, p: &str) -> PathBuf {
        rivulet_job::resolve_path(&self.files_dir, p)
    }

    fn within(&self, p: &str, canonical: &Path, roots: &[PathBuf]) -> Result<(), String> {
        if roots.iter().any(|r| canonical.starts_with(r)) {
            return Ok(());
        }
        let roots: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
        let shown = if Path::new(p) == canonical { p.to_owned() } else { format!("{p} (that is {})", canonical.display()) };
        Err(format!("{shown} is outside the allowed roots ({}); the server's --allow-path DIR adds one", roots.join(", ")))
    }

    fn allowed_hosts(&self) -> String {
        if self.connect.is_empty() { "none".into() } else { self.connect.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ") }
    }
}

/// Whether two written locations overlap: the same, or one inside the other.
pub fn overlaps(a: &str, b: &str) -> bool {
    let inside = |x: &str, y: &str| x.strip_prefix(y).is_some_and(|rest| rest.starts_with('/'));
    a == b || inside(a, b) || inside(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(sources: &str, sinks: &str) -> JobSpec {
        let yaml = format!("name: j\nsources:\n{sources}sinks:\n{sinks}");
        JobSpec::parse(&yaml, "t", &rivulet_job::Params::default()).expect("spec")
    }

    fn policy(data: &Path, allow: &[PathBuf], connect: &[&str]) -> AccessPolicy {
        AccessPolicy::new(data, allow, connect.iter().map(|c| c.parse().expect("pattern")).collect()).expect("policy")
    }

    #[test]
    fn files_only_below_the_roots_symlinks_and_dotdot_resolved() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let extra = dir.path().join("extra");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&extra).expect("mkdir");
        std::fs::create_dir_all(&outside).expect("mkdir");
        std::fs::write(outside.join("secret"), "s").expect("write");
        let p = policy(&data, std::slice::from_ref(&extra), &[]);
        std::fs::write(p.files_dir().join("in.jsonl"), "{}\n").expect("write");
        std::fs::write(extra.join("in.jsonl"), "{}\n").expect("write");
        #[cfg(unix)]
        std::os::unix::fs::symlink(outside.join("secret"), p.files_dir().join("link")).expect("symlink");
        let read =
            |path: &str| spec(&format!("  - {{id: s, type: file, path: '{path}', format: text}}\n"), "  - {id: o, type: stdout, inputs: [s]}\n");
        let write =
            |path: &str| spec("  - {id: g, type: generator, count: 1}\n", &format!("  - {{id: o, type: file, path: '{path}', inputs: [g]}}\n"));

        assert!(p.check(&read("in.jsonl"), None).is_ok(), "relative: below <data-dir>/files");
        assert!(p.check(&read(&extra.join("in.jsonl").display().to_string()), None).is_ok(), "an --allow-path root");
        for bad in ["/etc/passwd", "../../outside/secret", "link", "/dev/zero", "missing.jsonl"] {
            let e = p.check(&read(bad), None).expect_err(bad).to_string();
            assert!(e.contains("sources[0] (id 's').path") && e.contains(bad), "{bad}: {e}");
        }
        let e = p.check(&read("/etc/passwd"), None).expect_err("outside").to_string();
        assert!(e.contains("outside the allowed roots") && e.contains(&p.files_dir().display().to_string()), "{e}");
        let e = p.check(&read("/dev/zero"), None).expect_err("device").to_string();
        assert!(e.contains("not a regular file"), "{e}");

        assert!(p.check(&write("out/new/deeper"), None).is_ok(), "a new directory below the files dir");
        assert!(p.check(&write(&extra.join("out").display().to_string()), None).is_ok());
        for bad in ["/etc", "/tmp/anywhere", "new/../../../outside", "link"] {
            let e = p.check(&write(bad), None).expect_err(bad).to_string();
            assert!(e.contains("sinks[0] (id 'o').path"), "{bad}: {e}");
        }
        let mut ck = write("out");
        ck.checkpoint = Some(rivulet_job::CheckpointSpec { dir: Some(outside.display().to_string()), ..Default::default() });
        assert!(p.check(&ck, None).expect_err("checkpoint dir").to_string().contains("checkpoint.dir"));
        let e = p.check(&write("out"), Some(&outside.display().to_string())).expect_err("savepoint outside").to_string();
        assert!(e.starts_with("bad request: savepoint:") || e.contains("savepoint:"), "{e}");
        assert!(p.check(&write("out"), Some("s3://bucket/sp")).is_ok());
    }

    #[test]
    fn connections_only_to_allowed_hosts_and_only_safe_properties() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = policy(dir.path(), &[], &["kafka.internal:9092", "*.db.example", "[::1]:5432"]);
        let kafka = |servers: &str, props: &str| {
            spec(
                &format!("  - {{id: k, type: kafka, bootstrap_servers: '{servers}', topic: t{props}}}\n"),
                "  - {id: o, type: stdout, inputs: [k]}\n",
            )
        };
        let pg = |url: &str| {
            spec(
                "  - {id: g, type: generator, count: 1}\n",
                &format!("  - {{id: p, type: postgres, url: '{url}', table: t, key: [k], inputs: [g]}}\n"),
            )
        };
        assert!(p.check(&kafka("kafka.internal:9092", ", properties: {linger.ms: '5', security.protocol: SASL_SSL}"), None).is_ok());
        let e = p.check(&kafka("kafka.internal:9093", ""), None).expect_err("port").to_string();
        assert!(e.contains("connecting to kafka.internal:9093 is not allowed") && e.contains("kafka.internal:9092"), "{e}");
        for prop in ["plugin.library.paths", "sasl.kerberos.kinit.cmd", "ssl.key.location", "bootstrap.servers"] {
            let e = p.check(&kafka("kafka.internal:9092", &format!(", properties: {{{prop}: x}}")), None).expect_err(prop).to_string();
            assert!(e.contains(&format!("'{prop}' is not allowed")), "{e}");
        }
        assert!(p.check(&pg("postgres://u@a.db.example:6000/d"), None).is_ok(), "any subdomain, any port");
        assert!(p.check(&pg("postgres://u@db.example/d"), None).is_err(), "the parent domain is not a subdomain");
        assert!(p.check(&pg("postgres://u@[::1]:5432/d"), None).is_ok());
        assert!(p.check(&pg("postgres://u@127.0.0.1:22/d"), None).is_err());
        let e = p.check(&pg("host=/var/run/postgresql user=u"), None).expect_err("socket").to_string();
        assert!(e.contains("Unix socket"), "{e}");
        assert!(overlaps("/a/b", "/a/b") && overlaps("/a/b/c", "/a/b") && overlaps("s3://x/p", "s3://x/p/q"));
        assert!(!overlaps("/a/bc", "/a/b") && !overlaps("s3://x/p", "s3://x/q"));
        let none = policy(&dir.path().join("d2"), &[], &[]);
        let e = none.check(&kafka("localhost:9092", ""), None).expect_err("none allowed").to_string();
        assert!(e.contains("allowed: none"), "{e}");
    }
}
