//! Kafka against a real broker: Apache Kafka in KRaft mode, one node on 127.0.0.1,
//! started by `scripts/kafka.sh` (jars from Maven Central, run on Java 17) in a
//! temporary directory and killed when the test ends.
//!
//! The oracle is the counter job's: per key the committed counts
//! are 1..n, each once, and the n add up to the records in the topic — whatever was
//! killed along the way.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};

use crate::fault::rivulet;
use crate::support::*;

/// A broker of our own, in its own directory; `kill -9`ed on drop.
pub struct Broker {
    dir: tempfile::TempDir,
    pub bootstrap: String,
}

fn script() -> PathBuf {
    repo().join("scripts/kafka.sh")
}

impl Broker {
    pub fn start() -> Broker {
        let dir = tempfile::tempdir().expect("tempdir");
        let bootstrap = Self::launch(dir.path());
        Broker { dir, bootstrap }
    }

    fn launch(dir: &Path) -> String {
        let out = Command::new("bash").arg(script()).arg("start").arg(dir).stderr(Stdio::inherit()).output().expect("run scripts/kafka.sh");
        assert!(out.status.success(), "scripts/kafka.sh start failed (is Java 17 and Maven installed? `make test` installs them)");
        let text = String::from_utf8_lossy(&out.stdout);
        let addr = text.lines().last().unwrap_or_default().trim().to_owned();
        assert!(addr.starts_with("127.0.0.1:"), "unexpected bootstrap address {addr:?}");
        addr
    }

    /// SIGKILL the broker process.
    pub fn kill9(&self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("pid")) {
            let _ = Command::new("kill").args(["-9", pid.trim()]).status();
        }
    }

    /// Start it again on the same ports and data (after [`Self::kill9`]).
    pub fn restart(&self) {
        let addr = Self::launch(self.dir.path());
        assert_eq!(addr, self.bootstrap, "the broker came back on another port");
    }

    pub fn create_topic(&self, name: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", &self.bootstrap).create().expect("admin client");
        let rt = runtime();
        let res = rt
            .block_on(admin.create_topics(&[NewTopic::new(name, partitions, TopicReplication::Fixed(1))], &AdminOptions::new()))
            .expect("create topic");
        for r in res {
            r.unwrap_or_else(|(t, e)| panic!("topic {t}: {e}"));
        }
    }

    /// Produce `(key, value)` records, round-robin over `partitions`, and wait for every ack.
    pub fn produce(&self, topic: &str, partitions: i32, records: &[(String, Vec<u8>)]) {
        let with_partitions: Vec<(i32, String, Vec<u8>)> =
            records.iter().enumerate().map(|(i, (k, v))| ((i as i32) % partitions, k.clone(), v.clone())).collect();
        self.produce_to(topic, &with_partitions);
    }

    /// Produce `(partition, key, value)` records and wait for every ack.
    pub fn produce_to(&self, topic: &str, records: &[(i32, String, Vec<u8>)]) {
        let producer: FutureProducer =
            ClientConfig::new().set("bootstrap.servers", &self.bootstrap).set("linger.ms", "5").set("acks", "all").create().expect("producer");
        let rt = runtime();
        rt.block_on(async {
            // Enqueue everything first (`send` would wait for each delivery in turn).
            let mut pending = Vec::with_capacity(records.len());
            for (partition, k, v) in records {
                let mut rec = FutureRecord::to(topic).key(k).payload(v).partition(*partition);
                loop {
                    match producer.send_result(rec) {
                        Ok(delivery) => break pending.push(delivery),
                        Err((e, back)) => {
                            assert!(
                                matches!(e, rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull)),
                                "produce: {e}"
                            );
                            rec = back;
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                }
            }
            for p in pending {
                p.await.expect("delivery").unwrap_or_else(|(e, _)| panic!("produce: {e}"));
            }
        });
        producer.flush(Duration::from_secs(30)).expect("flush");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `n` counter inputs over `keys` keys, plus `bad` values that are not JSON.
fn records(n: usize, keys: usize, bad: usize) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> =
        (0..n).map(|i| (format!("k{}", i % keys), format!(r#"{{"key":"k{}","value":{i}}}"#, i % keys).into_bytes())).collect();
    for b in 0..bad {
        out.insert((b * 997) % out.len().max(1), (format!("bad{b}"), format!("not json {b} {{").into_bytes()));
    }
    out
}

fn job(dir: &Path, bootstrap: &str, topic: &str, parallelism: u32, extra: &str) -> PathBuf {
    let spec = format!(
        r#"name: kafka-count
{extra}
sources:
  - id: events
    type: kafka
    bootstrap_servers: "{bootstrap}"
    topic: {topic}
    bounded: true
    format: json
    parallelism: {parallelism}
operators:
  - uid: counter
    plugin: {plugin}
    inputs: [events]
    key_by: {{ field: key }}
sinks:
  - {{ id: out, type: file, path: "{out}", inputs: [counter] }}
  - {{ id: dead, type: file, path: "{dead}", inputs: [events.dead-letter] }}
"#,
        plugin = wasm("plugins-examples/counter-v1/counter_v1.wasm").display(),
        out = dir.join("out").display(),
        dead = dir.join("dead").display(),
    );
    let path = dir.join("job.yaml");
    std::fs::write(&path, spec).expect("write spec");
    path
}

/// Every committed value of `topic` (read_committed), until `want` have come or 20 s
/// pass without a new one.
fn consume_committed(bootstrap: &str, topic: &str, want: usize) -> Vec<serde_json::Value> {
    consume_committed_keyed(bootstrap, topic, want).into_iter().map(|(_, v)| v).collect()
}

/// The committed records of `topic` with their Kafka keys.
fn consume_committed_keyed(bootstrap: &str, topic: &str, want: usize) -> Vec<(Option<String>, serde_json::Value)> {
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    use rdkafka::message::Message as _;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("oracle-{topic}-{}", std::process::id()))
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut out = Vec::new();
    let mut quiet_since = std::time::Instant::now();
    while quiet_since.elapsed() < Duration::from_secs(if out.len() >= want { 2 } else { 20 }) {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.expect("consume");
            let key = m.key().map(|k| String::from_utf8_lossy(k).into_owned());
            out.push((key, serde_json::from_slice(m.payload().unwrap_or_default()).expect("a JSON value")));
            quiet_since = std::time::Instant::now();
        }
    }
    out
}

/// The counter oracle on values read from Kafka.
fn assert_counts_exact_values(rows: &[serde_json::Value], total: u64) {
    let mut per_key: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    for r in rows {
        per_key.entry(r["key"].as_str().expect("key").to_owned()).or_default().push(r["count"].as_u64().expect("count"));
    }
    let mut sum = 0;
    for (k, mut c) in per_key {
        c.sort_unstable();
        let n = c.len() as u64;
        assert_eq!(c, (1..=n).collect::<Vec<_>>(), "key {k}: counts lost or duplicated");
        sum += n;
    }
    assert_eq!(sum, total, "committed records in the output topic");
}

#[test]
fn kafka_to_kafka_exactly_once_under_kill_9() {
    kafka_to_kafka("exactly_once");
}

#[test]
fn kafka_to_kafka_at_least_once_under_kill_9() {
    kafka_to_kafka("at_least_once");
}

fn kafka_to_kafka(delivery: &str) {
    let broker = Broker::start();
    let n = 40_000;
    broker.create_topic("in", 4);
    broker.create_topic("counts", 3);
    broker.produce("in", 4, &records(n, 40, 0));
    let dir = tempfile::tempdir().expect("tempdir");
    let spec =
        job(dir.path(), &broker.bootstrap, "in", 2, "").to_str().map(|p| std::fs::read_to_string(p).expect("spec")).expect("utf-8 path").replace(
            &format!(r#"{{ id: out, type: file, path: "{}", inputs: [counter] }}"#, dir.path().join("out").display()),
            &format!(
                r#"{{ id: out, type: kafka, bootstrap_servers: "{}", topic: counts, key_field: key, delivery: {delivery}, inputs: [counter] }}"#,
                broker.bootstrap
            ),
        );
    assert!(spec.contains("type: kafka, bootstrap"), "{spec}");
    let spec_path = dir.path().join("k2k.yaml");
    std::fs::write(&spec_path, spec).expect("spec");
    let kills = kill_loop(&format!("kafka → kafka ({delivery})"), 5, 200, 200, 900, || {
        let mut c = rivulet();
        c.arg("run")
            .arg(&spec_path)
            .args(["--state-backend", "rocksdb", "--checkpoint-interval", "50ms", "--restore", "latest", "--quiet"])
            .arg("--checkpoint-dir")
            .arg(dir.path().join("ck"))
            .arg("--data-dir")
            .arg(dir.path().join("data"));
        c
    });
    let mut rows = consume_committed(&broker.bootstrap, "counts", n);
    if delivery == "at_least_once" {
        // Replays after a kill write some counts again (the same values: the operator
        // is deterministic): nothing is missing, and duplicates are exact copies.
        let before = rows.len();
        let mut seen = std::collections::BTreeSet::new();
        rows.retain(|r| seen.insert(r.to_string()));
        println!("at-least-once: {} duplicates after {kills} kills", before - rows.len());
    }
    assert_counts_exact_values(&rows, n as u64);
}

fn dead_letters(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = read_output(&dir.join("dead")).lines().map(str::to_owned).collect();
    v.sort();
    v
}

#[test]
fn kafka_source_exactly_once_under_kill_9_and_dead_letters() {
    let t0 = std::time::Instant::now();
    let broker = Broker::start();
    let (n, bad) = (60_000, 7);
    broker.create_topic("events", 4);
    println!("broker up and topic created after {:?}", t0.elapsed());
    broker.produce("events", 4, &records(n, 50, bad));
    println!("produced after {:?}", t0.elapsed());
    let mut expected_dead: Vec<String> = (0..bad).map(|b| format!("not json {b} {{")).collect();
    expected_dead.sort();
    for (backend, parallelism) in [("memory", 1), ("rocksdb", 3)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = job(dir.path(), &broker.bootstrap, "events", parallelism, "");
        kill_loop(&format!("kafka {backend} p={parallelism}"), 5, 150, 200, 700, || {
            let mut c = rivulet();
            c.arg("run")
                .arg(&spec)
                .args(["--state-backend", backend, "--checkpoint-interval", "50ms", "--restore", "latest", "--quiet"])
                .arg("--checkpoint-dir")
                .arg(dir.path().join("ck"))
                .arg("--data-dir")
                .arg(dir.path().join("data"));
            c
        });
        crate::fault::assert_counts_exact(&dir.path().join("out"), n as u64);
        assert_eq!(dead_letters(dir.path()), expected_dead, "{backend} p={parallelism}: every undecodable record once in the dead-letter output");
    }
}

#[test]
fn the_broker_killed_and_restarted_during_a_run() {
    let broker = Broker::start();
    let n = 40_000;
    broker.create_topic("events", 3);
    broker.produce("events", 3, &records(n, 20, 0));
    let dir = tempfile::tempdir().expect("tempdir");
    // Restarts cover a broker that is down while the job (re)starts.
    let spec = job(dir.path(), &broker.bootstrap, "events", 2, "restart: { attempts: 60, delay_ms: 500 }");
    let child = rivulet()
        .arg("run")
        .arg(&spec)
        .args(["--state-backend", "rocksdb", "--checkpoint-interval", "50ms", "--quiet", "--checkpoint-dir"])
        .arg(dir.path().join("ck"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut child = child;
    std::thread::sleep(Duration::from_millis(120));
    assert!(child.try_wait().expect("poll").is_none(), "the job ended before the broker was killed");
    broker.kill9();
    std::thread::sleep(Duration::from_secs(2));
    broker.restart();
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    crate::fault::assert_counts_exact(&dir.path().join("out"), n as u64);
}

#[test]
fn a_missing_topic_and_an_unreachable_broker_are_clear_errors() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = job(dir.path(), &broker.bootstrap, "no-such-topic", 1, "");
    let out = rivulet().arg("run").arg(&spec).arg("--quiet").output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("topic 'no-such-topic' does not exist"), "{err}");
    assert!(err.contains("events"), "names the source: {err}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    drop(broker);
    let spec = job(dir.path(), &closed.to_string(), "events", 1, "");
    let out = rivulet().arg("run").arg(&spec).arg("--quiet").output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("cannot reach the Kafka cluster") && err.contains(&closed.to_string()), "{err}");
}

#[test]
fn the_kafka_enrich_example_matches_an_independent_enrichment_after_a_kill() {
    let broker = Broker::start();
    broker.create_topic("orders", 4);
    broker.create_topic("enriched", 4);
    // 30 customers; a customer's orders stay in one partition, in order.
    let mut rng = Rng(11);
    let mut input = Vec::new();
    let mut expected = Vec::new();
    let mut state: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for order_id in 0..20_000u64 {
        let c = rng.below(30);
        let customer = format!("c{c}");
        let (price, qty) = (100 + rng.below(5_000), 1 + rng.below(4));
        input.push((
            (c % 4) as i32,
            customer.clone(),
            serde_json::json!({"order_id": order_id, "customer": customer, "price_cents": price, "qty": qty}).to_string().into_bytes(),
        ));
        let e = state.entry(customer.clone()).or_default();
        e.0 += 1;
        e.1 += price * qty;
        let tier = if e.1 < 10_000 {
            "bronze"
        } else if e.1 < 100_000 {
            "silver"
        } else {
            "gold"
        };
        expected.push(
            serde_json::json!({"order_id": order_id, "customer": customer, "total_cents": price * qty,
            "customer_orders": e.0, "customer_spend_cents": e.1, "tier": tier})
            .to_string(),
        );
    }
    input.push((1, "c1".into(), b"{oops".to_vec()));
    broker.produce_to("orders", &input);

    let dir = tempfile::tempdir().expect("tempdir");
    let args = |c: &mut Command| {
        c.arg("run")
            .arg(repo().join("plugins-examples/kafka-enrich/job.yaml"))
            .args(["--param", &format!("bootstrap={}", broker.bootstrap), "--param", "input_topic=orders", "--param", "output_topic=enriched"])
            .args(["--param", "bounded=true", "--param"])
            .arg(format!("rejected={}", dir.path().join("rejected").display()))
            .args(["--checkpoint-interval", "50ms", "--restore", "latest", "--quiet", "--checkpoint-dir"])
            .arg(dir.path().join("ck"))
            .arg("--data-dir")
            .arg(dir.path().join("data"));
    };
    let mut first = rivulet();
    args(&mut first);
    let mut child = first.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn");
    std::thread::sleep(Duration::from_millis(400));
    let killed = child.try_wait().expect("poll").is_none();
    if killed {
        child.kill().expect("kill -9");
    }
    let _ = child.wait();
    let mut second = rivulet();
    args(&mut second);
    let out = second.output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    println!("kafka-enrich: killed the first run: {killed}");

    let records = consume_committed_keyed(&broker.bootstrap, "enriched", expected.len());
    for (key, value) in &records {
        assert_eq!(key.as_deref(), value["customer"].as_str(), "an enriched order's Kafka key is its record key, the customer: {value}");
    }
    let mut got: Vec<String> = records.iter().map(|(_, v)| v.to_string()).collect();
    got.sort();
    expected.sort();
    assert_eq!(got.len(), expected.len(), "committed enriched orders");
    assert!(got == expected, "the enriched orders differ from the independent enrichment");
    assert_eq!(read_output(&dir.path().join("rejected")).trim(), "{oops");
}

/// The B7.1 workload through Kafka: `seq_check` (keyed value and map state, event-time
/// timers that count 1 s windows, and a check of its own restored state) between a
/// Kafka source with event time and an exactly-once Kafka sink, under repeated `kill -9`.
/// The output topic read with `read_committed` must equal the failure-free output.
#[test]
fn kafka_keyed_operator_with_timers_to_kafka_exactly_once_under_kill_9() {
    let broker = Broker::start();
    let count = 30_000u64;
    broker.create_topic("gen", 4);
    broker.create_topic("checked", 2);
    // The generator's records; a key's records stay in one partition, in order.
    let input: Vec<(i32, String, Vec<u8>)> = (0..count)
        .map(|id| {
            let k = id % 50;
            (
                (k % 4) as i32,
                format!("k{k}"),
                serde_json::json!({"id": id, "key": format!("k{k}"), "value": id, "timestamp": id}).to_string().into_bytes(),
            )
        })
        .collect();
    broker.produce_to("gen", &input);
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = format!(
        r#"name: kafka-seqcheck
sources:
  - id: gen
    type: kafka
    bootstrap_servers: "{b}"
    topic: gen
    bounded: true
    format: json
    parallelism: 2
    event_time: {{ field: timestamp, max_out_of_orderness_ms: 0 }}
operators:
  - uid: check
    plugin: "{plugin}"
    inputs: [gen]
    key_by: {{ field: key }}
    parallelism: 3
    config: {{ keys: 50 }}
sinks:
  - {{ id: out, type: kafka, bootstrap_servers: "{b}", topic: checked, key_field: key, inputs: [check] }}
"#,
        b = broker.bootstrap,
        plugin = fixture("fixture_seq_check").display()
    );
    let spec_path = dir.path().join("seqcheck.yaml");
    std::fs::write(&spec_path, spec).expect("spec");
    kill_loop("kafka seq_check", 5, 200, 200, 900, || {
        let mut c = rivulet();
        c.arg("run")
            .arg(&spec_path)
            .args(["--state-backend", "rocksdb", "--checkpoint-interval", "50ms", "--restore", "latest", "--quiet"])
            .arg("--checkpoint-dir")
            .arg(dir.path().join("ck"))
            .arg("--data-dir")
            .arg(dir.path().join("data"));
        c
    });
    let expected = crate::fault::seq_expected(count);
    let mut got: Vec<String> = consume_committed(&broker.bootstrap, "checked", expected.len()).iter().map(|v| v.to_string()).collect();
    got.sort();
    assert_eq!(got.len(), expected.len(), "committed output rows (records and window counts)");
    assert!(got == expected, "the committed output differs from the failure-free output");
}
