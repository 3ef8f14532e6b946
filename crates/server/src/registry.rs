//! The plugin registry: uploaded components, validated against the operator world
//! before anything is stored, content-addressed by sha256, listed in an index that
//! survives restarts.
//!
//! Layout below the data dir: `plugins/index.json`,
//! `plugins/<sha256 hex>/<name>@<version>.wasm` (the file name becomes the plugin's
//! label in errors and metrics) and `plugins/deleted.json`: the digests of deleted
//! versions, so `name@version` means the same bytes forever.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use rivulet_plugin::{PluginEngine, PluginError, SMALL_COMPONENT_BYTES};

use crate::{ServerError, store};

/// How long compiling an uploaded component may take.
pub const COMPILE_TIME_LIMIT: Duration = Duration::from_secs(180);

/// A registered plugin version.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PluginMeta {
    /// Name.
    pub name: String,
    /// Version (any string of letters, digits, `.`, `-`, `_`).
    pub version: String,
    /// `sha256:<hex>` of the component's bytes.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Interfaces the component exports.
    pub exports: Vec<String>,
    /// Interfaces it imports.
    pub imports: Vec<String>,
    /// The `rivulet:operator` WIT version it was built against.
    pub wit_version: String,
    /// Upload time, ms since the epoch.
    pub uploaded_ms: i64,
}

/// The registry.
pub struct PluginRegistry {
    dir: PathBuf,
    engine: Arc<PluginEngine>,
    index: Mutex<Vec<PluginMeta>>,
    /// Digests of deleted versions by `name@version` (guarded by the index's lock).
    deleted: Mutex<BTreeMap<String, String>>,
    /// Compiles of large components running at once (a compile past its time limit
    /// keeps its permit).
    compiles: Arc<tokio::sync::Semaphore>,
    /// Compiles of small components (at most [`SMALL_COMPONENT_BYTES`]), which never
    /// wait behind large ones: their own permits, and their own compile threads in the
    /// engine.
    small_compiles: Arc<tokio::sync::Semaphore>,
}

/// Uploads of large components compiled at the same time; the rest wait.
const CONCURRENT_COMPILES: usize = 2;

/// Check a name or version: 1–64 characters of `[A-Za-z0-9._-]`.
pub fn check_ident(what: &str, s: &str) -> Result<(), ServerError> {
    let ok = !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')) && !s.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(ServerError::BadRequest(format!("{what} '{s}' must be 1–64 characters of letters, digits, '.', '-', '_', not starting with '.'")))
    }
}

impl PluginRegistry {
    /// Open (or create) the registry below `data_dir`.
    pub fn open(data_dir: &Path, engine: Arc<PluginEngine>) -> Result<Self, ServerError> {
        let dir = data_dir.join("plugins");
        std::fs::create_dir_all(&dir).map_err(|e| ServerError::Internal(format!("{}: {e}", dir.display())))?;
        let index: Vec<PluginMeta> = store::read_json(&dir.join("index.json"))?.unwrap_or_default();
        let deleted: BTreeMap<String, String> = store::read_json(&dir.join("deleted.json"))?.unwrap_or_default();
        Ok(PluginRegistry {
            dir,
            engine,
            index: Mutex::new(index),
            deleted: Mutex::new(deleted),
            compiles: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_COMPILES)),
            small_compiles: Arc::new(tokio::sync::Semaphore::new(1)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Vec<PluginMeta>> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_deleted(&self) -> MutexGuard<'_, BTreeMap<String, String>> {
        self.deleted.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A deleted `name@version` may come back only with the bytes it had.
    fn check_not_reused(&self, name: &str, version: &str, digest: &str) -> Result<(), ServerError> {
        match self.lock_deleted().get(&format!("{name}@{version}")) {
            Some(old) if old != digest => Err(ServerError::Conflict(format!(
                "plugin {name}@{version} was deleted and had digest {old}: a version always means the same bytes; upload under a new version"
            ))),
            _ => Ok(()),
        }
    }

    /// Every registered version, by name then upload order.
    pub fn list(&self) -> Vec<PluginMeta> {
        let mut all = self.lock().clone();
        all.sort_by(|a, b| a.name.cmp(&b.name).then(a.uploaded_ms.cmp(&b.uploaded_ms)));
        all
    }

    /// One version.
    pub fn get(&self, name: &str, version: &str) -> Option<PluginMeta> {
        self.lock().iter().find(|p| p.name == name && p.version == version).cloned()
    }

    /// Resolve a reference: `name@version` or `sha256:<hex>`.
    pub fn resolve(&self, reference: &str) -> Result<PluginMeta, ServerError> {
        let index = self.lock();
        let found = if reference.starts_with("sha256:") {
            index.iter().find(|p| p.digest == reference)
        } else if let Some((name, version)) = reference.split_once('@') {
            index.iter().find(|p| p.name == name && p.version == version)
        } else {
            return Err(ServerError::BadRequest(format!(
                "plugin reference '{reference}': use name@version or sha256:<digest> of an uploaded plugin"
            )));
        };
        found.cloned().ok_or_else(|| ServerError::BadRequest(format!("plugin '{reference}' is not registered (upload it with POST /v1/plugins)")))
    }

    /// The component file of a registered version.
    pub fn path_of(&self, meta: &PluginMeta) -> PathBuf {
        self.dir.join(meta.digest.trim_start_matches("sha256:")).join(format!("{}@{}.wasm", meta.name, meta.version))
    }

    /// Validate and store an upload. Returns the meta and whether it was new.
    pub async fn upload(&self, name: &str, version: &str, bytes: Vec<u8>) -> Result<(PluginMeta, bool), ServerError> {
        check_ident("plugin name", name)?;
        check_ident("plugin version", version)?;
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        if let Some(existing) = self.get(name, version) {
            return if existing.digest == digest {
                Ok((existing, false))
            } else {
                Err(ServerError::Conflict(format!(
                    "plugin {name}@{version} is already registered with digest {}; upload under a new version",
                    existing.digest
                )))
            };
        }
        self.check_not_reused(name, version, &digest)?;
        // Compile and world-check before anything is stored.
        let engine = self.engine.clone();
        let label = format!("{name}@{version}");
        // A Rust operator compiles in well under a second, an interpreter-based one (Python,
        // JavaScript) in several: small components have a lane of their own, and a
        // component compiled already (same bytes under another version) takes no lane.
        let permit = if self.engine.is_compiled(&digest) {
            None
        } else {
            let lane = if bytes.len() <= SMALL_COMPONENT_BYTES { &self.small_compiles } else { &self.compiles };
            Some(lane.clone().acquire_owned().await.map_err(|e| ServerError::Internal(format!("compile queue: {e}")))?)
        };
        let mut compile = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let plugin = engine.load_bytes(&label, &bytes)?;
            Ok::<_, PluginError>((plugin, bytes))
        });
        let (plugin, bytes) = match tokio::time::timeout(COMPILE_TIME_LIMIT, &mut compile).await {
            Err(_) => {
                // The compile goes on (it cannot be interrupted) and would cache its
                // result: the rejected upload leaves nothing behind once it ends.
                let (engine, digest) = (self.engine.clone(), digest.clone());
                tokio::spawn(async move {
                    let _ = compile.await;
                    engine.forget(&digest);
                });
                return Err(ServerError::Unprocessable(format!(
                    "plugin {name}@{version}: compiling took longer than {} s",
                    COMPILE_TIME_LIMIT.as_secs()
                )));
            }
            Ok(Err(e)) => return Err(ServerError::Internal(format!("compile task: {e}"))),
            Ok(Ok(Err(e))) => return Err(ServerError::Unprocessable(e.to_string())),
            Ok(Ok(Ok(v))) => v,
        };
        let wit_version = plugin.contract.version().to_owned();
        let meta = PluginMeta {
            name: name.to_owned(),
            version: version.to_owned(),
            digest,
            size: bytes.len() as u64,
            exports: plugin.exports.clone(),
            imports: plugin.imports.clone(),
            wit_version,
            uploaded_ms: rivulet_dataflow::now_ms(),
        };
        let path = self.path_of(&meta);
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| self.dir.clone());
        std::fs::create_dir_all(&dir).map_err(|e| ServerError::Internal(format!("{}: {e}", dir.display())))?;
        store::write_atomic(&path, &bytes)?;
        let mut index = self.lock();
        // A concurrent upload of the same name and version may have won (or a delete
        // retired the version meanwhile): then this upload leaves nothing behind.
        let refused = match index.iter().find(|p| p.name == name && p.version == version) {
            Some(existing) if existing.digest == meta.digest => return Ok((existing.clone(), false)),
            Some(_) => Some(ServerError::Conflict(format!("plugin {name}@{version} was registered concurrently with another digest"))),
            None => self.check_not_reused(name, version, &meta.digest).err(),
        };
        if let Some(e) = refused {
            let _ = std::fs::remove_file(&path);
            if !index.iter().any(|p| p.digest == meta.digest) {
                let _ = std::fs::remove_dir(&dir);
                // Its compiled code too: a refused upload leaves no file behind.
                self.engine.forget(&meta.digest);
            }
            return Err(e);
        }
        index.push(meta.clone());
        store::write_json(&self.dir.join("index.json"), &*index)?;
        tracing::info!(plugin = %name, %version, digest = %meta.digest, size = meta.size, "plugin registered");
        Ok((meta, true))
    }

    /// Remove a version (the caller checks no job uses it).
    pub fn delete(&self, name: &str, version: &str) -> Result<PluginMeta, ServerError> {
        let mut index = self.lock();
        let Some(pos) = index.iter().position(|p| p.name == name && p.version == version) else {
            return Err(ServerError::NotFound(format!("plugin {name}@{version}")));
        };
        let meta = index.remove(pos);
        {
            let mut deleted = self.lock_deleted();
            deleted.insert(format!("{name}@{version}"), meta.digest.clone());
            store::write_json(&self.dir.join("deleted.json"), &*deleted)?;
        }
        store::write_json(&self.dir.join("index.json"), &*index)?;
        let _ = std::fs::remove_file(self.path_of(&meta));
        if !index.iter().any(|p| p.digest == meta.digest) {
            let _ = std::fs::remove_dir_all(self.dir.join(meta.digest.trim_start_matches("sha256:")));
            // Its compiled code goes with it.
            self.engine.forget(&meta.digest);
        }
        Ok(meta)
    }

    /// The engine the registry compiles with.
    pub fn engine(&self) -> &Arc<PluginEngine> {
        &self.engine
    }
}
