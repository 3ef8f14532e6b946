//! The operator API (built only for guests, feature `guest`).

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::__private::rivulet::operator as wit;
use crate::inputs::input;
pub use crate::inputs::{BroadcastMapState, CoGroup, Input, input_index};
pub use crate::state::{ListState, MapState, Ttl, ValueState};
use crate::{Error, Record, RecordIter, Result, encode_record};

/// Which clock a timer is set against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeDomain {
    /// Fires when the watermark reaches the timer's time.
    EventTime,
    /// Fires when the host's wall clock reaches the timer's time.
    ProcessingTime,
}

impl From<wit::types::TimeDomain> for TimeDomain {
    fn from(d: wit::types::TimeDomain) -> Self {
        match d {
            wit::types::TimeDomain::EventTime => TimeDomain::EventTime,
            wit::types::TimeDomain::ProcessingTime => TimeDomain::ProcessingTime,
        }
    }
}

impl From<TimeDomain> for wit::types::TimeDomain {
    fn from(d: TimeDomain) -> Self {
        match d {
            TimeDomain::EventTime => wit::types::TimeDomain::EventTime,
            TimeDomain::ProcessingTime => wit::types::TimeDomain::ProcessingTime,
        }
    }
}

/// An event-time window `[start, end)` in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Inclusive start.
    pub start: i64,
    /// Exclusive end.
    pub end: i64,
}

/// The operator's `config` from the job spec.
#[derive(Debug, Clone)]
pub struct Config {
    json: serde_json::Value,
}

impl Config {
    /// The whole config as JSON (`null` when the spec gives none).
    pub fn json(&self) -> &serde_json::Value {
        &self.json
    }
    /// Deserialize the whole config into `T`.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        Ok(serde_json::from_value(self.json.clone())?)
    }
    /// One field, deserialized, or `None` when absent.
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        match self.json.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => Ok(Some(serde_json::from_value(v.clone())?)),
        }
    }
}

/// What the operator can do while it runs: emit, read time, set timers, log.
///
/// Emitted records are buffered in the guest and handed to the host in one call when
/// the current `process`, `on_timer` or `process_window` call returns.
///
/// A record emitted unchanged — the key, value and timestamp of the input record being
/// processed — is not re-encoded: the host is told its index (`collector.forward`) and
/// passes its own copy on, sharing the whole batch when every record goes through.
pub struct Context {
    main: Vec<u8>,
    /// Indices of input records forwarded since `main` was last handed over.
    forwarded: Vec<u32>,
    /// The input record being processed (`process`, `process_broadcast`).
    current: Option<CurrentInput>,
    side: BTreeMap<String, Vec<u8>>,
}

/// Where the input record being processed lies, to recognise it when it is emitted.
#[derive(Clone, Copy)]
struct CurrentInput {
    index: u32,
    key: Option<(usize, usize)>,
    value: (usize, usize),
    timestamp: i64,
}

impl CurrentInput {
    fn new(index: u32, record: &Record<'_>) -> Self {
        CurrentInput { index, key: record.key.map(span), value: span(record.value), timestamp: record.timestamp }
    }

    /// Whether these are the input record's own bytes (the same memory, so the same record).
    fn is(&self, key: Option<&[u8]>, value: &[u8], timestamp: i64) -> bool {
        self.timestamp == timestamp && self.value == span(value) && self.key == key.map(span)
    }
}

fn span(bytes: &[u8]) -> (usize, usize) {
    (bytes.as_ptr() as usize, bytes.len())
}

impl Context {
    fn new() -> Self {
        Context { main: Vec::new(), forwarded: Vec::new(), current: None, side: BTreeMap::new() }
    }

    /// Emit a record with an optional key, raw value bytes and event timestamp.
    ///
    /// Emitting the input record itself (`ctx.emit(record.key, record.value,
    /// record.timestamp)`) forwards it without re-encoding; the output is the same.
    pub fn emit(&mut self, key: Option<&[u8]>, value: &[u8], timestamp: i64) {
        if let Some(current) = self.current
            && current.is(key, value, timestamp)
        {
            if !self.main.is_empty() {
                wit::collector::emit(&self.main);
                self.main.clear();
            }
            self.forwarded.push(current.index);
            return;
        }
        self.flush_forwarded();
        encode_record(&mut self.main, key, value, timestamp);
    }

    /// Hand the pending forwards to the host (before anything emitted after them).
    fn flush_forwarded(&mut self) {
        if !self.forwarded.is_empty() {
            wit::collector::forward(&self.forwarded);
            self.forwarded.clear();
        }
    }

    /// Emit `value` serialized as JSON, without a key.
    pub fn emit_json<T: Serialize + ?Sized>(&mut self, value: &T, timestamp: i64) -> Result<()> {
        let bytes = serde_json::to_vec(value)?;
        self.emit(None, &bytes, timestamp);
        Ok(())
    }

    /// Emit a record to the side output `tag` (addressed as `uid.tag` in job specs).
    pub fn emit_to(&mut self, tag: &str, key: Option<&[u8]>, value: &[u8], timestamp: i64) {
        let buf = self.side.entry(tag.to_owned()).or_default();
        encode_record(buf, key, value, timestamp);
    }

    /// Emit `value` as JSON to the side output `tag`.
    pub fn emit_json_to<T: Serialize + ?Sized>(&mut self, tag: &str, value: &T, timestamp: i64) -> Result<()> {
        let bytes = serde_json::to_vec(value)?;
        self.emit_to(tag, None, &bytes, timestamp);
        Ok(())
    }

    /// The current key (of the record, timer or window being handled).
    pub fn current_key(&self) -> Option<Vec<u8>> {
        sync_current_record();
        wit::context::current_key()
    }

    /// The current watermark in ms (`i64::MIN` before the first one).
    pub fn current_watermark(&self) -> i64 {
        wit::timers::current_watermark()
    }

    /// The host's processing time in ms since the Unix epoch.
    pub fn current_processing_time(&self) -> i64 {
        wit::timers::current_processing_time()
    }

    /// Register an event-time timer for the current key.
    pub fn register_event_time_timer(&mut self, timestamp: i64) {
        sync_current_record();
        wit::timers::register(wit::types::TimeDomain::EventTime, timestamp);
    }

    /// Delete the current key's event-time timer at `timestamp`.
    pub fn delete_event_time_timer(&mut self, timestamp: i64) {
        sync_current_record();
        wit::timers::delete(wit::types::TimeDomain::EventTime, timestamp);
    }

    /// Register a processing-time timer for the current key.
    pub fn register_processing_time_timer(&mut self, timestamp: i64) {
        sync_current_record();
        wit::timers::register(wit::types::TimeDomain::ProcessingTime, timestamp);
    }

    /// Delete the current key's processing-time timer at `timestamp`.
    pub fn delete_processing_time_timer(&mut self, timestamp: i64) {
        sync_current_record();
        wit::timers::delete(wit::types::TimeDomain::ProcessingTime, timestamp);
    }

    /// This instance's index among the operator's parallel instances.
    pub fn subtask_index(&self) -> u32 {
        wit::context::subtask_index()
    }

    /// How many parallel instances the operator has.
    pub fn parallelism(&self) -> u32 {
        wit::context::parallelism()
    }

    /// How many times the job restarted after a failure in this run (0 at first).
    pub fn attempt_number(&self) -> u32 {
        wit::context::attempt_number()
    }

    /// The operator's `uid` in the job spec.
    pub fn operator_uid(&self) -> String {
        wit::context::operator_uid()
    }

    /// Log at info level into the host's logs.
    pub fn log_info(&self, message: &str) {
        wit::context::log(wit::types::LogLevel::Info, message);
    }

    /// Log at warn level into the host's logs.
    pub fn log_warn(&self, message: &str) {
        wit::context::log(wit::types::LogLevel::Warn, message);
    }

    /// Log at debug level into the host's logs.
    pub fn log_debug(&self, message: &str) {
        wit::context::log(wit::types::LogLevel::Debug, message);
    }

    fn flush(&mut self) {
        self.current = None;
        self.flush_forwarded();
        if !self.main.is_empty() {
            wit::collector::emit(&self.main);
            self.main.clear();
        }
        for (tag, buf) in self.side.iter_mut() {
            if !buf.is_empty() {
                wit::collector::emit_to(tag, buf);
                buf.clear();
            }
        }
    }
}

thread_local! {
    /// The batch index of the record being processed, not yet announced to the host.
    static PENDING_RECORD: std::cell::Cell<Option<u32>> = const { std::cell::Cell::new(None) };
}

/// Tell the host which record is current, once, and only when keyed state, timers or
/// the key are actually used: a stateless operator pays no host call per record.
pub(crate) fn sync_current_record() {
    if let Some(i) = PENDING_RECORD.with(|p| p.take()) {
        wit::context::set_current_record(i);
    }
}

pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Serializing plain data types to JSON cannot fail; a type whose `Serialize`
    // errors is a bug in the operator, and trapping surfaces it with the message.
    serde_json::to_vec(value).unwrap_or_else(|e| panic!("rivulet-sdk: cannot encode state: {e}"))
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> T {
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("rivulet-sdk: cannot decode {what}: {e}"))
}

/// The stored form of one state entry, by kind of state (see [`StateEntry`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateValue {
    /// A [`ValueState`]'s value (JSON bytes as the SDK wrote them).
    Value(Vec<u8>),
    /// A [`ListState`]'s elements.
    List(Vec<Vec<u8>>),
    /// One entry of a [`MapState`]: (user key, value).
    MapEntry(Vec<u8>, Vec<u8>),
}

/// One entry of keyed state written by an older version of an operator, handed to
/// [`Operator::migrate_state`] when a job starts from a savepoint with a new version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateEntry {
    /// The state's name.
    pub state: String,
    /// The key the entry belongs to.
    pub key: Vec<u8>,
    /// What is stored.
    pub value: StateValue,
}

impl StateEntry {
    /// A value state's entry, decoded from the SDK's JSON (`None` for other kinds).
    pub fn value_json<T: DeserializeOwned>(&self) -> Option<Result<T>> {
        match &self.value {
            StateValue::Value(v) => Some(serde_json::from_slice(v).map_err(Error::from)),
            _ => None,
        }
    }

    /// A value-state entry holding `value` as JSON.
    pub fn new_value<T: Serialize + ?Sized>(state: &str, key: Vec<u8>, value: &T) -> Result<StateEntry> {
        Ok(StateEntry { state: state.to_owned(), key, value: StateValue::Value(serde_json::to_vec(value)?) })
    }
}

/// A stream operator. Implement this trait and call [`export_operator!`].
///
/// Only [`Operator::open`] is required, and the handlers for what the job spec gives the
/// operator: [`Operator::process`] for one input (or [`Operator::process_input`] to
/// tell several apart), [`Operator::process_window`] or [`Operator::co_group`] for a
/// `window`, [`Operator::join`] for an `interval_join`, [`Operator::process_broadcast`]
/// for a broadcast input. The rest default to doing nothing.
pub trait Operator: Sized + 'static {
    /// The version of this operator's state format.
    const STATE_VERSION: u32 = 1;

    /// Create the operator; declare state handles here.
    fn open(ctx: &mut Context, config: &Config) -> Result<Self>;

    /// Handle one record. For keyed inputs, state and timers are scoped to its key.
    fn process(&mut self, ctx: &mut Context, record: Record<'_>) -> Result<()> {
        let _ = (ctx, record);
        Err(Error::msg("this operator does not implement process"))
    }

    /// Handle one record of a (non-broadcast) input; by default [`Operator::process`].
    fn process_input(&mut self, ctx: &mut Context, input: &Input, record: Record<'_>) -> Result<()> {
        let _ = input;
        self.process(ctx, record)
    }

    /// Handle one record of a broadcast input: every instance gets every record and may
    /// change [`BroadcastMapState`]s; there is no current key.
    fn process_broadcast(&mut self, ctx: &mut Context, input: &Input, record: Record<'_>) -> Result<()> {
        let _ = (ctx, record);
        Err(Error::msg(format!("this operator does not implement process_broadcast (broadcast input '{}')", input.name)))
    }

    /// Handle the records of one fired window of the current key (one input).
    fn process_window(&mut self, ctx: &mut Context, window: Window, records: Vec<Record<'_>>) -> Result<()> {
        let _ = (ctx, window, records);
        Err(Error::msg("this operator does not implement process_window"))
    }

    /// Handle one fired window of the current key with its records per input (a window
    /// co-group or join); by default, for one input, [`Operator::process_window`].
    fn co_group(&mut self, ctx: &mut Context, window: Window, inputs: CoGroup<'_>) -> Result<()> {
        match inputs.inputs.len() {
            1 => {
                let records = inputs.inputs.into_iter().next().unwrap_or_default();
                self.process_window(ctx, window, records)
            }
            n => Err(Error::msg(format!("this operator has {n} inputs and a window but does not implement co_group"))),
        }
    }

    /// Handle one pair found by the host's interval join: a record of the left input
    /// (input 0) and one of the right input with the same key, in the spec's interval.
    /// State and timers are scoped to the pair's key.
    fn join(&mut self, ctx: &mut Context, left: Record<'_>, right: Record<'_>) -> Result<()> {
        let _ = (ctx, left, right);
        Err(Error::msg("this operator does not implement join"))
    }

    /// A timer of the current key fired.
    fn on_timer(&mut self, ctx: &mut Context, timestamp: i64, domain: TimeDomain) -> Result<()> {
        let _ = (ctx, timestamp, domain);
        Ok(())
    }

    /// The watermark advanced.
    fn on_watermark(&mut self, ctx: &mut Context, watermark: i64) -> Result<()> {
        let _ = (ctx, watermark);
        Ok(())
    }

    /// The input ended or the job stops.
    fn close(&mut self, ctx: &mut Context) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// Upgrade one state entry written under state format `from_version` (a job started
    /// from a savepoint of an older version). Return the entries to keep instead: the
    /// default keeps the entry as it is; an empty vector drops it.
    fn migrate_state(from_version: u32, entry: StateEntry) -> Result<Vec<StateEntry>> {
        let _ = from_version;
        Ok(vec![entry])
    }
}

#[doc(hidden)]
pub mod __runtime {
    //! Glue between the generated export trait and [`Operator`]; used by [`export_operator!`].
    use super::*;
    use std::thread::LocalKey;

    /// Per-instance storage the export macro declares.
    pub type Slot<O> = LocalKey<RefCell<Option<(O, Context)>>>;

    fn with<O: Operator>(slot: &'static Slot<O>, f: impl FnOnce(&mut O, &mut Context) -> Result<()>) -> std::result::Result<(), String> {
        PENDING_RECORD.with(|p| p.set(None));
        crate::state_cache::enter_unkeyed();
        slot.with(|cell| {
            let mut guard = cell.borrow_mut();
            let Some((op, ctx)) = guard.as_mut() else {
                return Err("operator called before open".to_owned());
            };
            let result = f(op, ctx);
            crate::state_cache::write_back();
            ctx.flush();
            result.map_err(|e| e.0)
        })
    }

    pub fn open<O: Operator>(slot: &'static Slot<O>, config: String) -> std::result::Result<(), String> {
        let json = if config.trim().is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&config).map_err(|e| format!("invalid operator config: {e}"))?
        };
        let mut ctx = Context::new();
        let op = O::open(&mut ctx, &Config { json }).map_err(|e| e.0)?;
        ctx.flush();
        slot.with(|cell| *cell.borrow_mut() = Some((op, ctx)));
        Ok(())
    }

    pub fn process<O: Operator>(slot: &'static Slot<O>, index: u32, batch: Vec<u8>) -> std::result::Result<(), String> {
        with(slot, |op, ctx| {
            let input = input(index);
            // Most operators emit about what they read: size the buffer once.
            ctx.main.reserve(batch.len());
            for (i, record) in RecordIter::new(&batch).enumerate() {
                let record = record?;
                PENDING_RECORD.with(|p| p.set(Some(i as u32)));
                crate::state_cache::enter_record(i as u32, record.key);
                ctx.current = Some(CurrentInput::new(i as u32, &record));
                op.process_input(ctx, &input, record)?;
            }
            PENDING_RECORD.with(|p| p.set(None));
            Ok(())
        })
    }

    pub fn process_broadcast<O: Operator>(slot: &'static Slot<O>, index: u32, batch: Vec<u8>) -> std::result::Result<(), String> {
        with(slot, |op, ctx| {
            let input = input(index);
            for (i, record) in RecordIter::new(&batch).enumerate() {
                let record = record?;
                ctx.current = Some(CurrentInput::new(i as u32, &record));
                op.process_broadcast(ctx, &input, record)?;
            }
            Ok(())
        })
    }

    pub fn process_window<O: Operator>(slot: &'static Slot<O>, start: i64, end: i64, batches: Vec<Vec<u8>>) -> std::result::Result<(), String> {
        with(slot, |op, ctx| {
            let mut inputs = Vec::with_capacity(batches.len());
            for b in &batches {
                inputs.push(RecordIter::new(b).collect::<std::result::Result<Vec<_>, _>>()?);
            }
            crate::state_cache::enter_call();
            op.co_group(ctx, Window { start, end }, CoGroup { inputs })
        })
    }

    pub fn process_join<O: Operator>(slot: &'static Slot<O>, left: Vec<u8>, right: Vec<u8>) -> std::result::Result<(), String> {
        with(slot, |op, ctx| {
            for (i, (l, r)) in RecordIter::new(&left).zip(RecordIter::new(&right)).enumerate() {
                let (l, r) = (l?, r?);
                PENDING_RECORD.with(|p| p.set(Some(i as u32)));
                crate::state_cache::enter_record(i as u32, l.key);
                op.join(ctx, l, r)?;
            }
            PENDING_RECORD.with(|p| p.set(None));
            Ok(())
        })
    }

    pub fn on_timer<O: Operator>(slot: &'static Slot<O>, timestamp: i64, domain: wit::types::TimeDomain) -> std::result::Result<(), String> {
        with(slot, |op, ctx| {
            crate::state_cache::enter_call();
            op.on_timer(ctx, timestamp, domain.into())
        })
    }

    pub fn on_watermark<O: Operator>(slot: &'static Slot<O>, watermark: i64) -> std::result::Result<(), String> {
        with(slot, |op, ctx| op.on_watermark(ctx, watermark))
    }

    pub fn close<O: Operator>(slot: &'static Slot<O>) -> std::result::Result<(), String> {
        with(slot, |op, ctx| op.close(ctx))
    }

    pub fn migrate_state<O: Operator>(
        from_version: u32,
        entries: Vec<wit::types::StateEntry>,
    ) -> std::result::Result<Vec<wit::types::StateEntry>, String> {
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let value = match e.value {
                wit::types::StateValue::Value(v) => StateValue::Value(v),
                wit::types::StateValue::List(l) => StateValue::List(l),
                wit::types::StateValue::MapEntry((k, v)) => StateValue::MapEntry(k, v),
            };
            for m in O::migrate_state(from_version, StateEntry { state: e.state, key: e.key, value }).map_err(|e| e.0)? {
                let value = match m.value {
                    StateValue::Value(v) => wit::types::StateValue::Value(v),
                    StateValue::List(l) => wit::types::StateValue::List(l),
                    StateValue::MapEntry(k, v) => wit::types::StateValue::MapEntry((k, v)),
                };
                out.push(wit::types::StateEntry { state: m.state, key: m.key, value });
            }
        }
        Ok(out)
    }
}

/// Export a type implementing [`Operator`] as this component's operator.
///
/// Call it once, at the crate root of a `cdylib` built for `wasm32-wasip2`.
#[macro_export]
macro_rules! export_operator {
    ($op:ty) => {
        #[doc(hidden)]
        pub struct __RivuletExport;

        ::std::thread_local! {
            static __RIVULET_INSTANCE: ::std::cell::RefCell<::std::option::Option<($op, $crate::Context)>> =
                const { ::std::cell::RefCell::new(::std::option::Option::None) };
        }

        impl $crate::__private::exports::rivulet::operator::operator::Guest for __RivuletExport {
            fn open(config: ::std::string::String) -> ::std::result::Result<(), ::std::string::String> {
                $crate::__runtime::open::<$op>(&__RIVULET_INSTANCE, config)
            }
            fn process(input: u32, batch: ::std::vec::Vec<u8>) -> ::std::result::Result<(), ::std::string::String> {
                $crate::__runtime::process::<$op>(&__RIVULET_INSTANCE, input, batch)
            }
            fn process_broadcast(input: u32, batch: ::std::vec::Vec<u8>) -> ::std::result::Result<(), ::std::string::String> {
                $crate::__runtime::process_broadcast::<$op>(&__RIVULET_INSTANCE, input, batch)
            }
            fn process_window(
                window: $crate::__private::rivulet::operator::types::Window,
                inputs: ::std::vec::Vec<::std::vec::Vec<u8>>,
            ) -> ::std::result::Result<(), ::std::string::String> {
                $crate::__runtime::process_window::<$op>(&__RIVULET_INSTANCE, window.start, window.end, inputs)
            }
            fn process_join(left: ::std::vec::Vec<u8>, right: ::std::vec::Vec<u8>) -> ::std::result::Result<(), ::std::string::String> {
                $crate::__runtime::process_join::<$op>(&__RIVULET_INSTANCE, left, right)
            }
            fn on_timer(
                timestamp: i64,
                domain: $crate::__private::rivulet::operator::types::TimeDomain,
            ) -> ::std::result::Result<(), ::std::string::String> {
                $crate::__runtime::on_timer::<$op>(&__RIVULET_INSTANCE, timestamp, domain)
            }
            fn on_watermark(watermark: i64) -> ::std::result::Result<(), ::std::string::String> {
                $crate::__runtime::on_watermark::<$op>(&__RIVULET_INSTANCE, watermark)
            }
            fn close() -> ::std::result::Result<(), ::std::string::String> {
                $crate::__runtime::close::<$op>(&__RIVULET_INSTANCE)
            }
            fn state_version() -> u32 {
                <$op as $crate::Operator>::STATE_VERSION
            }
            fn migrate_state(
                from_version: u32,
                entries: ::std::vec::Vec<$crate::__private::rivulet::operator::types::StateEntry>,
            ) -> ::std::result::Result<::std::vec::Vec<$crate::__private::rivulet::operator::types::StateEntry>, ::std::string::String> {
                $crate::__runtime::migrate_state::<$op>(from_version, entries)
            }
        }

        $crate::__private::__export_rivulet_operator!(__RivuletExport with_types_in $crate::__private);
    };
}
