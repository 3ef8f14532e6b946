//! Crash points for fault tests: `RIVULET_FAILPOINTS="before-manifest=2,after-checkpoint=3"`
//! makes the process kill itself with SIGKILL the 2nd time it is about to write a
//! manifest, or right after its 3rd snapshot completes — a real `kill -9` at an exact
//! moment of the protocol, which a test cannot time from outside.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::OnceLock;

fn points() -> &'static Mutex<HashMap<String, u64>> {
    static P: OnceLock<Mutex<HashMap<String, u64>>> = OnceLock::new();
    P.get_or_init(|| {
        let spec = std::env::var("RIVULET_FAILPOINTS").unwrap_or_default();
        let map = spec
            .split(',')
            .filter_map(|p| {
                let (name, n) = p.split_once('=')?;
                Some((name.trim().to_owned(), n.trim().parse().ok()?))
            })
            .collect();
        Mutex::new(map)
    })
}

/// Count a pass through `name`; on the configured pass, die by SIGKILL.
pub fn hit(name: &str) {
    let Ok(mut p) = points().lock() else { return };
    let Some(left) = p.get_mut(name) else { return };
    *left = left.saturating_sub(1);
    if *left == 0 {
        eprintln!("[rivulet] failpoint '{name}': killing the process (SIGKILL)");
        kill_self();
    }
}

#[cfg(unix)]
#[allow(unsafe_code, reason = "a deliberate SIGKILL of this process for fault tests")]
fn kill_self() {
    // SAFETY: getpid and kill have no memory-safety preconditions.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
}

#[cfg(not(unix))]
fn kill_self() {
    std::process::abort();
}
