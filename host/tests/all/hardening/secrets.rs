//! Secrets in job specs — a Kafka sink's `sasl.password`, the password in a PostgreSQL
//! URL — are never shown: a viewer token sees them masked (`******`) on every job route,
//! failures that would quote them (a connection error naming the URL) are scrubbed, the
//! server's log has none of them, and `savepoint inspect` of a snapshot whose Kafka
//! sink's transaction carries the properties shows them masked.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fault::rivulet;
use crate::server::Server;

const KAFKA_SECRET: &str = "hunter2-secret-XYZ";
const PG_SECRET: &str = "pg-secret-PW-42";
const MASK: &str = "******";

/// A local port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[test]
fn secrets_in_specs_are_masked_for_viewers_scrubbed_from_failures_and_logs_and_savepoint_inspect() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (viewer, operator) = ("viewer-token-secrets-0123456789", "operator-token-secrets-0123456789");
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("viewer {viewer}\noperator {operator}\n")).expect("tokens");
    let srv = Server::start(&data, None, &["--auth-token-file", &tokens.display().to_string(), "--allow-connect", "127.0.0.1"]);
    let (kafka_port, pg_port) = (closed_port(), closed_port());
    let submit = |spec: Value| {
        let (s, v) = srv.request("POST", "/v1/jobs", Some(operator), Some(("application/json", json!({"spec": spec}).to_string().into_bytes())));
        assert_eq!(s, 201, "{v}");
        assert!(!v.to_string().contains(KAFKA_SECRET) && !v.to_string().contains(PG_SECRET), "the submission's answer shows a secret: {v}");
        v["id"].as_str().expect("id").to_owned()
    };
    // A PostgreSQL sink whose URL carries a password: connecting fails at once, and the
    // error names the URL.
    let pg = submit(json!({
        "name": "pg-secret",
        "sources": [{"id": "gen", "type": "generator", "count": 3}],
        "sinks": [{"id": "pg", "type": "postgres", "url": format!("postgres://rivulet:{PG_SECRET}@127.0.0.1:{pg_port}/db"),
                   "table": "t", "key": ["id"], "inputs": ["gen"]}],
        "restart": {"attempts": 0}
    }));
    // An exactly-once Kafka sink with SASL properties: nothing to produce, so its
    // transaction (with the properties) goes into the final checkpoint untouched.
    let kafka = submit(json!({
        "name": "kafka-secret",
        "sources": [{"id": "gen", "type": "generator", "count": 0}],
        "sinks": [{"id": "k", "type": "kafka", "bootstrap_servers": format!("127.0.0.1:{kafka_port}"), "topic": "t", "inputs": ["gen"],
                   "properties": {"sasl.password": KAFKA_SECRET, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN", "sasl.username": "u"}}]
    }));
    let get = |path: &str| {
        let (s, v) = srv.request("GET", path, Some(viewer), None);
        assert_eq!(s, 200, "GET {path}: {v}");
        v
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (p, k) = (get(&format!("/v1/jobs/{pg}")), get(&format!("/v1/jobs/{kafka}")));
        if p["status"] == "failed" && k["status"] == "finished" {
            break;
        }
        assert!(Instant::now() < deadline, "pg: {}, kafka: {}\n{}", p["status"], k["status"], srv.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
    let no_secret = |what: &str, text: &str| {
        for secret in [KAFKA_SECRET, PG_SECRET] {
            assert!(!text.contains(secret), "{what} shows the secret {secret}:\n{text}");
        }
    };
    for path in ["/v1/jobs".to_owned(), "/v1/savepoints".to_owned()].into_iter().chain(
        [&pg, &kafka]
            .into_iter()
            .flat_map(|id| ["", "/exceptions", "/logs", "/history", "/checkpoints"].map(|route| format!("/v1/jobs/{id}{route}"))),
    ) {
        no_secret(&format!("GET {path} (viewer)"), &get(&path).to_string());
    }
    // The specs keep their structure, the secret values masked; references and other
    // settings stay visible.
    let k = get(&format!("/v1/jobs/{kafka}"));
    let props = &k["spec"]["sinks"][0]["properties"];
    assert_eq!(props["sasl.password"], MASK, "{k}");
    assert_eq!(props["security.protocol"], "SASL_PLAINTEXT", "{k}");
    let p = get(&format!("/v1/jobs/{pg}"));
    assert_eq!(p["spec"]["sinks"][0]["url"], format!("postgres://rivulet:{MASK}@127.0.0.1:{pg_port}/db"), "{p}");
    // The connection failure is shown with the URL masked.
    let ex = get(&format!("/v1/jobs/{pg}/exceptions"));
    let reasons =
        ex.as_array().expect("exceptions").iter().map(|x| x["reason"].as_str().unwrap_or_default().to_owned()).collect::<Vec<_>>().join("\n");
    assert!(reasons.contains("cannot connect") && reasons.contains(MASK), "the failure names the URL, masked: {ex}");
    assert!(p["error"].as_str().is_some_and(|e| e.contains(MASK)), "{p}");
    // The server's log (tracing and the runtime's progress lines) has no secret either.
    no_secret("the server's log", &srv.log_text());

    // `savepoint inspect` of the Kafka job's final checkpoint: the sink's transaction
    // holds its properties, shown masked.
    let cps = get(&format!("/v1/jobs/{kafka}/checkpoints"));
    let location = cps["retained"][0]["location"].as_str().unwrap_or_else(|| panic!("a retained checkpoint: {cps}")).to_owned();
    let location = location.strip_prefix("file://").unwrap_or(&location).to_owned();
    let out = rivulet().args(["savepoint", "inspect", &location]).output().expect("inspect");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("sasl.password") && text.contains(MASK), "the sink's transaction with its properties masked:\n{text}");
    no_secret("savepoint inspect", &format!("{text}{}", String::from_utf8_lossy(&out.stderr)));
}
