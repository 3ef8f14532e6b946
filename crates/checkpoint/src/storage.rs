//! Where checkpoints and savepoints live: an [`ObjectStore`] (a local directory by
//! default, S3 for `s3://bucket/prefix`) under a root prefix, with every file written
//! through here checksummed and every file read back verified.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};

use crate::CheckpointError;
use crate::location::Location;
use crate::manifest::FileEntry;

/// Deliberate storage failures, for fault tests (the object store "failing for a while").
#[cfg(feature = "fault-injection")]
#[derive(Debug, Default)]
pub struct FaultPlan {
    /// Fail this many upcoming writes.
    pub fail_next_puts: AtomicU64,
}

/// A checkpoint location: an object store and the prefix everything lives under.
#[derive(Clone)]
pub struct CheckpointStorage {
    store: Arc<dyn ObjectStore>,
    root: ObjPath,
    /// The location as the user wrote it (for messages).
    pub url: String,
    #[cfg(feature = "fault-injection")]
    faults: Option<Arc<FaultPlan>>,
    /// The directory behind a local store (to prune empty directories).
    local: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for CheckpointStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CheckpointStorage({})", self.url)
    }
}

/// The sha256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What an S3 location without credentials says.
const NO_S3_CREDENTIALS: &str = "no S3 credentials are configured: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY \
(or AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN, or container credentials), AWS_SKIP_SIGNATURE=true for a public \
bucket, or RIVULET_S3_INSTANCE_METADATA=true to fetch them from the cloud's instance metadata service";

/// Whether `builder` (from the environment) has a source of S3 credentials other than the
/// instance metadata service, which is asked only when the operator says so
/// (`RIVULET_S3_INSTANCE_METADATA=true`): a process that merely lacks AWS settings must
/// not reach out to a link-local metadata address.
fn s3_credentials_configured(builder: &object_store::aws::AmazonS3Builder) -> bool {
    use object_store::aws::AmazonS3ConfigKey as K;
    let set = |k: K| builder.get_config_value(&k).is_some_and(|v| !v.is_empty());
    let truthy = |v: Option<String>| v.is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"));
    set(K::AccessKeyId)
        || (set(K::WebIdentityTokenFile) && set(K::RoleArn))
        || set(K::ContainerCredentialsRelativeUri)
        || set(K::ContainerCredentialsFullUri)
        || truthy(builder.get_config_value(&K::SkipSignature))
        || truthy(std::env::var("RIVULET_S3_INSTANCE_METADATA").ok())
}

impl CheckpointStorage {
    /// Open `location`: `s3://bucket/prefix` (credentials, region and endpoint from the
    /// standard `AWS_*` environment variables) or a local directory (created if missing;
    /// a relative one is below the process's working directory — a location from a spec
    /// is resolved against its base first, with [`Location::parse`], and opened with
    /// [`CheckpointStorage::open_location`]).
    pub fn open(location: &str) -> Result<Self, CheckpointError> {
        let loc = Location::parse_from_cwd(location).map_err(|e| CheckpointError::Location { location: location.to_owned(), reason: e.reason })?;
        Self::open_location(&loc)
    }

    /// Open a resolved location.
    pub fn open_location(location: &Location) -> Result<Self, CheckpointError> {
        let url = location.to_string();
        let refuse = |reason: String| CheckpointError::Location { location: url.clone(), reason };
        match location {
            Location::S3 { bucket, prefix } => {
                let mut builder = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
                if !s3_credentials_configured(&builder) {
                    return Err(refuse(NO_S3_CREDENTIALS.into()));
                }
                if std::env::var("AWS_ENDPOINT_URL").or_else(|_| std::env::var("AWS_ENDPOINT")).is_ok_and(|e| e.starts_with("http://")) {
                    builder = builder.with_allow_http(true);
                }
                if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err() {
                    builder = builder.with_region("us-east-1");
                }
                let store = builder.build().map_err(|e| refuse(e.to_string()))?;
                Ok(CheckpointStorage {
                    store: Arc::new(store),
                    root: ObjPath::from(prefix.as_str()),
                    url,
                    #[cfg(feature = "fault-injection")]
                    faults: None,
                    local: None,
                })
            }
            Location::Local(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| refuse(format!("cannot create directory: {e}")))?;
                let store = object_store::local::LocalFileSystem::new_with_prefix(dir).map_err(|e| refuse(e.to_string()))?;
                Ok(CheckpointStorage {
                    store: Arc::new(store),
                    root: ObjPath::from(""),
                    url,
                    #[cfg(feature = "fault-injection")]
                    faults: None,
                    local: Some(dir.clone()),
                })
            }
        }
    }

    /// The same location with failures injected by `plan` (tests).
    #[cfg(feature = "fault-injection")]
    pub fn with_faults(mut self, plan: Arc<FaultPlan>) -> Self {
        self.faults = Some(plan);
        self
    }

    /// The same store, rooted at `sub` below this root.
    pub fn child(&self, sub: &str) -> Self {
        let mut c = self.clone();
        c.root = self.full(sub);
        c.local = self.local.as_ref().map(|d| d.join(sub));
        c.url = format!("{}/{}", self.url.trim_end_matches('/'), sub);
        c
    }

    fn full(&self, rel: &str) -> ObjPath {
        let rel = rel.trim_matches('/');
        if self.root.as_ref().is_empty() {
            ObjPath::from(rel)
        } else if rel.is_empty() {
            self.root.clone()
        } else {
            ObjPath::from(format!("{}/{rel}", self.root.as_ref()))
        }
    }

    fn io(&self, rel: &str, e: impl std::fmt::Display) -> CheckpointError {
        CheckpointError::Storage { path: format!("{}/{}", self.url.trim_end_matches('/'), rel), message: e.to_string() }
    }

    /// The manifest entry of `bytes` about to be written at `rel` (an injected fault
    /// instead, in fault-injection builds).
    fn entry_for(&self, rel: &str, bytes: &Bytes) -> Result<FileEntry, CheckpointError> {
        self.entry_with(rel, bytes.len() as u64, sha256_hex(bytes))
    }

    /// The manifest entry of a file of `size` bytes hashing to `sha256`, about to be
    /// written at `rel` (an injected fault instead, in fault-injection builds).
    fn entry_with(&self, rel: &str, size: u64, sha256: String) -> Result<FileEntry, CheckpointError> {
        #[cfg(feature = "fault-injection")]
        if let Some(f) = &self.faults
            && f.fail_next_puts.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
        {
            return Err(self.io(rel, "injected fault: the object store is unavailable"));
        }
        Ok(FileEntry { path: rel.to_owned(), size, sha256 })
    }

    /// Store the local file `file` at `rel`; returns its entry. The file is read and
    /// hashed off the async threads; a local store takes it as a hard link (no second
    /// copy of the bytes — for files nobody writes again, like RocksDB's SSTs and the
    /// copies in a RocksDB checkpoint directory), any other store gets the bytes.
    pub async fn put_file(&self, rel: &str, file: &Path) -> Result<FileEntry, CheckpointError> {
        let path = file.to_path_buf();
        let (sha256, bytes) = tokio::task::spawn_blocking(move || std::fs::read(&path).map(|b| (sha256_hex(&b), b)))
            .await
            .map_err(|e| self.io(rel, e))?
            .map_err(|e| CheckpointError::Local(format!("{}: {e}", file.display())))?;
        let entry = self.entry_with(rel, bytes.len() as u64, sha256)?;
        if let Some(dest) = self.local_path(rel) {
            let from = file.to_path_buf();
            let linked = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::hard_link(&from, &dest)
            })
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r);
            match linked {
                Ok(()) => return Ok(entry),
                // Another file system, or the name is taken: write the bytes instead.
                Err(e) => tracing::debug!(path = %rel, error = %e, "no hard link into the checkpoint store; copying"),
            }
        }
        self.store.put(&self.full(rel), PutPayload::from(Bytes::from(bytes))).await.map_err(|e| self.io(rel, e))?;
        Ok(entry)
    }

    /// Where `rel` lies on disk, for a local store and a path of plain characters (which
    /// the store keeps as they are).
    fn local_path(&self, rel: &str) -> Option<std::path::PathBuf> {
        let dir = self.local.as_ref()?;
        let rel = rel.trim_matches('/');
        let plain = !rel.is_empty()
            && rel.split('/').all(|part| !part.is_empty() && part != "." && part != "..")
            && rel.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.'));
        plain.then(|| dir.join(rel))
    }

    /// Write `bytes` at `rel`; returns its entry (path, size, sha256) for a manifest.
    pub async fn put(&self, rel: &str, bytes: Bytes) -> Result<FileEntry, CheckpointError> {
        let entry = self.entry_for(rel, &bytes)?;
        self.store.put(&self.full(rel), PutPayload::from(bytes)).await.map_err(|e| self.io(rel, e))?;
        Ok(entry)
    }

    /// Write `bytes` at `rel` only if nothing is there yet (a manifest: two coordinators
    /// can never both complete one snapshot). Stores that cannot write conditionally
    /// (some S3 implementations) get a plain write, said once in the log.
    pub async fn put_new(&self, rel: &str, bytes: Bytes) -> Result<FileEntry, CheckpointError> {
        let entry = self.entry_for(rel, &bytes)?;
        let opts = object_store::PutOptions::from(object_store::PutMode::Create);
        match self.store.put_opts(&self.full(rel), PutPayload::from(bytes.clone()), opts).await {
            Ok(_) => Ok(entry),
            Err(object_store::Error::AlreadyExists { .. }) => {
                Err(CheckpointError::AlreadyWritten(format!("{}/{rel}", self.url.trim_end_matches('/'))))
            }
            Err(object_store::Error::NotImplemented { .. } | object_store::Error::NotSupported { .. }) => {
                static SAID: std::sync::Once = std::sync::Once::new();
                SAID.call_once(|| tracing::warn!(url = %self.url, "the checkpoint store cannot write create-only; manifests are plain writes"));
                self.store.put(&self.full(rel), PutPayload::from(bytes)).await.map_err(|e| self.io(rel, e))?;
                Ok(entry)
            }
            Err(e) => Err(self.io(rel, e)),
        }
    }

    /// Read `rel` whole, without verification (manifests).
    pub async fn get(&self, rel: &str) -> Result<Bytes, CheckpointError> {
        let got = self.store.get(&self.full(rel)).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => CheckpointError::Corrupt { path: self.url_of(rel), reason: "missing".into() },
            e => self.io(rel, e),
        })?;
        got.bytes().await.map_err(|e| self.io(rel, e))
    }

    /// Read `rel` as a stream of chunks, for files too large to hold whole (a source's
    /// objects); nothing is verified.
    pub async fn get_stream(&self, rel: &str) -> Result<futures::stream::BoxStream<'static, Result<Bytes, CheckpointError>>, CheckpointError> {
        use futures::StreamExt as _;
        let got = self.store.get(&self.full(rel)).await.map_err(|e| self.io(rel, e))?;
        let path = format!("{}/{}", self.url.trim_end_matches('/'), rel);
        Ok(got.into_stream().map(move |chunk| chunk.map_err(|e| CheckpointError::Storage { path: path.clone(), message: e.to_string() })).boxed())
    }

    /// Read the file `entry` names and check its size and checksum (hashed off the
    /// async threads, so several files verify in parallel).
    pub async fn get_verified(&self, entry: &FileEntry) -> Result<Bytes, CheckpointError> {
        let bytes = self.get(&entry.path).await?;
        if bytes.len() as u64 != entry.size {
            return Err(CheckpointError::Corrupt {
                path: self.url_of(&entry.path),
                reason: format!("size {} differs from the manifest's {} (truncated?)", bytes.len(), entry.size),
            });
        }
        let hashed = bytes.clone();
        let sum = tokio::task::spawn_blocking(move || sha256_hex(&hashed)).await.map_err(|e| self.io(&entry.path, e))?;
        if sum != entry.sha256 {
            return Err(CheckpointError::Corrupt {
                path: self.url_of(&entry.path),
                reason: format!("checksum {sum} differs from the manifest's {}", entry.sha256),
            });
        }
        Ok(bytes)
    }

    /// Whether `rel` exists.
    pub async fn exists(&self, rel: &str) -> Result<bool, CheckpointError> {
        match self.store.head(&self.full(rel)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.io(rel, e)),
        }
    }

    /// Every object below `rel` (paths relative to this root) with sizes.
    pub async fn list(&self, rel: &str) -> Result<Vec<(String, u64)>, CheckpointError> {
        let prefix = self.full(rel);
        let prefix_opt = if prefix.as_ref().is_empty() { None } else { Some(&prefix) };
        let metas: Vec<object_store::ObjectMeta> = match self.store.list(prefix_opt).try_collect().await {
            Ok(m) => m,
            Err(object_store::Error::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(self.io(rel, e)),
        };
        let root = self.root.as_ref();
        Ok(metas
            .into_iter()
            .map(|m| {
                let p = m.location.as_ref();
                let rel = if root.is_empty() { p } else { p.strip_prefix(root).unwrap_or(p).trim_start_matches('/') };
                (rel.to_owned(), m.size)
            })
            .collect())
    }

    /// Delete `rel` (absent is fine).
    pub async fn delete(&self, rel: &str) -> Result<(), CheckpointError> {
        match self.store.delete(&self.full(rel)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.io(rel, e)),
        }
    }

    /// Delete every object below `rel`.
    pub async fn delete_prefix(&self, rel: &str) -> Result<(), CheckpointError> {
        for (p, _) in self.list(rel).await? {
            self.delete(&p).await?;
        }
        if let (Some(dir), false) = (&self.local, rel.trim_matches('/').is_empty()) {
            // Local directories stay behind once empty; S3 has none.
            let _ = std::fs::remove_dir_all(dir.join(rel.trim_matches('/')));
        }
        Ok(())
    }

    /// `rel` as a user-facing location.
    pub fn url_of(&self, rel: &str) -> String {
        format!("{}/{}", self.url.trim_end_matches('/'), rel.trim_start_matches('/'))
    }
}

/// A number never returned before in this process (unique names of staging
/// directories and backend instances).
pub fn unique_suffix() -> u64 {
    static UNIQUE: AtomicU64 = AtomicU64::new(0);
    UNIQUE.fetch_add(1, Ordering::Relaxed)
}
