//! One running operator instance: its store, limits and sandbox, and the calls the
//! runtime makes into it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rivulet_dataflow::{Batch, now_ms};
use rivulet_state::{BroadcastState, KeyedStateStore, StateEntry, TimeDomain, TimerService};
use wasmtime::component::ResourceTable;
use wasmtime::{Store, UpdateDeadline};

use crate::bindings::{Contract, HostState, OperatorExports, OperatorPre, v2};
use crate::engine::{Limits, Plugin, PluginEngine};
use crate::error::{FailureKind, GuestFailure};
use crate::guest_io::GuestIo;
use crate::guest_log::GuestLog;
use crate::main_output::{ForwardSource, MainOutput};

/// Run `$body` on the exports of a 0.3.0-or-later instance (their calls have the same
/// shape), with `$types` naming that contract's generated `types` module; `$v2` for a
/// 0.2.0 instance.
macro_rules! on_exports {
    ($exports:expr, $b:ident, $types:ident => $body:expr, v2 => $v2:expr) => {
        match $exports {
            OperatorExports::V4($b) => {
                #[allow(unused_imports)]
                use crate::bindings::v4::rivulet::operator::types as $types;
                $body
            }
            OperatorExports::V3($b) => {
                #[allow(unused_imports)]
                use crate::bindings::v3::rivulet::operator::types as $types;
                $body
            }
            OperatorExports::V2($b) => $v2,
        }
    };
}

/// Caps linear memory and tables; records why it refused so the error can say so.
pub(crate) struct MemoryLimiter {
    max_memory: usize,
    exceeded: Option<usize>,
    current: usize,
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            self.exceeded = Some(desired);
            wasmtime::bail!("memory limit exceeded: the guest asked for {desired} bytes, the limit is {} bytes", self.max_memory);
        }
        self.current = self.current.max(desired);
        Ok(true)
    }
    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// What an instance needs besides its plugin.
pub struct InstanceSetup {
    /// The operator's uid.
    pub uid: String,
    /// Subtask index.
    pub subtask: u32,
    /// Operator parallelism.
    pub parallelism: u32,
    /// Restarts of the job so far in this run.
    pub attempt: u32,
    /// The subtask's keyed state.
    pub state: KeyedStateStore,
    /// Limits.
    pub limits: Limits,
    /// The operator's config as JSON text.
    pub config: String,
    /// Where the guest's log lines are also kept (the job's buffer in server mode).
    pub log: Option<Arc<GuestLog>>,
    /// The operator's input names, by input index.
    pub input_names: Vec<String>,
}

/// What a call emitted, each output counted once.
#[derive(Debug, Default)]
pub struct Output {
    /// Records for the main output.
    pub main: Batch,
    /// Records per side-output tag.
    pub side: Vec<(String, Batch)>,
}

impl Output {
    /// Records emitted on every output.
    pub fn len(&self) -> usize {
        self.main.len() + self.side.iter().map(|(_, b)| b.len()).sum::<usize>()
    }

    /// Whether nothing was emitted.
    pub fn is_empty(&self) -> bool {
        self.main.is_empty() && self.side.iter().all(|(_, b)| b.is_empty())
    }
}

/// A live operator instance.
pub struct OperatorInstance {
    store: Store<HostState>,
    bindings: OperatorExports,
    plugin: Arc<Plugin>,
    uid: String,
    config: String,
    limits: Limits,
    stderr_tail: Arc<Mutex<Vec<u8>>>,
    call_started: Arc<Mutex<Instant>>,
    timed_out: Arc<AtomicBool>,
}

impl OperatorInstance {
    /// Instantiate `plugin` (not yet opened).
    pub async fn new(engine: &PluginEngine, plugin: Arc<Plugin>, setup: InstanceSetup) -> Result<Self, GuestFailure> {
        let (wasi, stderr_tail) = crate::sandbox::wasi(&setup.uid, setup.subtask, setup.log.clone());
        let io = GuestIo {
            uid: setup.uid.clone(),
            plugin: plugin.label(),
            subtask: setup.subtask,
            parallelism: setup.parallelism,
            attempt: setup.attempt,
            state: setup.state,
            current: Default::default(),
            batch_keys: Vec::new(),
            batch: Arc::new(Vec::new()),
            timers: TimerService::default(),
            watermark: i64::MIN,
            now: now_ms(),
            main_out: MainOutput::default(),
            forwardable: None,
            side_out: Vec::new(),
            log: setup.log.clone(),
            input_names: setup.input_names,
            broadcast: BroadcastState::default(),
            broadcast_names: Vec::new(),
            broadcast_writable: false,
        };
        let data = HostState {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter { max_memory: setup.limits.memory_bytes, exceeded: None, current: 0 },
            io,
        };
        let mut store = Store::new(engine.engine(), data);
        store.limiter(|s| &mut s.limiter);
        let call_started = Arc::new(Mutex::new(Instant::now()));
        let timed_out = Arc::new(AtomicBool::new(false));
        {
            let call_started = call_started.clone();
            let timed_out = timed_out.clone();
            let timeout = setup.limits.call_timeout;
            store.epoch_deadline_callback(move |_| {
                let started = call_started.lock().map(|s| *s).unwrap_or_else(|_| Instant::now());
                if started.elapsed() > timeout {
                    timed_out.store(true, Ordering::Relaxed);
                    wasmtime::bail!("the call ran longer than the {} ms limit", timeout.as_millis());
                }
                // Give the executor back the thread every tick: guests are cooperative.
                Ok(UpdateDeadline::Yield(1))
            });
        }
        store.set_epoch_deadline(1);
        let instantiated = match &plugin.pre {
            OperatorPre::V2(pre) => pre.instantiate_async(&mut store).await.map(OperatorExports::V2),
            OperatorPre::V3(pre) => pre.instantiate_async(&mut store).await.map(OperatorExports::V3),
            OperatorPre::V4(pre) => pre.instantiate_async(&mut store).await.map(OperatorExports::V4),
        };
        let bindings = match instantiated {
            Ok(b) => b,
            Err(e) => return Err(GuestFailure::new(&setup.uid, &plugin.label(), FailureKind::Instantiate, format!("{e:#}"))),
        };
        let mut inst = OperatorInstance {
            bindings,
            store,
            plugin,
            uid: setup.uid,
            config: setup.config,
            limits: setup.limits,
            stderr_tail,
            call_started,
            timed_out,
        };
        inst.store.set_epoch_deadline(1);
        Ok(inst)
    }

    fn begin(&mut self) {
        if let Ok(mut s) = self.call_started.lock() {
            *s = Instant::now();
        }
        let io = &mut self.store.data_mut().io;
        io.now = now_ms();
        io.forwardable = None;
        self.store.set_epoch_deadline(1);
    }

    /// Let the call about to run forward records of `batch` (`collector.forward`).
    fn allow_forward(&mut self, batch: &Batch) {
        self.store.data_mut().io.forwardable = Some(ForwardSource::new(batch));
    }

    /// Turn a wasmtime error or a guest `Err` into a failure naming operator and plugin.
    fn fail(&mut self, call: &str, result: wasmtime::Result<Result<(), String>>) -> Result<(), GuestFailure> {
        let label = self.plugin.label();
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(msg)) => Err(GuestFailure::new(&self.uid, &label, FailureKind::GuestError, format!("{call}: {msg}"))),
            Err(e) => {
                let kind = if self.timed_out.swap(false, Ordering::Relaxed) {
                    FailureKind::Timeout
                } else if self.store.data_mut().limiter.exceeded.take().is_some() {
                    FailureKind::MemoryLimit
                } else {
                    FailureKind::Trap
                };
                let mut message = match kind {
                    FailureKind::Timeout => {
                        format!("{call} ran longer than the {} ms call limit (infinite loop?)", self.limits.call_timeout.as_millis())
                    }
                    FailureKind::MemoryLimit => {
                        format!("{call} exceeded the memory limit of {} MiB: {}", self.limits.memory_bytes >> 20, root_message(&e))
                    }
                    _ => format!("{call} trapped: {}", root_message(&e)),
                };
                let tail = self.stderr_tail.lock().map(|t| String::from_utf8_lossy(&t).trim().to_owned()).unwrap_or_default();
                if !tail.is_empty() {
                    message.push_str("; guest stderr: ");
                    message.push_str(&tail);
                }
                Err(GuestFailure::new(&self.uid, &label, kind, message))
            }
        }
    }

    /// A failure for a call the component's contract does not have.
    fn unsupported(&self, call: &str) -> GuestFailure {
        GuestFailure::new(
            &self.uid,
            &self.plugin.label(),
            FailureKind::GuestError,
            format!(
                "{call}: the component targets {}, which has no such call; rebuild it with an SDK for {}",
                self.plugin.contract,
                Contract::ALL[0]
            ),
        )
    }

    /// Call the guest's `open` with the operator's config.
    pub async fn open(&mut self) -> Result<(), GuestFailure> {
        self.begin();
        let config = self.config.clone();
        let r = on_exports!(&self.bindings, b, _t => b.rivulet_operator_operator().call_open(&mut self.store, &config).await,
            v2 => b.rivulet_operator_operator().call_open(&mut self.store, &config).await);
        self.fail("open", r)
    }

    /// The largest linear memory this instance has grown to, in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.store.data().limiter.current
    }

    /// Make `batch` the one whose records `set-current-record` selects.
    fn select_batch(&mut self, batch: &Batch) {
        // Keys are indexed on the first `set-current-record`: a stateless operator
        // never pays for it.
        let io = &mut self.store.data_mut().io;
        io.batch_keys.clear();
        io.batch = batch.bytes().clone();
        io.set_current_key(None);
    }

    /// Process one batch of input `input`. Record keys are indexed (lazily) so
    /// `set-current-record` works.
    pub async fn process(&mut self, input: u32, batch: &Batch) -> Result<Output, GuestFailure> {
        self.select_batch(batch);
        self.begin();
        self.allow_forward(batch);
        let r = on_exports!(&self.bindings, b, _t => b.rivulet_operator_operator().call_process(&mut self.store, input, batch.bytes()).await,
            v2 => b.rivulet_operator_operator().call_process(&mut self.store, batch.bytes()).await);
        self.fail("process", r)?;
        Ok(self.take_output())
    }

    /// Process one batch of broadcast input `input`: broadcast state is writable, there
    /// is no current key.
    pub async fn process_broadcast(&mut self, input: u32, batch: &Batch) -> Result<Output, GuestFailure> {
        if matches!(self.bindings, OperatorExports::V2(_)) {
            return Err(self.unsupported("process-broadcast"));
        }
        self.select_batch(batch);
        self.store.data_mut().io.broadcast_writable = true;
        self.begin();
        self.allow_forward(batch);
        let r = on_exports!(&self.bindings, b, _t => b.rivulet_operator_operator().call_process_broadcast(&mut self.store, input, batch.bytes()).await,
        v2 => {
            let _ = b;
            return Err(self.unsupported("process-broadcast"));
        });
        self.store.data_mut().io.broadcast_writable = false;
        self.fail("process-broadcast", r)?;
        Ok(self.take_output())
    }

    /// Process one fired window of `key`, with its records per input.
    pub async fn process_window(&mut self, key: Vec<u8>, start: i64, end: i64, inputs: &[Batch]) -> Result<Output, GuestFailure> {
        self.store.data_mut().io.set_current_key(Some(key));
        self.begin();
        let r = on_exports!(&self.bindings, b, t => {
            let batches: Vec<Vec<u8>> = inputs.iter().map(|b| b.as_slice().to_vec()).collect();
            b.rivulet_operator_operator().call_process_window(&mut self.store, t::Window { start, end }, &batches).await
        },
        v2 => {
            let [records] = inputs else { return Err(self.unsupported("process-window with several inputs")) };
            b.rivulet_operator_operator()
                .call_process_window(&mut self.store, v2::rivulet::operator::types::Window { start, end }, records.bytes())
                .await
        });
        self.fail("process-window", r)?;
        Ok(self.take_output())
    }

    /// Hand pairs of an interval join to the guest: record `i` of `left` meets record
    /// `i` of `right`; `set-current-record(i)` selects the pair's key (the left record's).
    pub async fn process_join(&mut self, left: &Batch, right: &Batch) -> Result<Output, GuestFailure> {
        if matches!(self.bindings, OperatorExports::V2(_)) {
            return Err(self.unsupported("process-join"));
        }
        self.select_batch(left);
        self.begin();
        let r = on_exports!(&self.bindings, b, _t => b.rivulet_operator_operator().call_process_join(&mut self.store, left.bytes(), right.bytes()).await,
        v2 => {
            let _ = b;
            return Err(self.unsupported("process-join"));
        });
        self.fail("process-join", r)?;
        Ok(self.take_output())
    }

    /// Fire one timer of `key`.
    pub async fn on_timer(&mut self, key: Vec<u8>, timestamp: i64, domain: TimeDomain) -> Result<Output, GuestFailure> {
        self.store.data_mut().io.set_current_key(Some(key));
        self.begin();
        let r = on_exports!(&self.bindings, b, _t => b.rivulet_operator_operator().call_on_timer(&mut self.store, timestamp, domain.into()).await,
            v2 => b.rivulet_operator_operator().call_on_timer(&mut self.store, timestamp, domain.into()).await);
        self.fail("on-timer", r)?;
        Ok(self.take_output())
    }

    /// Tell the guest the watermark advanced.
    pub async fn on_watermark(&mut self, watermark: i64) -> Result<Output, GuestFailure> {
        self.store.data_mut().io.set_current_key(None);
        self.begin();
        let r = on_exports!(&self.bindings, b, _t => b.rivulet_operator_operator().call_on_watermark(&mut self.store, watermark).await,
            v2 => b.rivulet_operator_operator().call_on_watermark(&mut self.store, watermark).await);
        self.fail("on-watermark", r)?;
        Ok(self.take_output())
    }

    /// Call the guest's `close`.
    pub async fn close(&mut self) -> Result<Output, GuestFailure> {
        self.store.data_mut().io.set_current_key(None);
        self.begin();
        let r = on_exports!(&self.bindings, b, _t => b.rivulet_operator_operator().call_close(&mut self.store).await,
            v2 => b.rivulet_operator_operator().call_close(&mut self.store).await);
        self.fail("close", r)?;
        Ok(self.take_output())
    }

    /// The operator's state version.
    pub async fn state_version(&mut self) -> Result<u32, GuestFailure> {
        self.begin();
        let r = on_exports!(&self.bindings, b, _t => b.rivulet_operator_operator().call_state_version(&mut self.store).await,
            v2 => b.rivulet_operator_operator().call_state_version(&mut self.store).await);
        r.map_err(|e| GuestFailure::new(&self.uid, &self.plugin.label(), FailureKind::Trap, format!("state-version trapped: {}", root_message(&e))))
    }

    /// Hand old state entries to the guest's `migrate-state`; returns what it keeps.
    pub async fn migrate_state(&mut self, from_version: u32, entries: Vec<StateEntry>) -> Result<Vec<StateEntry>, GuestFailure> {
        self.store.data_mut().io.set_current_key(None);
        self.begin();
        let r: wasmtime::Result<Result<Vec<StateEntry>, String>> = on_exports!(&self.bindings, b, t => {
            let entries: Vec<t::StateEntry> = entries.into_iter().map(Into::into).collect();
            b.rivulet_operator_operator()
                .call_migrate_state(&mut self.store, from_version, &entries)
                .await
                .map(|r| r.map(|v| v.into_iter().map(StateEntry::from).collect()))
        },
        v2 => {
            let entries: Vec<v2::rivulet::operator::types::StateEntry> = entries.into_iter().map(Into::into).collect();
            b.rivulet_operator_operator()
                .call_migrate_state(&mut self.store, from_version, &entries)
                .await
                .map(|r| r.map(|v| v.into_iter().map(StateEntry::from).collect()))
        });
        match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(msg)) => Err(GuestFailure::new(
                &self.uid,
                &self.plugin.label(),
                FailureKind::GuestError,
                format!("migrate-state from version {from_version}: {msg}"),
            )),
            Err(e) => self.fail("migrate-state", Err(e)).map(|()| Vec::new()),
        }
    }

    /// The broadcast state (the same on every subtask of the operator).
    pub fn broadcast(&mut self) -> &mut BroadcastState {
        &mut self.store.data_mut().io.broadcast
    }

    /// The plugin this instance runs.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    /// Set the watermark the guest sees.
    pub fn set_watermark(&mut self, watermark: i64) {
        self.store.data_mut().io.watermark = watermark;
    }

    /// The instance's timers.
    pub fn timers(&mut self) -> &mut TimerService {
        &mut self.store.data_mut().io.timers
    }

    /// State and timers together (snapshots).
    pub fn state_and_timers(&mut self) -> (&mut KeyedStateStore, &mut TimerService) {
        let io = &mut self.store.data_mut().io;
        (&mut io.state, &mut io.timers)
    }

    /// The instance's keyed state.
    pub fn state(&mut self) -> &mut KeyedStateStore {
        &mut self.store.data_mut().io.state
    }

    fn take_output(&mut self) -> Output {
        let io = &mut self.store.data_mut().io;
        io.forwardable = None;
        let main = io.main_out.take();
        let side = std::mem::take(&mut io.side_out).into_iter().map(|(tag, b)| (tag, Batch::counted(b))).collect();
        Output { main, side }
    }
}

/// What went wrong — the trap, or the host's reason for refusing an import call (the
/// root cause, not the backtrace wasmtime wraps it in) — and where in the guest: its
/// innermost frames.
fn root_message(e: &wasmtime::Error) -> String {
    let cause = match e.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => e.root_cause().to_string().lines().next().unwrap_or_default().to_owned(),
    };
    let Some(trace) = e.downcast_ref::<wasmtime::WasmBacktrace>() else { return cause };
    // A stripped component has no names: its frames are function indices and offsets.
    let frame = |f: &wasmtime::FrameInfo| match f.func_name() {
        Some(name) => short_name(name),
        None => format!("func[{}]{}", f.func_index(), f.module_offset().map(|o| format!("@0x{o:x}")).unwrap_or_default()),
    };
    let frames: Vec<String> = trace.frames().iter().take(GUEST_FRAMES).map(frame).collect();
    if frames.is_empty() { cause } else { format!("{cause} (guest backtrace: {})", frames.join(" ← ")) }
}

/// Innermost guest frames shown with a trap.
const GUEST_FRAMES: usize = 8;

/// A demangled function name without its crate hash.
fn short_name(name: &str) -> String {
    let name = name.rsplit_once("::h").filter(|(_, h)| h.len() == 16 && h.chars().all(|c| c.is_ascii_hexdigit())).map_or(name, |(n, _)| n);
    name.to_owned()
}
