//! One fixture per bad behaviour: each fails its job with an error naming the
//! operator, the plugin and the reason, while this process stays up.

use rivulet_plugin::FailureKind;
use rivulet_plugin::PluginError;
use rivulet_runtime::JobError;

use crate::support::*;

fn job_with(plugin: &std::path::Path, limits: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("in.jsonl"), "{\"k\":\"a\",\"t\":1}\n{\"k\":\"b\",\"t\":2}\n").expect("write");
    let yaml = format!(
        "name: bad\nsources:\n  - {{id: in, type: file, path: in.jsonl, format: jsonl}}\noperators:\n  - uid: bad-op\n    plugin: {}\n    inputs: [in]\n    key_by: {{field: k}}\n{limits}sinks:\n  - {{id: out, type: file, path: out.jsonl, inputs: [bad-op]}}\n",
        plugin.display()
    );
    (dir, yaml)
}

fn guest_failure(name: &str, limits: &str) -> rivulet_plugin::GuestFailure {
    let (dir, yaml) = job_with(&fixture(name), limits);
    match run_spec(&yaml, dir.path(), &[], Some(1), BACKENDS[0]) {
        Err(JobError::Guest(f)) => {
            assert_eq!(f.operator, "bad-op");
            assert!(f.plugin.contains(name), "plugin named in {f}");
            f
        }
        other => panic!("{name}: expected a guest failure, got {other:?}"),
    }
}

/// A healthy job still runs afterwards in the same process.
fn process_still_works() {
    let (dir, yaml) = job_with(&fixture("fixture_test_ops"), "    config: {mode: side}\n");
    run_spec(&yaml, dir.path(), &[], Some(1), BACKENDS[0]).expect("a good job after a bad one");
    assert_eq!(read_jsonl(&dir.path().join("out.jsonl")).len(), 2);
}

#[test]
fn trap_names_operator_plugin_and_message() {
    let f = guest_failure("fixture_trap", "");
    assert_eq!(f.kind, FailureKind::Trap);
    assert!(f.message.contains("fixture: deliberate trap"), "guest's panic message in {f}");
    process_still_works();
}

#[test]
fn keyed_state_without_key_by_says_so_with_the_guest_backtrace() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("in.jsonl"), "{\"key\":\"a\"}\n").expect("write");
    let yaml = format!(
        "name: unkeyed\nsources:\n  - {{id: in, type: file, path: in.jsonl, format: jsonl}}\noperators:\n  - {{uid: counter, plugin: {}, inputs: [in]}}\nsinks:\n  - {{id: out, type: file, path: out, inputs: [counter]}}\n",
        wasm("plugins-examples/counter-v1/counter_v1.wasm").display()
    );
    match run_spec(&yaml, dir.path(), &[], Some(1), BACKENDS[0]) {
        Err(JobError::Guest(f)) => {
            assert_eq!(f.kind, FailureKind::Trap, "{f}");
            assert!(f.message.contains("keyed state and timers need a keyed input (set `key_by` on operator 'counter')"), "{f}");
            assert!(f.message.contains("guest backtrace:"), "where in the guest: {f}");
        }
        other => panic!("expected a guest failure, got {other:?}"),
    }
}

#[test]
fn infinite_loop_hits_the_call_deadline() {
    let started = std::time::Instant::now();
    let f = guest_failure("fixture_infinite_loop", "    limits: {call_timeout_ms: 300}\n");
    assert_eq!(f.kind, FailureKind::Timeout, "{f}");
    assert!(f.message.contains("300 ms"), "{f}");
    assert!(started.elapsed().as_secs() < 60, "no hang");
    process_still_works();
}

#[test]
fn memory_bomb_hits_the_memory_cap() {
    let f = guest_failure("fixture_memory_bomb", "    limits: {memory_mb: 32}\n");
    assert_eq!(f.kind, FailureKind::MemoryLimit, "{f}");
    assert!(f.message.contains("32 MiB"), "{f}");
    process_still_works();
}

#[test]
fn guest_error_is_reported() {
    let f = guest_failure("fixture_guest_error", "");
    assert_eq!(f.kind, FailureKind::GuestError);
    assert!(f.message.contains("fixture: bad record"), "{f}");
}

fn plugin_error(bytes: &[u8], name: &str) -> PluginError {
    engine().load_bytes(name, bytes).expect_err("must be rejected")
}

#[test]
fn wrong_world_is_named() {
    let bytes = std::fs::read(fixture("fixture_wrong_world")).expect("read");
    let e = plugin_error(&bytes, "wrong-world");
    assert!(matches!(e, PluginError::WorldMismatch { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("wrong-world") && msg.contains("rivulet:operator"), "{msg}");
    // And in a job: the job fails before running, naming the plugin.
    let (dir, yaml) = job_with(&fixture("fixture_wrong_world"), "");
    let e = run_spec(&yaml, dir.path(), &[], Some(1), BACKENDS[0]).expect_err("rejected");
    assert!(e.to_string().contains("does not match the world"), "{e}");
}

#[test]
fn core_module_and_random_bytes_are_named() {
    // The smallest valid core module: magic and version 1.
    let e = plugin_error(b"\0asm\x01\0\0\0", "core");
    assert!(matches!(e, PluginError::CoreModule { .. }), "{e}");
    assert!(e.to_string().contains("core WebAssembly module, not a component"));
    let mut rng = Rng(9);
    let junk: Vec<u8> = (0..4096).map(|_| rng.next() as u8).collect();
    let e = plugin_error(&junk, "junk");
    assert!(matches!(e, PluginError::NotWasm { .. }), "{e}");
    // A component header followed by garbage is invalid, with the parser's reason.
    let mut broken = b"\0asm\x0d\0\x01\0".to_vec();
    broken.extend_from_slice(&junk[..64]);
    let e = plugin_error(&broken, "broken");
    assert!(matches!(e, PluginError::Invalid { .. }), "{e}");
}
