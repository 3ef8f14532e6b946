//! Uploads and other bad inputs: a small component and a cache hit are accepted while
//! large components compile (their lane, threads and CPU are their own); a rejected
//! upload leaves no file behind, neither in the plugin store nor in the compile cache;
//! a plugin path that is a device or too large, and a restore location that is no
//! snapshot, are clear errors at once (no endless read, no restarts).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::fault::rivulet;
use crate::server::{Server, TOKEN, counter_v1};
use crate::support::{fixture, wasm};

/// A server on a data dir and a compile cache of its own (both below `dir`).
fn server(dir: &Path) -> (Server, PathBuf, PathBuf) {
    let data = dir.join("data");
    let cache = dir.join("compile-cache");
    let cache_env = cache.to_string_lossy().into_owned();
    let mut srv = Server::launch(&data, Some(TOKEN), &[], &[("RIVULET_CACHE_DIR", cache_env.as_str())]);
    srv.wait_listening(Duration::from_secs(60));
    (srv, data, cache)
}

/// `bytes` (a component) with a custom section appended: a valid component with other
/// bytes, so it misses the compile cache and compiles afresh.
fn with_custom_section(bytes: &[u8], tag: &str) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    let name = format!("rivulet-test-{tag}");
    let mut payload = Vec::new();
    leb(name.len(), &mut payload);
    payload.extend_from_slice(name.as_bytes());
    let mut out = bytes.to_vec();
    out.push(0); // custom section
    leb(payload.len(), &mut out);
    out.extend_from_slice(&payload);
    out
}

/// Every file below `dir` (none when it does not exist).
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_below(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn small_uploads_and_cache_hits_never_wait_behind_large_compiles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (srv, _, _) = server(dir.path());
    let js = std::fs::read(wasm("plugins-examples/js-fraud-detection/js_fraud_detection.wasm")).expect("the JavaScript example");
    assert!(js.len() > 4 << 20, "the JavaScript component ({} bytes) must be a large one", js.len());
    let small = counter_v1();
    assert!(small.len() <= 4 << 20);

    // One large component compiled alone first: its re-upload later is a cache hit.
    let started = Instant::now();
    let (s, v) = srv.upload("big-warm", "1", js.clone());
    assert_eq!(s, 201, "{v}");
    let large_alone = started.elapsed();

    // Three other large components (other bytes: compiled afresh) uploaded at once, and
    // while they compile, a small component (then the same bytes again: a cache hit) and,
    // beside it, a cache hit of the large one.
    let begin = Instant::now();
    let upload = |name: &str, version: &str, bytes: Vec<u8>| {
        let started = Instant::now();
        let (s, v) = srv.upload(name, version, bytes);
        assert_eq!(s, 201, "{name}@{version}: {v}");
        (format!("{name}@{version}"), started.elapsed(), begin.elapsed())
    };
    let (large, others) = std::thread::scope(|scope| {
        let large: Vec<_> = (0..3)
            .map(|i| {
                let bytes = with_custom_section(&js, &i.to_string());
                scope.spawn(move || upload(&format!("big-{i}"), "1", bytes).2)
            })
            .collect();
        std::thread::sleep(Duration::from_millis(1500));
        let small = scope.spawn(|| [upload("small", "1", small.clone()), upload("small", "2", small.clone())]);
        let cache_hit = scope.spawn(|| upload("big-warm", "2", js.clone()));
        let mut others: Vec<_> = small.join().expect("small uploads").into();
        others.push(cache_hit.join().expect("cache hit"));
        let large: Vec<Duration> = large.into_iter().map(|h| h.join().expect("large upload")).collect();
        (large, others)
    });
    let first_large = large.iter().min().copied().expect("three large uploads");
    println!("one large compile alone: {large_alone:.2?}; three at once finished after {large:.2?}");
    for (what, took, at) in &others {
        println!("{what}: took {took:.2?}, done {at:.2?} after the large uploads began");
    }
    // Relative bounds: done before any large upload, in a fraction of their time (before
    // the fix, the small upload took 42 s of the first large one's 45 s, the cache hit
    // waited for a large compile's slot).
    for (what, took, at) in &others {
        assert!(
            *at < first_large && *took < first_large / 4,
            "{what} took {took:.2?} and finished {at:.2?} after the large uploads began, the first large one at {first_large:.2?}: it waited behind their compiles"
        );
    }
}

#[test]
fn a_rejected_upload_leaves_no_file_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (srv, data, cache) = server(dir.path());
    let store = data.join("plugins");
    // Components that compile but do not implement the operator world, one that asks
    // for an import the host lacks, and bytes that are no component.
    for (name, bytes, says) in [
        ("wrongworld", std::fs::read(fixture("fixture_wrong_world")).expect("fixture"), "does not match the world"),
        ("needs-import", std::fs::read(fixture("fixture_unknown_import")).expect("fixture"), "fixture:imports/secrets"),
        ("truncated", counter_v1()[..4096].to_vec(), "not a valid component"),
    ] {
        let (s, v) = srv.upload(name, "1", bytes);
        assert_eq!(s, 422, "{name}: {v}");
        assert!(v["error"].as_str().is_some_and(|e| e.contains(says)), "{name}: {v}");
        assert_eq!(files_below(&cache), Vec::<PathBuf>::new(), "{name}: a rejected upload left compiled code in the compile cache");
        assert_eq!(files_below(&store), Vec::<PathBuf>::new(), "{name}: a rejected upload left a file in the plugin store");
    }
    // The cache watched is the one the server compiles into.
    let (s, v) = srv.upload("counter", "1", counter_v1());
    assert_eq!(s, 201, "{v}");
    assert_eq!(files_below(&cache).len(), 1, "an accepted upload is cached: {:?}", files_below(&cache));
}

/// Run `cmd`, killed after `within` (then the test fails).
fn output_within(mut cmd: Command, within: Duration) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn rivulet");
    loop {
        if child.try_wait().expect("wait").is_some() {
            return (child.wait_with_output().expect("output"), started.elapsed());
        }
        if started.elapsed() > within {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!("{cmd:?} still ran after {within:?}; stderr: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A job reading `in.txt` through the operator `plugin` into `out`, in `dir`.
fn job_with_plugin(dir: &Path, plugin: &Path) -> PathBuf {
    std::fs::write(dir.join("in.txt"), "a\nb\n").expect("input");
    let job = dir.join(format!("job-{}.yaml", plugin.file_name().map_or("x".into(), |n| n.to_string_lossy().into_owned())));
    std::fs::write(
        &job,
        format!(
            "name: plugin-path\nsources:\n  - {{id: lines, type: file, path: in.txt, format: text}}\noperators:\n  - {{uid: op, plugin: '{}', inputs: [lines]}}\nsinks:\n  - {{id: out, type: file, path: out, inputs: [op]}}\n",
            plugin.display()
        ),
    )
    .expect("job");
    job
}

#[test]
fn plugin_paths_must_be_regular_files_of_bounded_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A sparse file past the 64 MiB limit (no disk used).
    let huge = dir.path().join("huge.wasm");
    std::fs::File::create(&huge).and_then(|f| f.set_len((64 << 20) + 1)).expect("sparse file");
    for (plugin, says) in
        [(PathBuf::from("/dev/zero"), "is not a regular file"), (dir.path().to_path_buf(), "is not a regular file"), (huge, "is larger than 64 MiB")]
    {
        let job = job_with_plugin(dir.path(), &plugin);
        let mut validate = rivulet();
        validate.arg("validate").arg(&job);
        let mut run = rivulet();
        run.arg("run").arg(&job).arg("--quiet").arg("--data-dir").arg(dir.path().join("data"));
        let mut inspect = rivulet();
        inspect.args(["plugin", "inspect"]).arg(&plugin);
        for (what, cmd) in [("validate", validate), ("run", run), ("plugin inspect", inspect)] {
            let (out, took) = output_within(cmd, Duration::from_secs(60));
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{what} {}: {err}", plugin.display());
            assert!(err.contains(&plugin.display().to_string()) && err.contains(says), "{what} {}: {err}", plugin.display());
            assert!(took < Duration::from_secs(20), "{what} {} took {took:?}", plugin.display());
        }
    }
}

#[test]
fn restoring_from_what_is_no_snapshot_fails_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("in.txt"), "a\nb\n").expect("input");
    let job = dir.path().join("job.yaml");
    std::fs::write(&job, "name: restore\nsources:\n  - {id: lines, type: file, path: in.txt, format: text}\nsinks:\n  - {id: out, type: file, path: out, inputs: [lines]}\n")
        .expect("job");
    let a_file = dir.path().join("in.txt");
    let missing = dir.path().join("chk-7");
    for location in [Path::new("/etc"), a_file.as_path(), missing.as_path()] {
        let mut cmd = rivulet();
        // A checkpoint location: the run would restart failed attempts (three times).
        cmd.arg("run").arg(&job).arg("--restore").arg(location).arg("--checkpoint-dir").arg(dir.path().join("chk"));
        cmd.arg("--data-dir").arg(dir.path().join("data"));
        let (out, took) = output_within(cmd, Duration::from_secs(60));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "--restore {}: {err}", location.display());
        assert!(
            err.contains(&format!("{}: it is not a checkpoint or savepoint", location.display())),
            "--restore {}: the error must name the location and say what is wrong: {err}",
            location.display()
        );
        assert!(!err.contains("restarting in"), "--restore {}: a restore that cannot succeed was retried: {err}", location.display());
        assert!(took < Duration::from_secs(10), "--restore {} took {took:?}: {err}", location.display());
    }
}
