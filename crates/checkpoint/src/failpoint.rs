//! Crash points for fault tests: `RIVULET_FAILPOINTS="before-manifest=2,after-checkpoint=3"`
//! makes the process kill itself with SIGKILL the 2nd time it is about to write a
//! manifest, or right after its 3rd snapshot completes — a real `kill -9` at an exact
//! moment of the protocol, which a test cannot time from outside.
//!
//! Only with the `fault-injection` feature (test builds); otherwise [`hit`] does nothing
//! and the variable is never read.

/// Count a pass through `name`; on the configured pass, die by SIGKILL.
#[cfg(feature = "fault-injection")]
pub fn hit(name: &str) {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};

    static POINTS: OnceLock<Mutex<HashMap<String, u64>>> = OnceLock::new();
    let points = POINTS.get_or_init(|| {
        let spec = std::env::var("RIVULET_FAILPOINTS").unwrap_or_default();
        let map = spec
            .split(',')
            .filter_map(|p| {
                let (name, n) = p.split_once('=')?;
                Some((name.trim().to_owned(), n.trim().parse().ok()?))
            })
            .collect();
        Mutex::new(map)
    });
    let Ok(mut p) = points.lock() else { return };
    let Some(left) = p.get_mut(name) else { return };
    *left = left.saturating_sub(1);
    if *left == 0 {
        eprintln!("[rivulet] failpoint '{name}': killing the process (SIGKILL)");
        kill_self();
    }
}

/// Without the `fault-injection` feature a failpoint costs nothing.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn hit(_name: &str) {}

#[cfg(all(feature = "fault-injection", unix))]
#[allow(unsafe_code, reason = "a deliberate SIGKILL of this process for fault tests")]
fn kill_self() {
    // SAFETY: getpid and kill have no memory-safety preconditions.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
}

#[cfg(all(feature = "fault-injection", not(unix)))]
fn kill_self() {
    std::process::abort();
}
