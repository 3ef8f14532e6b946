//! The range of every number in a spec that sizes something: instances, memory,
//! batches, intervals, timeouts, retries. A number outside its range is an error that
//! names the field and the range, before anything is allocated or started.

use std::ops::RangeInclusive;

use crate::error::SpecError;
use crate::spec::{JobSpec, SinkSpec, SourceSpec};

/// The largest number of key groups (Flink's bound too); parallelism cannot exceed it.
pub const MAX_KEY_GROUPS: u16 = 32_768;
/// Bytes of one record from a source.
pub const RECORD_BYTES: RangeInclusive<u64> = 1..=(1 << 30);
/// The largest record a source produces unless the spec says otherwise.
pub const DEFAULT_MAX_RECORD_BYTES: u64 = 16 << 20;
/// Records per batch.
pub const BATCH_SIZE: RangeInclusive<u64> = 1..=65_536;
/// Milliseconds between checkpoints: below 100 ms a job does little but checkpoint.
pub const CHECKPOINT_INTERVAL_MS: RangeInclusive<u64> = 100..=86_400_000;
/// Milliseconds a checkpoint may take.
pub const CHECKPOINT_TIMEOUT_MS: RangeInclusive<u64> = 100..=86_400_000;
/// Complete checkpoints kept.
pub const CHECKPOINTS_RETAINED: RangeInclusive<u64> = 1..=1_000;
/// Consecutive failed checkpoints tolerated.
pub const TOLERABLE_CHECKPOINT_FAILURES: RangeInclusive<u64> = 0..=1_000;
/// Restarts after failures.
pub const RESTART_ATTEMPTS: RangeInclusive<u64> = 0..=1_000;
/// Milliseconds before a restart.
pub const RESTART_DELAY_MS: RangeInclusive<u64> = 0..=3_600_000;
/// Linear memory of one guest instance in MiB (a 32-bit guest addresses 4 GiB).
pub const GUEST_MEMORY_MB: RangeInclusive<u64> = 1..=4_096;
/// Milliseconds one call into a guest may take.
pub const GUEST_CALL_TIMEOUT_MS: RangeInclusive<u64> = 1..=3_600_000;
/// Rows per PostgreSQL statement.
pub const POSTGRES_BATCH: RangeInclusive<u64> = 1..=100_000;
/// Bytes after which the object sink rolls a part (1 KiB to 4 GiB).
pub const ROLL_SIZE_BYTES: RangeInclusive<u64> = 1_024..=(4 << 30);
/// Milliseconds after which the object sink rolls a part.
pub const ROLL_INTERVAL_MS: RangeInclusive<u64> = 10..=86_400_000;
/// Distinct keys of a generator.
pub const GENERATOR_KEYS: RangeInclusive<u64> = 1..=u32::MAX as u64;

/// Check every number of `spec` against its range.
pub fn check(spec: &JobSpec) -> Result<(), SpecError> {
    let max_par = u64::from(spec.max_parallelism);
    within("max_parallelism", max_par, 1..=u64::from(MAX_KEY_GROUPS))?;
    if let Some(p) = spec.parallelism {
        within("parallelism", p.into(), 1..=max_par)?;
    }
    if let Some(b) = spec.batch_size {
        within("batch_size", b as u64, BATCH_SIZE)?;
    }
    opt("max_record_bytes", spec.max_record_bytes, RECORD_BYTES)?;
    if let Some(c) = &spec.checkpoint {
        opt("checkpoint.interval_ms", c.interval_ms, CHECKPOINT_INTERVAL_MS)?;
        opt("checkpoint.timeout_ms", c.timeout_ms, CHECKPOINT_TIMEOUT_MS)?;
        opt("checkpoint.retain", c.retain.map(|r| r as u64), CHECKPOINTS_RETAINED)?;
        opt("checkpoint.tolerable_failures", c.tolerable_failures.map(u64::from), TOLERABLE_CHECKPOINT_FAILURES)?;
    }
    if let Some(r) = &spec.restart {
        within("restart.attempts", r.attempts.into(), RESTART_ATTEMPTS)?;
        within("restart.delay_ms", r.delay_ms, RESTART_DELAY_MS)?;
    }
    for (i, s) in spec.sources.iter().enumerate() {
        let at = format!("sources[{i}] (id '{}')", s.id());
        within(&format!("{at}.parallelism"), s.parallelism().into(), 1..=max_par)?;
        if let SourceSpec::Generator(g) = s {
            opt(&format!("{at}.keys"), g.keys, GENERATOR_KEYS)?;
        }
    }
    for (i, o) in spec.operators.iter().enumerate() {
        let at = format!("operators[{i}] (uid '{}')", o.uid);
        if let Some(p) = o.parallelism {
            within(&format!("{at}.parallelism"), p.into(), 1..=max_par)?;
        }
        if let Some(l) = &o.limits {
            opt(&format!("{at}.limits.memory_mb"), l.memory_mb, GUEST_MEMORY_MB)?;
            opt(&format!("{at}.limits.call_timeout_ms"), l.call_timeout_ms, GUEST_CALL_TIMEOUT_MS)?;
        }
    }
    for (i, s) in spec.sinks.iter().enumerate() {
        let at = format!("sinks[{i}] (id '{}')", s.id());
        match s {
            SinkSpec::Postgres(p) => opt(&format!("{at}.batch_size"), p.batch_size.map(|b| b as u64), POSTGRES_BATCH)?,
            SinkSpec::Objects(o) => {
                opt(&format!("{at}.roll_size_bytes"), o.roll_size_bytes, ROLL_SIZE_BYTES)?;
                opt(&format!("{at}.roll_interval_ms"), o.roll_interval_ms, ROLL_INTERVAL_MS)?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn opt(at: &str, v: Option<u64>, range: RangeInclusive<u64>) -> Result<(), SpecError> {
    v.map_or(Ok(()), |v| within(at, v, range))
}

fn within(at: &str, v: u64, range: RangeInclusive<u64>) -> Result<(), SpecError> {
    if range.contains(&v) { Ok(()) } else { Err(SpecError::invalid(at, format!("{v} is out of range: allowed {}..={}", range.start(), range.end()))) }
}

#[cfg(test)]
mod tests {
    use crate::{JobGraph, JobSpec, Params};

    fn build(yaml: &str) -> Result<JobGraph, crate::SpecError> {
        let spec = JobSpec::parse(yaml, "t.yaml", &Params::default())?;
        JobGraph::build(&spec, std::path::Path::new("."), None)
    }

    #[test]
    fn numbers_that_size_something_are_bounded_and_named() {
        let cases = [
            ("sources:\n  - {id: g, type: generator, parallelism: 1000000000}\n", "sources[0] (id 'g').parallelism", "1000000000"),
            ("checkpoint: {interval_ms: 0}\n", "checkpoint.interval_ms", "allowed 100..="),
            ("operators:\n  - {uid: a, plugin: a.wasm, inputs: [g], limits: {memory_mb: 1000000000000}}\n", "limits.memory_mb", "allowed 1..=4096"),
            ("operators:\n  - {uid: a, plugin: a.wasm, inputs: [g], limits: {call_timeout_ms: 0}}\n", "limits.call_timeout_ms", "0 is out of range"),
            ("restart: {attempts: 4000000000, delay_ms: 1}\n", "restart.attempts", "allowed 0..=1000"),
            ("restart: {attempts: 3, delay_ms: 100000000000}\n", "restart.delay_ms", "out of range"),
            ("batch_size: 0\n", "batch_size", "allowed 1..="),
            ("max_parallelism: 0\n", "max_parallelism", "allowed 1..=32768"),
            ("parallelism: 129\n", "parallelism", "allowed 1..=128"),
        ];
        for (extra, field, needle) in cases {
            let sources = if extra.starts_with("sources") { "" } else { "sources:\n  - {id: g, type: generator, count: 10}\n" };
            let yaml = format!("name: j\n{sources}{extra}sinks:\n  - {{id: o, type: stdout, inputs: [g]}}\n");
            let e = build(&yaml).expect_err(field).to_string();
            assert!(e.contains(field) && e.contains(needle), "{field}: {e}");
        }
        let ok = "name: j\nsources:\n  - {id: g, type: generator, count: 10, parallelism: 4}\ncheckpoint: {interval_ms: 100}\n\
                  restart: {attempts: 3, delay_ms: 10}\nsinks:\n  - {id: o, type: stdout, inputs: [g]}\n";
        assert!(build(ok).is_ok());
    }
}
