//! The wasmtime engine, the compiled-component caches and the world check.
//!
//! Compiled components are cached on disk by the sha256 of their bytes (plus the
//! engine's compatibility hash) and in memory, so parallel subtasks of one operator
//! share one compiled artifact. Only artifacts this engine wrote are ever deserialized;
//! user-supplied precompiled code is never loaded.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};

use crate::bindings::{Contract, HostState, OperatorPre, v2, v3, v4};
use crate::error::PluginError;
use crate::guest_io::GuestIo;

/// Limits applied to every operator instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum linear memory per instance, in bytes.
    pub memory_bytes: usize,
    /// Maximum time one call into the guest may run.
    pub call_timeout: Duration,
}

impl Limits {
    /// The linear memory an instance may grow to by default.
    pub const DEFAULT_MEMORY_BYTES: usize = 256 << 20;
}

impl Default for Limits {
    fn default() -> Self {
        Limits { memory_bytes: Self::DEFAULT_MEMORY_BYTES, call_timeout: Duration::from_secs(10) }
    }
}

/// How long one epoch lasts; a running guest yields and checks its deadline this often.
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Components up to this size are "small" (a Rust operator; an interpreter-based one,
/// Python or JavaScript, is several times larger): they compile in a lane of their own,
/// on threads that large compiles never occupy.
pub const SMALL_COMPONENT_BYTES: usize = 4 << 20;

/// The largest plugin file [`PluginEngine::load_file`] reads unless
/// [`PluginEngine::set_max_file_bytes`] raised it (the server's default upload limit).
pub const DEFAULT_MAX_FILE_BYTES: u64 = 64 << 20;

/// The process-wide compile thread pools. wasmtime compiles a component's functions in
/// parallel on the rayon pool it runs in; with one shared pool, a small component's
/// compile queued behind every function of the large compiles already running (a
/// 0.26 s compile waited ~27 s behind three JavaScript components). Large components
/// compile on their own pool, whose threads run at a lower priority (nice 10 on
/// Linux), small ones on another: a small compile always has threads and CPU.
struct CompilePools {
    small: rayon::ThreadPool,
    large: rayon::ThreadPool,
}

fn compile_pools() -> Option<&'static CompilePools> {
    static POOLS: OnceLock<Option<CompilePools>> = OnceLock::new();
    POOLS
        .get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(2, usize::from);
            let small = rayon::ThreadPoolBuilder::new().num_threads(cores).thread_name(|i| format!("rivulet-compile-{i}")).build();
            let large = rayon::ThreadPoolBuilder::new()
                .num_threads(cores)
                .thread_name(|i| format!("rivulet-compile-large-{i}"))
                .start_handler(|_| lower_thread_priority())
                .build();
            match (small, large) {
                (Ok(small), Ok(large)) => Some(CompilePools { small, large }),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(error = %e, "cannot start the compile thread pools: compiling on the caller's thread");
                    None
                }
            }
        })
        .as_ref()
}

/// Run the calling thread at nice 10: large compiles yield the CPU to small compiles,
/// running jobs and the API.
fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority only reads its integer arguments; on Linux `who == 0` with
        // PRIO_PROCESS names the calling thread.
        #[allow(unsafe_code, reason = "setpriority(2) on the calling thread")]
        let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
        if rc != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "cannot lower a large-compile thread's priority");
        }
    }
}

/// A loaded, compiled and world-checked operator component.
pub struct Plugin {
    /// Name (the file stem, or the name it was registered under).
    pub name: String,
    /// `sha256:` hex digest of the component's bytes.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Imports the component declares.
    pub imports: Vec<String>,
    /// Exports the component declares.
    pub exports: Vec<String>,
    /// The version of the `rivulet:operator` contract it targets.
    pub contract: Contract,
    pub(crate) pre: OperatorPre,
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin").field("name", &self.name).field("digest", &self.digest).finish()
    }
}

impl Plugin {
    /// `name@sha256:0123456789ab` — short form for messages.
    pub fn label(&self) -> String {
        format!("{} ({})", self.name, &self.digest[..self.digest.len().min(19)])
    }
}

/// The wasmtime engine plus the compiled-component caches.
pub struct PluginEngine {
    engine: wasmtime::Engine,
    linker: Linker<HostState>,
    cache_dir: Option<PathBuf>,
    loaded: Mutex<HashMap<String, Arc<Plugin>>>,
    max_file_bytes: AtomicU64,
}

impl PluginEngine {
    /// An engine with the on-disk compile cache in `cache_dir` (none if `None`).
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Arc<Self>, PluginError> {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.cranelift_opt_level(wasmtime::OptLevel::Speed);
        // `RIVULET_WASM_PROFILING=perfmap`: name compiled guest functions in
        // /tmp/perf-<pid>.map, so `perf record`/`perf report` attribute guest time.
        if std::env::var("RIVULET_WASM_PROFILING").is_ok_and(|v| v == "perfmap") {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = wasmtime::Engine::new(&config).map_err(|e| PluginError::Engine(e.to_string()))?;

        let mut linker: Linker<HostState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| PluginError::Engine(e.to_string()))?;
        // Every contract: their interfaces are distinct imports (`…@0.2.0`, `…@0.3.0`, `…@0.4.0`).
        v4::RivuletOperator::add_to_linker::<HostState, HasSelf<GuestIo>>(&mut linker, |s| &mut s.io)
            .map_err(|e| PluginError::Engine(e.to_string()))?;
        v3::RivuletOperator::add_to_linker::<HostState, HasSelf<GuestIo>>(&mut linker, |s| &mut s.io)
            .map_err(|e| PluginError::Engine(e.to_string()))?;
        v2::RivuletOperator::add_to_linker::<HostState, HasSelf<GuestIo>>(&mut linker, |s| &mut s.io)
            .map_err(|e| PluginError::Engine(e.to_string()))?;

        // The epoch ticker: lets deadlines and cooperative yields work. It holds only a
        // weak reference, so it ends with the engine.
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("rivulet-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|e| PluginError::Engine(format!("cannot start the epoch thread: {e}")))?;

        if let Some(dir) = &cache_dir {
            std::fs::create_dir_all(dir).map_err(|e| PluginError::Engine(format!("cache dir {}: {e}", dir.display())))?;
        }
        Ok(Arc::new(PluginEngine {
            engine,
            linker,
            cache_dir,
            loaded: Mutex::new(HashMap::new()),
            max_file_bytes: AtomicU64::new(DEFAULT_MAX_FILE_BYTES),
        }))
    }

    /// The default compile cache: `$RIVULET_CACHE_DIR`, else `$XDG_CACHE_HOME/rivulet/components`,
    /// else `~/.cache/rivulet/components`.
    pub fn default_cache_dir() -> Option<PathBuf> {
        if let Some(d) = std::env::var_os("RIVULET_CACHE_DIR") {
            return Some(PathBuf::from(d));
        }
        let base =
            std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from).or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(base.join("rivulet").join("components"))
    }

    /// The largest plugin file [`Self::load_file`] reads.
    pub fn max_file_bytes(&self) -> u64 {
        self.max_file_bytes.load(Ordering::Relaxed)
    }

    /// Raise (or lower) the largest plugin file [`Self::load_file`] reads, e.g. to a
    /// server's upload limit.
    pub fn set_max_file_bytes(&self, limit: u64) {
        self.max_file_bytes.store(limit, Ordering::Relaxed);
    }

    /// Load a component from a file: a regular file (not a device, pipe or directory)
    /// of at most [`Self::max_file_bytes`].
    pub fn load_file(&self, path: &Path) -> Result<Arc<Plugin>, PluginError> {
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "plugin".into());
        let bytes = read_plugin_file(&name, path, self.max_file_bytes())?;
        self.load_bytes(&name, &bytes)
    }

    /// Whether the component with `digest` (`sha256:<hex>`) is compiled already (in
    /// memory or in the compile cache): loading it then compiles nothing.
    pub fn is_compiled(&self, digest: &str) -> bool {
        if self.loaded.lock().is_ok_and(|l| l.contains_key(digest)) {
            return true;
        }
        self.cache_path(digest).is_some_and(|p| p.is_file())
    }

    /// Check, compile (or fetch from cache) and world-check a component.
    pub fn load_bytes(&self, name: &str, bytes: &[u8]) -> Result<Arc<Plugin>, PluginError> {
        check_header(name, bytes)?;
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
        if let Some(p) = self.loaded.lock().map_err(|_| PluginError::Engine("cache lock poisoned".into()))?.get(&digest)
            && p.name == name
        {
            return Ok(p.clone());
        }
        let (component, fresh) = self.compile(name, &digest, bytes)?;
        let ty = component.component_type();
        let imports: Vec<String> = ty.imports(&self.engine).map(|(n, _)| n.to_string()).collect();
        let exports: Vec<String> = ty.exports(&self.engine).map(|(n, _)| n.to_string()).collect();
        let mismatch = |reason: String| PluginError::WorldMismatch { name: name.to_owned(), reason };
        // Imports first: a component asking for what the host does not provide is told so.
        let instance_pre = self.linker.instantiate_pre(&component).map_err(|e| mismatch(describe_link_error(&e)))?;
        let contract = Contract::of_exports(exports.iter().map(String::as_str)).ok_or_else(|| {
            mismatch(format!(
                "it exports no `rivulet:operator/operator` interface of a version this host runs ({}); its exports: {}",
                Contract::ALL.map(|c| c.version()).join(", "),
                if exports.is_empty() { "none".to_owned() } else { exports.join(", ") }
            ))
        })?;
        let pre = match contract {
            Contract::V0_2 => v2::RivuletOperatorPre::new(instance_pre).map(OperatorPre::V2),
            Contract::V0_3 => v3::RivuletOperatorPre::new(instance_pre).map(OperatorPre::V3),
            Contract::V0_4 => v4::RivuletOperatorPre::new(instance_pre).map(OperatorPre::V4),
        }
        .map_err(|e| mismatch(format!("{contract}: {e:#}")))?;
        let plugin = Arc::new(Plugin { name: name.to_owned(), digest: digest.clone(), size: bytes.len() as u64, imports, exports, contract, pre });
        // Only a component that passed the world check is cached: a rejected one leaves
        // no file behind.
        if fresh {
            self.store_compiled(&digest, &component);
        }
        self.loaded.lock().map_err(|_| PluginError::Engine("cache lock poisoned".into()))?.insert(digest, plugin.clone());
        Ok(plugin)
    }

    /// Where the compiled code of the component with `digest` is cached.
    fn cache_path(&self, digest: &str) -> Option<PathBuf> {
        self.cache_dir.as_ref().map(|dir| {
            let mut h = Sha256::new();
            h.update(digest.as_bytes());
            // Artifacts are only valid for the engine configuration that wrote them.
            use std::hash::{Hash, Hasher};
            let mut s = std::collections::hash_map::DefaultHasher::new();
            self.engine.precompile_compatibility_hash().hash(&mut s);
            h.update(s.finish().to_le_bytes());
            h.update(env!("CARGO_PKG_VERSION").as_bytes());
            dir.join(format!("{}.cwasm", hex::encode(h.finalize())))
        })
    }

    /// Drop the component with `digest` from memory and from the compile cache (its
    /// last registered version was deleted).
    pub fn forget(&self, digest: &str) {
        if let Ok(mut loaded) = self.loaded.lock() {
            loaded.remove(digest);
        }
        if let Some(path) = self.cache_path(digest) {
            let _ = std::fs::remove_file(path);
        }
    }

    /// The compiled component, from the caches or compiled now (`true`: compiled now,
    /// not yet in the on-disk cache).
    fn compile(&self, name: &str, digest: &str, bytes: &[u8]) -> Result<(Component, bool), PluginError> {
        if let Some(path) = self.cache_path(digest)
            && path.exists()
        {
            // SAFETY: the file was written by `Component::serialize` of an engine with the
            // same compatibility hash (it is part of the file name), in a cache directory
            // the host owns. User-supplied precompiled artifacts never reach this path.
            #[allow(unsafe_code, reason = "loading our own compile cache")]
            let loaded = unsafe { Component::deserialize_file(&self.engine, &path) };
            match loaded {
                Ok(c) => return Ok((c, false)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "discarding unreadable compile cache entry")
                }
            }
        }
        let started = std::time::Instant::now();
        let small = bytes.len() <= SMALL_COMPONENT_BYTES;
        let build = || Component::new(&self.engine, bytes);
        // wasmtime compiles the functions in parallel on the pool it runs in.
        let component = match compile_pools() {
            Some(pools) if small => pools.small.install(build),
            Some(pools) => pools.large.install(build),
            None => build(),
        }
        .map_err(|e| PluginError::Invalid { name: name.to_owned(), reason: format!("{e:#}") })?;
        tracing::info!(plugin = name, %digest, small, elapsed_ms = started.elapsed().as_millis() as u64, "compiled component");
        Ok((component, true))
    }

    /// Write a compiled component to the on-disk cache (best effort).
    fn store_compiled(&self, digest: &str, component: &Component) {
        let Some(path) = self.cache_path(digest) else { return };
        match component.serialize() {
            Ok(art) => {
                // A name of its own per write: two compiles of one component may finish together.
                static WRITES: AtomicUsize = AtomicUsize::new(0);
                let tmp = path.with_extension(format!("tmp{}-{}", std::process::id(), WRITES.fetch_add(1, Ordering::Relaxed)));
                if std::fs::write(&tmp, &art).and_then(|()| std::fs::rename(&tmp, &path)).is_err() {
                    let _ = std::fs::remove_file(&tmp);
                    tracing::warn!(path = %path.display(), "could not write compile cache entry");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not serialize component"),
        }
    }

    pub(crate) fn engine(&self) -> &wasmtime::Engine {
        &self.engine
    }
}

/// Read a plugin file: a regular file of at most `limit` bytes
/// ([`rivulet_dataflow::read_bounded_file`]).
fn read_plugin_file(name: &str, path: &Path, limit: u64) -> Result<Vec<u8>, PluginError> {
    use rivulet_dataflow::BoundedReadError as E;
    let (name, shown) = (name.to_owned(), path.display().to_string());
    rivulet_dataflow::read_bounded_file(path, limit).map_err(|e| match e {
        E::Io(error) => PluginError::Read { name, path: shown, error },
        E::NotAFile => PluginError::NotAFile { name, path: shown },
        E::TooLarge { limit } => PluginError::TooLarge { name, path: shown, limit },
    })
}

fn check_header(name: &str, bytes: &[u8]) -> Result<(), PluginError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(PluginError::NotWasm { name: name.to_owned() });
    }
    match &bytes[4..8] {
        [1, 0, 0, 0] => Err(PluginError::CoreModule { name: name.to_owned() }),
        _ => Ok(()),
    }
}

fn describe_link_error(e: &wasmtime::Error) -> String {
    let text = format!("{e:#}");
    // wasmtime says e.g. "component imports instance `x:y/z`, but a matching
    // implementation was not found in the linker"; make the fix obvious.
    if text.contains("not found in the linker") || text.contains("matching implementation") {
        format!("{text} (Rivulet provides only the rivulet:operator@0.4.0, @0.3.0 and @0.2.0 interfaces and sandboxed WASI 0.2)")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_files_must_be_regular_and_bounded() {
        let dir = std::env::temp_dir().join(format!("rivulet-plugin-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        assert!(matches!(read_plugin_file("d", &dir, 1 << 20), Err(PluginError::NotAFile { .. })));
        #[cfg(unix)]
        assert!(matches!(read_plugin_file("z", Path::new("/dev/zero"), 1 << 20), Err(PluginError::NotAFile { .. })));
        let f = dir.join("p.wasm");
        std::fs::write(&f, [0u8; 100]).expect("write");
        assert!(matches!(read_plugin_file("p", &f, 99), Err(PluginError::TooLarge { limit: 99, .. })));
        assert_eq!(read_plugin_file("p", &f, 100).expect("read").len(), 100);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn headers_are_classified() {
        assert!(matches!(check_header("x", b"hello world"), Err(PluginError::NotWasm { .. })));
        assert!(matches!(check_header("x", b"\0asm\x01\0\0\0"), Err(PluginError::CoreModule { .. })));
        assert!(check_header("x", b"\0asm\x0d\0\x01\0").is_ok());
    }
}
