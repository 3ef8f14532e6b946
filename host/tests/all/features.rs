//! Timers, keyed state, side outputs, generators and CSV, through the fixture guest.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::support::*;

fn write(dir: &std::path::Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write");
}

#[test]
fn event_and_processing_timers_fire_for_their_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "in.jsonl", "{\"k\":\"a\",\"t\":1000}\n{\"k\":\"b\",\"t\":1500}\n{\"k\":\"a\",\"t\":5000}\n");
    let yaml = format!(
        "name: timers\nsources:\n  - {{id: in, type: file, path: in.jsonl, format: jsonl, event_time: {{field: t, max_out_of_orderness_ms: 0}}}}\noperators:\n  - {{uid: t, plugin: {}, inputs: [in], key_by: {{field: k}}, config: {{mode: timers}}}}\nsinks:\n  - {{id: out, type: file, path: out.jsonl, inputs: [t]}}\n",
        fixture("fixture_test_ops").display()
    );
    for backend in BACKENDS {
        for p in [1, 2] {
            run_spec(&yaml, dir.path(), &[], Some(p), backend).expect("run");
            let rows = read_jsonl(&dir.path().join("out.jsonl"));
            let mut event: Vec<(String, i64)> = rows
                .iter()
                .filter(|r| r["domain"] == "event")
                .map(|r| (r["key"].as_str().expect("key").to_owned(), r["timer"].as_i64().expect("ts")))
                .collect();
            event.sort();
            assert_eq!(event, vec![("a".into(), 2000), ("a".into(), 6000), ("b".into(), 2500)], "{backend:?} p={p}");
            // Event timers fire once the watermark reaches them.
            for r in rows.iter().filter(|r| r["domain"] == "event") {
                assert!(r["watermark"].as_i64().expect("wm") >= r["timer"].as_i64().expect("ts"), "{r}");
            }
            // One processing-time timer per record, except that registering the same
            // (key, time) twice yields one firing: key a's two may coincide.
            let mut processing: Vec<&str> = rows.iter().filter(|r| r["domain"] == "processing").filter_map(|r| r["key"].as_str()).collect();
            processing.sort();
            assert!(processing == ["a", "a", "b"] || processing == ["a", "b"], "{backend:?}: {processing:?}");
        }
    }
}

#[test]
fn keyed_state_value_list_map() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input: String = ["x", "y", "x", "x", "z", "y"]
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{{\"k\":\"{}\",\"v\":\"{v}\"}}\n", if i % 2 == 0 { "a" } else { "b" }))
        .collect();
    write(dir.path(), "in.jsonl", &input);
    let yaml = format!(
        "name: state\nsources:\n  - {{id: in, type: file, path: in.jsonl, format: jsonl}}\noperators:\n  - {{uid: s, plugin: {}, inputs: [in], key_by: {{field: k}}, config: {{mode: state}}}}\nsinks:\n  - {{id: out, type: file, path: out.jsonl, inputs: [s]}}\n",
        fixture("fixture_test_ops").display()
    );
    for backend in BACKENDS {
        run_spec(&yaml, dir.path(), &[], Some(3), backend).expect("run");
        let rows = read_jsonl(&dir.path().join("out.jsonl"));
        let last: BTreeMap<String, &Value> = rows.iter().map(|r| (r["key"].as_str().expect("key").to_owned(), r)).collect();
        assert_eq!(rows.len(), 6);
        // key a saw x, x, z; key b saw y, x, y.
        assert_eq!(last["a"]["seen"].as_array().expect("seen").len(), 3, "{backend:?}");
        assert_eq!(last["b"]["count_for_value"], 2, "{backend:?}: b saw y twice");
        assert_eq!(last["a"]["count_for_value"], 1, "{backend:?}: a saw z once");
    }
}

#[test]
fn side_outputs_generator_fan_out_and_union() {
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        "name: side\nsources:\n  - {{id: gen, type: generator, count: 1000, keys: 7, parallelism: 2}}\noperators:\n  - {{uid: a, plugin: {p}, inputs: [gen], key_by: {{field: key}}, parallelism: 3, config: {{mode: side}}}}\n  - {{uid: b, plugin: {p}, inputs: [gen], config: {{mode: side}}}}\nsinks:\n  - {{id: main, type: file, path: main.jsonl, inputs: [a, b]}}\n  - {{id: copies, type: file, path: copies.jsonl, inputs: [a.copy]}}\n",
        p = fixture("fixture_test_ops").display()
    );
    run_spec(&yaml, dir.path(), &[], None, BACKENDS[0]).expect("run");
    let main = read_jsonl(&dir.path().join("main.jsonl"));
    let copies = read_jsonl(&dir.path().join("copies.jsonl"));
    assert_eq!(main.len(), 2000, "union of both operators");
    assert_eq!(copies.len(), 1000, "side output of a");
    let mut ids: Vec<u64> = copies.iter().map(|r| r["id"].as_u64().expect("id")).collect();
    ids.sort();
    assert_eq!(ids, (0..1000).collect::<Vec<_>>(), "every generated record exactly once");
}

#[test]
fn files_and_objects_judge_bad_json_lines_alike_failing_or_dead_lettering_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lines = "{\"a\":1}\nnot json\n\n{\"a\":2}\n";
    write(dir.path(), "in.jsonl", lines);
    std::fs::create_dir_all(dir.path().join("objects")).expect("mkdir");
    write(&dir.path().join("objects"), "part-1.jsonl", lines);
    let objects = dir.path().join("objects").display().to_string();
    for (source, place) in [
        ("{id: s, type: file, path: in.jsonl, format: jsonl".to_owned(), "in.jsonl:2"),
        (format!("{{id: s, type: objects, url: '{objects}'"), "part-1.jsonl:2"),
    ] {
        let failing = format!("name: bad\nsources:\n  - {source}}}\nsinks:\n  - {{id: out, type: file, path: out-fail, inputs: [s]}}\n");
        let e = run_spec(&failing, dir.path(), &[], Some(1), BACKENDS[0]).expect_err("a bad line fails the job").to_string();
        assert!(e.contains("source 's'") && e.contains(place) && e.contains("not JSON"), "{place}: {e}");

        let dead_letter = format!(
            "name: dl\nsources:\n  - {source}, bad_records: dead_letter}}\nsinks:\n  - {{id: out, type: file, path: out, inputs: [s]}}\n  - {{id: bad, type: file, path: bad, inputs: [s.dead-letter]}}\n"
        );
        run_spec(&dead_letter, dir.path(), &[], Some(1), BACKENDS[0]).expect("bad lines go aside");
        assert_eq!(read_output(&dir.path().join("out")), "{\"a\":1}\n{\"a\":2}\n", "{place}");
        assert_eq!(read_output(&dir.path().join("bad")), "not json\n", "{place}");
    }
    // Both bound a line by max_record_bytes before it is held whole (objects are streamed).
    let long = format!("{{\"a\":1}}\n{{\"a\":\"{}\"}}\n", "x".repeat(300_000));
    write(dir.path(), "long.jsonl", &long);
    std::fs::create_dir_all(dir.path().join("long")).expect("mkdir");
    write(&dir.path().join("long"), "part-1.jsonl", &long);
    let long_objects = dir.path().join("long").display().to_string();
    for (source, place) in [
        ("{id: s, type: file, path: long.jsonl, format: jsonl}".to_owned(), "long.jsonl:2"),
        (format!("{{id: s, type: objects, url: '{long_objects}'}}"), "part-1.jsonl:2"),
    ] {
        let spec = format!(
            "name: long\nmax_record_bytes: 65536\nsources:\n  - {source}\nsinks:\n  - {{id: out, type: file, path: out-long, inputs: [s]}}\n"
        );
        let e = run_spec(&spec, dir.path(), &[], Some(1), BACKENDS[0]).expect_err("a long line fails the job").to_string();
        assert!(e.contains(place) && e.contains("longer than max_record_bytes (65536 bytes)"), "{place}: {e}");
    }
}

#[test]
fn csv_source_feeds_json_objects() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "in.csv", "k,v,n\na,x,1\nb,y,2.5\n");
    let yaml = format!(
        "name: csv\nsources:\n  - {{id: in, type: file, path: in.csv, format: csv}}\noperators:\n  - {{uid: s, plugin: {}, inputs: [in], config: {{mode: side}}}}\nsinks:\n  - {{id: out, type: file, path: out.jsonl, inputs: [s]}}\n",
        fixture("fixture_test_ops").display()
    );
    run_spec(&yaml, dir.path(), &[], Some(1), BACKENDS[0]).expect("run");
    let rows = read_jsonl(&dir.path().join("out.jsonl"));
    assert_eq!(rows, vec![serde_json::json!({"k": "a", "v": "x", "n": 1}), serde_json::json!({"k": "b", "v": "y", "n": 2.5})]);
}

#[test]
fn forward_edges_chain_and_keep_every_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    // gen (p=2) → a (p=2, rebalance-free forward) → b (p=2, chained into a) → sink.
    let yaml = format!(
        "name: chain\nsources:\n  - {{id: gen, type: generator, count: 5000, parallelism: 2}}\noperators:\n  - {{uid: a, plugin: {p}, inputs: [gen], parallelism: 2, config: {{mode: side}}}}\n  - {{uid: b, plugin: {p}, inputs: [a], parallelism: 2, config: {{mode: side}}}}\nsinks:\n  - {{id: out, type: file, path: out.jsonl, inputs: [b]}}\n",
        p = fixture("fixture_test_ops").display()
    );
    let report = run_spec(&yaml, dir.path(), &[], None, BACKENDS[1]).expect("run");
    let rows = read_jsonl(&dir.path().join("out.jsonl"));
    let mut ids: Vec<u64> = rows.iter().map(|r| r["id"].as_u64().expect("id")).collect();
    ids.sort();
    assert_eq!(ids, (0..5000).collect::<Vec<_>>());
    let b = report.nodes.iter().find(|n| n.id == "b").expect("b");
    assert_eq!(b.records_in, 5000, "records into the chained operator");
}

#[test]
fn wasi_is_sandboxed_and_deterministic() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "in.jsonl", "{\"k\":1}\n{\"k\":2}\n");
    let yaml = format!(
        "name: wasi\nsources:\n  - {{id: in, type: file, path: in.jsonl, format: jsonl}}\noperators:\n  - {{uid: w, plugin: {}, inputs: [in], config: {{mode: wasi}}}}\nsinks:\n  - {{id: out, type: file, path: out.jsonl, inputs: [w]}}\n",
        fixture("fixture_test_ops").display()
    );
    run_spec(&yaml, dir.path(), &[], Some(1), BACKENDS[0]).expect("first run");
    let first = read_jsonl(&dir.path().join("out.jsonl"));
    run_spec(&yaml, dir.path(), &[], Some(1), BACKENDS[0]).expect("second run");
    let second = read_jsonl(&dir.path().join("out.jsonl"));
    assert_eq!(first, second, "clocks and randomness are replayed identically");
    assert_eq!(first[0]["wall_ms"], 0, "no real wall clock");
}

#[test]
fn compiled_components_are_cached_by_digest() {
    let cache = tempfile::tempdir().expect("tempdir");
    let wasm = fixture("fixture_test_ops");
    let a = rivulet_plugin::PluginEngine::new(Some(cache.path().to_path_buf())).expect("engine");
    let p1 = a.load_file(&wasm).expect("load");
    let entries = || {
        std::fs::read_dir(cache.path()).expect("dir").filter_map(|e| e.ok()).filter(|e| e.path().extension().is_some_and(|x| x == "cwasm")).count()
    };
    assert_eq!(entries(), 1);
    let b = rivulet_plugin::PluginEngine::new(Some(cache.path().to_path_buf())).expect("engine");
    let p2 = b.load_file(&wasm).expect("load from cache");
    assert_eq!(p1.digest, p2.digest);
    assert!(p1.digest.starts_with("sha256:"));
    assert_eq!(entries(), 1, "the second engine reused the artifact");
}

/// One instance of `wasm` (example plugin path) with `config`, opened.
fn open_instance(rt: &tokio::runtime::Runtime, wasm: &str, config: &str, dir: &std::path::Path) -> rivulet_plugin::OperatorInstance {
    let plugin = engine().load_file(&repo().join(wasm)).expect("load");
    let state = rivulet_state::KeyedStateStore::new(rivulet_state::BackendKind::Memory.open(dir).expect("backend"), 128);
    let setup = rivulet_plugin::InstanceSetup {
        uid: "forward".into(),
        subtask: 0,
        parallelism: 1,
        attempt: 0,
        state,
        limits: rivulet_plugin::Limits::default(),
        config: config.into(),
        log: None,
        input_names: vec!["main".into()],
    };
    rt.block_on(async {
        let mut i = rivulet_plugin::OperatorInstance::new(&engine(), plugin, setup).await.expect("instantiate");
        i.open().await.expect("open");
        i
    })
}

#[test]
fn records_emitted_unchanged_are_forwarded_not_re_encoded() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let events = ["person", "auction", "bid"];
    let mut encoded = Vec::new();
    let mut bids = Vec::new();
    for i in 0..500u32 {
        let kind = [0, 1, 2, 2, 2, 2][i as usize % 6];
        let value = format!(r#"{{"event_type":{kind},"n":{i}}}"#);
        let key = (i % 3 != 0).then(|| format!("k{i}"));
        rivulet_sdk::encode_record(&mut encoded, key.as_deref().map(str::as_bytes), value.as_bytes(), i64::from(i) - 7);
        if events[kind] == "bid" {
            rivulet_sdk::encode_record(&mut bids, key.as_deref().map(str::as_bytes), value.as_bytes(), i64::from(i) - 7);
        }
    }
    let batch = rivulet_dataflow::Batch::counted(encoded);

    // Every record through, in order: the host passes its own batch on, no copy.
    let mut passthrough = open_instance(&rt, "plugins-examples/passthrough/passthrough.wasm", "{}", &dir.path().join("p"));
    let out = rt.block_on(passthrough.process(0, &batch)).expect("process");
    assert!(std::sync::Arc::ptr_eq(out.main.bytes(), batch.bytes()), "a whole batch forwarded is shared");
    assert_eq!(out.main.len(), 500);

    // Some records through (Nexmark's event filter): the host copies exactly those,
    // keys, values and timestamps as they were.
    let mut filter = open_instance(&rt, "plugins-examples/nexmark/nexmark.wasm", r#"{"stage":"filter","events":["bid"]}"#, &dir.path().join("f"));
    let out = rt.block_on(filter.process(0, &batch)).expect("process");
    assert_eq!(out.main.as_slice(), &bids[..], "the bids, byte for byte");
    assert_eq!(out.main.len(), 332);
}
