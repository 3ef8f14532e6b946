//! The guest-side state cache: value and map state read through to the host once per
//! key and written back once per key per call, so a record that reads and updates its
//! key's state makes no host call in the common case.
//!
//! - **Reads** are served from the cache; a miss asks the host and remembers the answer
//!   (absent values too). Entries stay valid across calls: only this instance writes its
//!   keyed state while it lives (a restore, rescale or swap makes a new instance).
//! - **Writes** stay in the cache, marked dirty, and are written to the host when the
//!   call into the guest returns (a batch, a timer, a window firing, `close`). The host
//!   takes snapshots only between calls, so every barrier finds the state complete:
//!   exactly-once is unchanged.
//! - State with a TTL is not cached (its expiry is the host's), nor state used where no
//!   key is current.
//! - The cache forgets its clean entries when it holds more than [`MAX_ENTRIES`].

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use rustc_hash::FxHashMap;

use crate::__private::rivulet::operator as wit;

/// Entries kept per state before the clean ones are forgotten.
pub const MAX_ENTRIES: usize = 1 << 16;

/// Which key's state a call into the guest works on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// No key (open, watermarks, broadcast input): the cache stays out of the way.
    None,
    /// Record `index` of the batch being processed; its key is [`KEY`].
    Record(u32),
    /// The one key the host set for the whole call (a timer, a window firing).
    Call,
}

thread_local! {
    static SCOPE: Cell<Scope> = const { Cell::new(Scope::None) };
    /// The current key's bytes (a record's key, or the call's, asked of the host once).
    static KEY: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
    /// Every cached state, to write back at the end of a call.
    static CACHES: RefCell<Vec<Rc<dyn WriteBack>>> = const { RefCell::new(Vec::new()) };
}

/// Start processing record `index` whose key is `key` (`None`: not keyed).
pub(crate) fn enter_record(index: u32, key: Option<&[u8]>) {
    KEY.with(|k| {
        let mut k = k.borrow_mut();
        match (key, k.as_mut()) {
            (Some(key), Some(buf)) => {
                buf.clear();
                buf.extend_from_slice(key);
            }
            (Some(key), None) => *k = Some(key.to_vec()),
            (None, _) => *k = None,
        }
    });
    SCOPE.with(|s| s.set(if key.is_some() { Scope::Record(index) } else { Scope::None }));
}

/// A call whose key the host set for all of it (timer, window firing).
pub(crate) fn enter_call() {
    KEY.with(|k| *k.borrow_mut() = None);
    SCOPE.with(|s| s.set(Scope::Call));
}

/// A call without a current key.
pub(crate) fn enter_unkeyed() {
    SCOPE.with(|s| s.set(Scope::None));
}

/// Run `f` with the cache key of the current key followed by `suffix`, and how to make
/// the key current again at write-back — if the cache applies (else `None`). The bytes
/// are built in place, without an allocation.
fn with_current<R>(suffix: &[&[u8]], f: impl FnOnce(&[u8], Option<u32>) -> R) -> Option<R> {
    let scope = SCOPE.with(Cell::get);
    let index = match scope {
        Scope::None => return None,
        Scope::Record(i) => Some(i),
        Scope::Call => None,
    };
    KEY.with(|k| {
        let mut k = k.borrow_mut();
        if k.is_none() && scope == Scope::Call {
            *k = wit::context::current_key();
        }
        let buf = k.as_mut()?;
        let len = buf.len();
        for part in suffix {
            buf.extend_from_slice(part);
        }
        let result = f(buf, index);
        buf.truncate(len);
        Some(result)
    })
}

/// Write every dirty entry back to the host (at the end of each call into the guest).
pub(crate) fn write_back() {
    CACHES.with(|c| {
        for cache in c.borrow().iter() {
            cache.write_back();
        }
    });
    SCOPE.with(|s| s.set(Scope::None));
}

trait WriteBack {
    fn write_back(&self);
}

/// One cached entry.
struct Entry {
    /// The encoded value (`None`: absent).
    value: Option<Vec<u8>>,
    /// Written since the host last saw it; made current again by this record index.
    dirty: Option<Option<u32>>,
}

/// The cache of one value or map state: (key[, map key]) → entry.
struct Cache<H> {
    handle: H,
    entries: RefCell<FxHashMap<Vec<u8>, Entry>>,
    /// The entries written since the last write-back (so it costs what was written,
    /// not what is cached).
    dirty: RefCell<Vec<Vec<u8>>>,
}

/// How a cached state reads and writes one entry at the host.
trait Store {
    fn load(&self, sub: &[u8]) -> Option<Vec<u8>>;
    fn store(&self, sub: &[u8], value: Option<&[u8]>);
    /// Bytes of the cache key that belong to the map key (0 for value state).
    fn split(&self, entry_key: &[u8]) -> usize;
}

impl<H: Store> Cache<H> {
    fn new(handle: H) -> Rc<Self> {
        Rc::new(Cache { handle, entries: RefCell::new(FxHashMap::default()), dirty: RefCell::new(Vec::new()) })
    }

    /// The entry for the current key (and map key `sub`), loaded on a miss.
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        if let Some(e) = self.entries.borrow().get(key) {
            return e.value.clone();
        }
        let sub = &key[key.len() - self.handle.split(key)..];
        crate::guest::sync_current_record();
        let value = self.handle.load(sub);
        self.entries.borrow_mut().insert(key.to_vec(), Entry { value: value.clone(), dirty: None });
        value
    }

    fn put(&self, key: &[u8], value: Option<Vec<u8>>, index: Option<u32>) {
        let mut entries = self.entries.borrow_mut();
        match entries.get_mut(key) {
            Some(e) => {
                if e.dirty.is_none() {
                    self.dirty.borrow_mut().push(key.to_vec());
                }
                *e = Entry { value, dirty: Some(index) };
            }
            None => {
                self.dirty.borrow_mut().push(key.to_vec());
                entries.insert(key.to_vec(), Entry { value, dirty: Some(index) });
            }
        }
    }
}

impl<H: Store> WriteBack for Cache<H> {
    fn write_back(&self) {
        let mut entries = self.entries.borrow_mut();
        for key in self.dirty.borrow_mut().drain(..) {
            let Some(e) = entries.get_mut(&key) else { continue };
            let Some(index) = e.dirty.take() else { continue };
            if let Some(i) = index {
                wit::context::set_current_record(i);
            }
            let sub = &key[key.len() - self.handle.split(&key)..];
            self.handle.store(sub, e.value.as_deref());
        }
        if entries.len() > MAX_ENTRIES {
            entries.clear();
        }
    }
}

/// A value state's host handle, cached.
pub(crate) struct CachedValue(Rc<Cache<wit::keyed_state::ValueState>>);

impl Store for wit::keyed_state::ValueState {
    fn load(&self, _sub: &[u8]) -> Option<Vec<u8>> {
        self.get()
    }
    fn store(&self, _sub: &[u8], value: Option<&[u8]>) {
        match value {
            Some(v) => self.set(v),
            None => self.clear(),
        }
    }
    fn split(&self, _entry_key: &[u8]) -> usize {
        0
    }
}

impl CachedValue {
    pub(crate) fn new(handle: wit::keyed_state::ValueState) -> Self {
        let cache = Cache::new(handle);
        CACHES.with(|c| c.borrow_mut().push(cache.clone()));
        CachedValue(cache)
    }

    /// The current key's encoded value.
    pub(crate) fn get(&self) -> Option<Vec<u8>> {
        with_current(&[], |key, _| self.0.get(key)).unwrap_or_else(|| {
            crate::guest::sync_current_record();
            self.0.handle.get()
        })
    }

    /// Set (or with `None` clear) the current key's value.
    pub(crate) fn set(&self, value: Option<Vec<u8>>) {
        let mut value = Some(value);
        let cached = with_current(&[], |key, index| self.0.put(key, value.take().flatten(), index));
        if cached.is_none() {
            crate::guest::sync_current_record();
            self.0.handle.store(&[], value.flatten().as_deref());
        }
    }
}

/// A map state's host handle, cached per (key, map key): the cache key is the key, the
/// map key, and the map key's length (4 bytes), so the two can be told apart.
pub(crate) struct CachedMap(Rc<Cache<wit::keyed_state::MapState>>);

impl Store for wit::keyed_state::MapState {
    fn load(&self, sub: &[u8]) -> Option<Vec<u8>> {
        self.get(&sub[..sub.len() - 4])
    }
    fn store(&self, sub: &[u8], value: Option<&[u8]>) {
        let k = &sub[..sub.len() - 4];
        match value {
            Some(v) => self.put(k, v),
            None => self.remove(k),
        }
    }
    fn split(&self, entry_key: &[u8]) -> usize {
        let n = entry_key.len();
        let len = u32::from_le_bytes([entry_key[n - 4], entry_key[n - 3], entry_key[n - 2], entry_key[n - 1]]) as usize;
        len + 4
    }
}

impl CachedMap {
    pub(crate) fn new(handle: wit::keyed_state::MapState) -> Self {
        let cache = Cache::new(handle);
        CACHES.with(|c| c.borrow_mut().push(cache.clone()));
        CachedMap(cache)
    }

    /// The encoded value under `map_key` in the current key's map.
    pub(crate) fn get(&self, map_key: &[u8]) -> Option<Vec<u8>> {
        let len = (map_key.len() as u32).to_le_bytes();
        with_current(&[map_key, &len], |key, _| self.0.get(key)).unwrap_or_else(|| {
            crate::guest::sync_current_record();
            self.0.handle.get(map_key)
        })
    }

    /// Put (or with `None` remove) `map_key`.
    pub(crate) fn set(&self, map_key: &[u8], value: Option<Vec<u8>>) {
        let len = (map_key.len() as u32).to_le_bytes();
        let mut value = Some(value);
        let cached = with_current(&[map_key, &len], |key, index| self.0.put(key, value.take().flatten(), index));
        if cached.is_none() {
            crate::guest::sync_current_record();
            match value.flatten() {
                Some(v) => self.0.handle.put(map_key, &v),
                None => self.0.handle.remove(map_key),
            }
        }
    }

    /// The host handle for whole-map operations, after writing back this map's pending
    /// changes (and, when `forget`, dropping what the cache holds of it).
    pub(crate) fn whole(&self, forget: bool) -> &wit::keyed_state::MapState {
        let index = SCOPE.with(Cell::get);
        self.0.write_back();
        if forget {
            self.0.entries.borrow_mut().clear();
        }
        // Write-back may have made another record current: make this one current again.
        if let Scope::Record(i) = index {
            wit::context::set_current_record(i);
        } else {
            crate::guest::sync_current_record();
        }
        &self.0.handle
    }
}
