//! What a job sent to the server may touch, as the server's operator decides: files
//! only below the allowed roots (`<data-dir>/files/` and each `--allow-path`), network
//! connections only to `--allow-connect` hosts, and only harmless client properties.
//! Every file path, location, endpoint and property a spec names is checked here before
//! the job is stored; the command line (`rivulet run`, the user's own process) has no
//! such limits.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rivulet_checkpoint::Location;
use rivulet_connectors::{Access, Accessed, Place};
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

/// The prefix of the environment variables a job sent to the server may read secrets
/// from (`${env:RIVULET_SECRET_…}`): the server's own variables (AWS keys among them)
/// stay its own.
pub const SECRET_ENV_PREFIX: &str = "RIVULET_SECRET_";

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
    /// S3 buckets jobs may read and write (none by default).
    buckets: Vec<BucketPattern>,
}

/// An S3 bucket jobs may use: a name, or a prefix of names ending in `*` (`logs-*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketPattern(String);

impl FromStr for BucketPattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let name = s.trim();
        let stem = name.strip_suffix('*').unwrap_or(name);
        if stem.is_empty() && name != "*" || stem.contains('*') || stem.contains('/') {
            return Err(format!("'{s}' is not a bucket name or NAME-PREFIX*"));
        }
        Ok(BucketPattern(name.to_owned()))
    }
}

impl fmt::Display for BucketPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl BucketPattern {
    fn matches(&self, bucket: &str) -> bool {
        match self.0.strip_suffix('*') {
            Some(stem) => bucket.starts_with(stem),
            None => bucket == self.0,
        }
    }
}

/// The host and port an S3 request for `bucket` goes to, from the process's environment
/// as the S3 client reads it: `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT`), else AWS's regional
/// endpoint; the bucket is part of the host name with virtual-hosted-style requests.
fn s3_endpoint(bucket: &str) -> Result<(String, u16), String> {
    let virtual_hosted = std::env::var("AWS_VIRTUAL_HOSTED_STYLE_REQUEST").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
    let (host, port) = match std::env::var("AWS_ENDPOINT_URL").or_else(|_| std::env::var("AWS_ENDPOINT")) {
        Ok(url) => {
            let (rest, default_port) = if let Some(r) = url.strip_prefix("https://") {
                (r, 443)
            } else if let Some(r) = url.strip_prefix("http://") {
                (r, 80)
            } else {
                return Err(format!("the server's S3 endpoint '{url}' is not an http(s) URL"));
            };
            let authority = rest.split('/').next().unwrap_or_default();
            let pattern: HostPattern = authority.parse().map_err(|e| format!("the server's S3 endpoint: {e}"))?;
            (pattern.host, pattern.port.unwrap_or(default_port))
        }
        Err(_) => {
            let region = std::env::var("AWS_REGION").or_else(|_| std::env::var("AWS_DEFAULT_REGION")).unwrap_or_else(|_| "us-east-1".into());
            (format!("s3.{region}.amazonaws.com"), 443)
        }
    };
    Ok(if virtual_hosted { (format!("{bucket}.{host}"), port) } else { (host, port) })
}

impl AccessPolicy {
    /// The policy of a server with data in `data_dir`: files below
    /// `<data-dir>/files/` (created) and below each of `allow_paths` (which must exist),
    /// connections to `allow_connect`, no S3 bucket (see [`AccessPolicy::with_buckets`]).
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
        Ok(AccessPolicy { files_dir, roots, checkpoints_dir, connect: allow_connect, buckets: Vec::new() })
    }

    /// The same policy allowing the S3 buckets `buckets` (whose endpoint must also be
    /// allowed to connect to).
    pub fn with_buckets(mut self, buckets: Vec<BucketPattern>) -> Self {
        self.buckets = buckets;
        self
    }

    /// Where relative paths of a job's spec resolve.
    pub fn files_dir(&self) -> &Path {
        &self.files_dir
    }

    /// Check everything `spec` touches, and the savepoint it starts from, and resolve
    /// every place it names — once, here: the returned spec has each file, directory and
    /// objects location replaced by the absolute path (symlinks and `..` resolved) or
    /// canonical `s3://` location that was checked, and the savepoint likewise, so what
    /// runs opens exactly what was allowed, whatever the server's working directory. The
    /// first thing not allowed is a `BadRequest` naming the field, the value and what is
    /// allowed.
    pub fn admit(&self, spec: &JobSpec, savepoint: Option<&str>) -> Result<(JobSpec, Option<String>), ServerError> {
        let mut resolved = spec.clone();
        for field in rivulet_connectors::places_mut(&mut resolved) {
            let canonical =
                self.place(field.place, field.value, &self.roots).map_err(|why| ServerError::BadRequest(format!("{}: {why}", field.at)))?;
            *field.value = canonical;
        }
        if let Some(dir) = resolved.checkpoint.as_mut().and_then(|c| c.dir.as_mut()) {
            *dir = self
                .place(Place::Objects { writes: true }, dir, &self.roots)
                .map_err(|why| ServerError::BadRequest(format!("checkpoint.dir: {why}")))?;
        }
        for a in rivulet_connectors::connections(&resolved).into_iter().chain(rivulet_connectors::secret_accesses(&resolved)) {
            self.check_one(&a).map_err(|why| ServerError::BadRequest(format!("{}: {why}", a.at)))?;
        }
        let savepoint =
            savepoint.map(|sp| self.check_savepoint(sp).map_err(|why| ServerError::BadRequest(format!("savepoint: {why}")))).transpose()?;
        Ok((resolved, savepoint))
    }

    /// A place resolved and checked: its canonical text.
    fn place(&self, place: Place, value: &str, roots: &[PathBuf]) -> Result<String, String> {
        let path = match place {
            Place::ReadFile => self.readable_file(value, roots)?,
            Place::WriteDir => self.writable_dir(value)?,
            Place::Objects { writes } => return self.location(value, writes, roots),
        };
        path.into_os_string().into_string().map_err(|p| format!("{} is not UTF-8", Path::new(&p).display()))
    }

    fn check_one(&self, a: &Accessed) -> Result<(), String> {
        match &a.access {
            Access::ReadFile(p) => self.readable_file(p, &self.roots).map(drop),
            Access::ReadEnv { name } => {
                if name.starts_with(SECRET_ENV_PREFIX) {
                    Ok(())
                } else {
                    Err(format!(
                        "a job sent to the server may read only environment variables whose names start with {SECRET_ENV_PREFIX} (the server's operator puts there what jobs may use), not {name}"
                    ))
                }
            }
            Access::WriteDir(p) => self.writable_dir(p).map(drop),
            Access::Location { url, writes } => self.location(url, *writes, &self.roots).map(drop),
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

    fn check_savepoint(&self, location: &str) -> Result<String, String> {
        let mut roots = self.roots.clone();
        roots.push(self.checkpoints_dir.clone());
        self.location(location, false, &roots)
    }

    /// A location of objects — S3 (an allowed bucket behind an allowed endpoint; the
    /// endpoint and credentials come from the server's environment) or a directory below
    /// the roots — as its canonical text. URL forms that are not resolved here are refused.
    fn location(&self, url: &str, writes: bool, roots: &[PathBuf]) -> Result<String, String> {
        let location = Location::parse(url, &self.files_dir).map_err(|e| e.reason)?;
        match &location {
            Location::S3 { bucket, .. } => {
                if !self.buckets.iter().any(|b| b.matches(bucket)) {
                    let allowed = if self.buckets.is_empty() {
                        "none".to_owned()
                    } else {
                        self.buckets.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                    };
                    return Err(format!("the S3 bucket '{bucket}' is not allowed (allowed: {allowed}; the server's --allow-bucket NAME adds one)"));
                }
                let (host, port) = s3_endpoint(bucket)?;
                if !self.connect.iter().any(|pat| pat.matches(&host, Some(port))) {
                    return Err(format!(
                        "the S3 endpoint {host}:{port} is not allowed (allowed: {}; the server's --allow-connect HOST[:PORT] adds one)",
                        self.allowed_hosts()
                    ));
                }
                Ok(location.to_string())
            }
            Location::Local(path) => {
                let text = path.to_str().ok_or_else(|| format!("{} is not UTF-8", path.display()))?;
                let canonical = if writes {
                    let p = self.resolve_for_write(text)?;
                    self.within(url, &p, roots)?;
                    p
                } else {
                    let p = self.canonical_existing(text)?;
                    self.within(url, &p, roots)?;
                    p
                };
                canonical.into_os_string().into_string().map_err(|p| format!("{} is not UTF-8", Path::new(&p).display()))
            }
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
                    Access::Location { url, writes: true } => match Location::parse(url, &self.files_dir).ok()? {
                        s3 @ Location::S3 { .. } => return Some((a.at, s3.to_string())),
                        Location::Local(p) => return Some((a.at, self.resolve_for_write(p.to_str()?).ok()?.display().to_string())),
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

        assert!(p.admit(&read("in.jsonl"), None).is_ok(), "relative: below <data-dir>/files");
        assert!(p.admit(&read(&extra.join("in.jsonl").display().to_string()), None).is_ok(), "an --allow-path root");
        for bad in ["/etc/passwd", "../../outside/secret", "link", "/dev/zero", "missing.jsonl"] {
            let e = p.admit(&read(bad), None).expect_err(bad).to_string();
            assert!(e.contains("sources[0] (id 's').path") && e.contains(bad), "{bad}: {e}");
        }
        let e = p.admit(&read("/etc/passwd"), None).expect_err("outside").to_string();
        assert!(e.contains("outside the allowed roots") && e.contains(&p.files_dir().display().to_string()), "{e}");
        let e = p.admit(&read("/dev/zero"), None).expect_err("device").to_string();
        assert!(e.contains("not a regular file"), "{e}");

        assert!(p.admit(&write("out/new/deeper"), None).is_ok(), "a new directory below the files dir");
        assert!(p.admit(&write(&extra.join("out").display().to_string()), None).is_ok());
        for bad in ["/etc", "/tmp/anywhere", "new/../../../outside", "link"] {
            let e = p.admit(&write(bad), None).expect_err(bad).to_string();
            assert!(e.contains("sinks[0] (id 'o').path"), "{bad}: {e}");
        }
        let mut ck = write("out");
        ck.checkpoint = Some(rivulet_job::CheckpointSpec { dir: Some(outside.display().to_string()), ..Default::default() });
        assert!(p.admit(&ck, None).expect_err("checkpoint dir").to_string().contains("checkpoint.dir"));
        let e = p.admit(&write("out"), Some(&outside.display().to_string())).expect_err("savepoint outside").to_string();
        assert!(e.starts_with("bad request: savepoint:") || e.contains("savepoint:"), "{e}");
        let e = p.admit(&write("out"), Some("s3://bucket/sp")).expect_err("no bucket allowed").to_string();
        assert!(e.contains("the S3 bucket 'bucket' is not allowed") && e.contains("--allow-bucket"), "{e}");
    }

    /// Every place is resolved once, to the absolute path that was checked, and the
    /// resolved spec is what runs: relative objects URLs, `file:` forms and checkpoint
    /// directories no longer mean something else in the process's working directory.
    #[test]
    fn places_are_resolved_once_and_url_forms_not_resolved_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let p = policy(&data, &[], &[]);
        let files = p.files_dir().to_path_buf();
        std::fs::create_dir_all(files.join("in")).expect("mkdir");
        std::fs::write(files.join("data.jsonl"), "{}\n").expect("write");
        let job = spec(
            "  - {id: o, type: objects, url: 'in', bad_records: dead_letter}\n  - {id: f, type: file, path: data.jsonl, format: jsonl}\n",
            "  - {id: w, type: objects, url: 'tmp/x', inputs: [o]}\n  - {id: s, type: file, path: out, inputs: [f]}\n",
        );
        let mut with_ck = job.clone();
        with_ck.checkpoint = Some(rivulet_job::CheckpointSpec { dir: Some("ck".into()), ..Default::default() });
        let (resolved, _) = p.admit(&with_ck, None).expect("allowed");
        let rivulet_job::SourceSpec::Objects(src) = &resolved.sources[0] else { panic!("objects source") };
        assert_eq!(src.url, files.join("in").display().to_string(), "a relative objects source: below the files dir, absolute");
        let rivulet_job::SinkSpec::Objects(sink) = &resolved.sinks[0] else { panic!("objects sink") };
        assert_eq!(sink.url, files.join("tmp/x").display().to_string());
        let rivulet_job::SourceSpec::File(f) = &resolved.sources[1] else { panic!("file source") };
        assert_eq!(f.path, files.join("data.jsonl").display().to_string());
        let rivulet_job::SinkSpec::File(out) = &resolved.sinks[1] else { panic!("file sink") };
        assert_eq!(out.path, files.join("out").display().to_string());
        assert_eq!(resolved.checkpoint.as_ref().and_then(|c| c.dir.clone()), Some(files.join("ck").display().to_string()));
        // The forms that escaped: `file:/…`, `file://localhost/…`, and a relative
        // checkpoint.dir or objects URL climbing out.
        for (url, want) in [
            ("file:/etc", "file:///ABSOLUTE_PATH"),
            ("file://localhost/etc", "a host is not allowed"),
            ("file:///etc", "outside the allowed roots"),
            ("../../../../etc", "outside the allowed roots"),
            ("http://example.com/x", "not supported"),
        ] {
            let bad = spec(&format!("  - {{id: o, type: objects, url: '{url}'}}\n"), "  - {id: s, type: stdout, inputs: [o]}\n");
            let e = p.admit(&bad, None).expect_err(url).to_string();
            assert!(e.contains("sources[0] (id 'o').url") && e.contains(want), "{url}: {e}");
            let w = spec("  - {id: g, type: generator, count: 1}\n", &format!("  - {{id: w, type: objects, url: '{url}', inputs: [g]}}\n"));
            assert!(p.admit(&w, None).is_err(), "{url} as a sink");
            let mut ck = job.clone();
            ck.checkpoint = Some(rivulet_job::CheckpointSpec { dir: Some(url.into()), ..Default::default() });
            let e = p.admit(&ck, None).expect_err(url).to_string();
            assert!(e.contains("checkpoint.dir"), "{url}: {e}");
        }
    }

    /// S3 locations need an allowed bucket behind an allowed endpoint.
    #[test]
    fn s3_buckets_and_their_endpoint_are_allowed_by_the_operator() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (host, port) = s3_endpoint("logs-eu").expect("endpoint");
        let endpoint = format!("{host}:{port}");
        let sink =
            |url: &str| spec("  - {id: g, type: generator, count: 1}\n", &format!("  - {{id: w, type: objects, url: '{url}', inputs: [g]}}\n"));
        let open = policy(dir.path(), &[], &[&endpoint]).with_buckets(vec!["logs-*".parse().expect("pattern"), "exact".parse().expect("name")]);
        let (resolved, sp) = open.admit(&sink("s3://logs-eu/a/"), Some("s3://exact/sp-1")).expect("allowed");
        let rivulet_job::SinkSpec::Objects(o) = &resolved.sinks[0] else { panic!("objects sink") };
        assert_eq!((o.url.as_str(), sp.as_deref()), ("s3://logs-eu/a", Some("s3://exact/sp-1")));
        for (url, want) in
            [("s3://other/x", "'other' is not allowed"), ("s3://exactly/x", "not allowed"), ("s3://Bad_Name/x", "not a valid S3 bucket name")]
        {
            let e = open.admit(&sink(url), None).expect_err(url).to_string();
            assert!(e.contains(want), "{url}: {e}");
        }
        let no_endpoint = policy(dir.path(), &[], &[]).with_buckets(vec!["logs-*".parse().expect("pattern")]);
        let e = no_endpoint.admit(&sink("s3://logs-eu/a"), None).expect_err("endpoint").to_string();
        assert!(e.contains(&format!("the S3 endpoint {endpoint} is not allowed")), "{e}");
        assert!("a/b".parse::<BucketPattern>().is_err() && "x*y".parse::<BucketPattern>().is_err());
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
        assert!(p.admit(&kafka("kafka.internal:9092", ", properties: {linger.ms: '5', security.protocol: SASL_SSL}"), None).is_ok());
        // Whatever librdkafka would connect to elsewhere than a pattern sees is refused.
        let wild = policy(dir.path(), &[], &["*.localtest"]);
        for entry in ["PLAINTEXT://127.0.0.1:9093/x.localtest", "127.0.0.1:9093/x.localtest", "k.localtest:9092x"] {
            let e = wild.admit(&kafka(entry, ""), None).expect_err(entry).to_string();
            assert!(e.contains("bootstrap_servers") && e.contains("is not [PROTOCOL://]HOST[:PORT]"), "{entry}: {e}");
        }
        assert!(wild.admit(&kafka("SASL_SSL://k.localtest:9093", ""), None).is_ok());
        // PostgreSQL: each hostaddr with its own port, the address connected to.
        let db = policy(dir.path(), &[], &["a.db.example:5432", "10.0.0.5:5432"]);
        assert!(
            db.admit(&pg("host=a.db.example,b.db.example hostaddr=10.0.0.5,127.0.0.1 port=5432,22 user=u"), None).is_err(),
            "the second entry is 127.0.0.1:22"
        );
        assert!(db.admit(&pg("host=a.db.example hostaddr=10.0.0.5 port=5432 user=u"), None).is_ok());
        assert!(db.admit(&pg("host=x hostaddr=10.0.0.5,10.0.0.6 user=u"), None).is_err(), "lists of different lengths");
        let e = p.admit(&kafka("kafka.internal:9093", ""), None).expect_err("port").to_string();
        assert!(e.contains("connecting to kafka.internal:9093 is not allowed") && e.contains("kafka.internal:9092"), "{e}");
        for prop in ["plugin.library.paths", "sasl.kerberos.kinit.cmd", "ssl.key.location", "bootstrap.servers"] {
            let e = p.admit(&kafka("kafka.internal:9092", &format!(", properties: {{{prop}: x}}")), None).expect_err(prop).to_string();
            assert!(e.contains(&format!("'{prop}' is not allowed")), "{e}");
        }
        assert!(p.admit(&pg("postgres://u@a.db.example:6000/d"), None).is_ok(), "any subdomain, any port");
        assert!(p.admit(&pg("postgres://u@db.example/d"), None).is_err(), "the parent domain is not a subdomain");
        assert!(p.admit(&pg("postgres://u@[::1]:5432/d"), None).is_ok());
        assert!(p.admit(&pg("postgres://u@127.0.0.1:22/d"), None).is_err());
        let e = p.admit(&pg("host=/var/run/postgresql user=u"), None).expect_err("socket").to_string();
        assert!(e.contains("Unix socket"), "{e}");
        assert!(overlaps("/a/b", "/a/b") && overlaps("/a/b/c", "/a/b") && overlaps("s3://x/p", "s3://x/p/q"));
        assert!(!overlaps("/a/bc", "/a/b") && !overlaps("s3://x/p", "s3://x/q"));
        let none = policy(&dir.path().join("d2"), &[], &[]);
        let e = none.admit(&kafka("localhost:9092", ""), None).expect_err("none allowed").to_string();
        assert!(e.contains("allowed: none"), "{e}");
    }
}
