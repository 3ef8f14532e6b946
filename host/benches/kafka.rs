//! `cargo bench -p rivulet --bench kafka [-- --quick]`: Kafka → Rivulet passthrough
//! (a Wasm operator that emits each record unchanged) → Kafka, 100-byte records, one
//! partition and parallelism 1, against a plain rdkafka consume-produce loop measured in
//! the same run on the same broker; the sink exactly-once and at-least-once.
//!
//! Starts a real broker with `scripts/kafka.sh` (KRaft, 127.0.0.1) and the release
//! `rivulet` binary; CPU time is the process's user + system time (getrusage), so
//! "records per CPU-second" is records/s/core. Prints a markdown table for
//! `docs/benchmarks.md`. Needs `make plugins`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
use rdkafka::{Offset, TopicPartitionList};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo").to_path_buf()
}

fn cpu_seconds(who: i32) -> f64 {
    // SAFETY-free: getrusage writes into the struct we own.
    let mut u: libc::rusage = unsafe_zeroed();
    #[allow(unsafe_code)]
    let rc = unsafe { libc::getrusage(who, &mut u) };
    assert_eq!(rc, 0, "getrusage");
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

#[allow(unsafe_code)]
fn unsafe_zeroed() -> libc::rusage {
    // rusage is plain old data.
    unsafe { std::mem::zeroed() }
}

fn send(producer: &BaseProducer, topic: &str, payload: &[u8]) {
    let mut rec = BaseRecord::<(), [u8]>::to(topic).payload(payload);
    loop {
        match producer.send(rec) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                producer.poll(Duration::from_millis(1));
                rec = back;
            }
            Err((e, _)) => panic!("produce: {e}"),
        }
    }
}

fn producer(bootstrap: &str) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer")
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n: usize = if quick { 300_000 } else { 2_000_000 };
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new("bash").arg(repo().join("scripts/kafka.sh")).arg("start").arg(dir.path().join("broker")).output().expect("kafka.sh");
    assert!(out.status.success(), "kafka.sh start failed");
    let bootstrap = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().trim().to_owned();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", &bootstrap).create().expect("admin");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let topics: Vec<NewTopic> = ["in", "out-plain", "out-alo", "out-eo"].iter().map(|t| NewTopic::new(t, 1, TopicReplication::Fixed(1))).collect();
    for r in rt.block_on(admin.create_topics(&topics, &AdminOptions::new())).expect("create topics") {
        r.expect("topic");
    }

    // Input: n records of 100 bytes.
    let p = producer(&bootstrap);
    let payload = [b'x'; 100];
    let t0 = Instant::now();
    for _ in 0..n {
        send(&p, "in", &payload);
    }
    p.flush(Duration::from_secs(120)).expect("flush");
    eprintln!("produced {n} records in {:.1} s", t0.elapsed().as_secs_f64());

    // 1. The plain loop: consume `in`, produce each record to `out-plain`.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "plain-loop")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("in", 0, Offset::Beginning).expect("tpl");
    consumer.assign(&tpl).expect("assign");
    let out = producer(&bootstrap);
    let cpu0 = cpu_seconds(libc::RUSAGE_SELF);
    let t0 = Instant::now();
    let mut seen = 0;
    while seen < n {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.expect("consume");
            send(&out, "out-plain", m.payload().unwrap_or_default());
            seen += 1;
        }
    }
    out.flush(Duration::from_secs(120)).expect("flush");
    let plain = (t0.elapsed().as_secs_f64(), cpu_seconds(libc::RUSAGE_SELF) - cpu0);
    drop(consumer);

    // 2. Rivulet, at-least-once and exactly-once sinks.
    let bin = std::env::var("RIVULET_BIN").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from(env!("CARGO_BIN_EXE_rivulet")));
    let plugin = repo().join("plugins-examples/passthrough/passthrough.wasm");
    assert!(plugin.exists(), "run `make plugins` first");
    let mut rows = Vec::new();
    for (delivery, topic) in [("at_least_once", "out-alo"), ("exactly_once", "out-eo")] {
        let spec = dir.path().join(format!("{delivery}.yaml"));
        std::fs::write(
            &spec,
            format!(
                "name: bench-{delivery}\nsources:\n  - {{ id: in, type: kafka, bootstrap_servers: \"{bootstrap}\", topic: in, bounded: true }}\n\
                 operators:\n  - {{ uid: pass, plugin: \"{}\", inputs: [in] }}\n\
                 sinks:\n  - {{ id: out, type: kafka, bootstrap_servers: \"{bootstrap}\", topic: {topic}, delivery: {delivery}, inputs: [pass] }}\n",
                plugin.display()
            ),
        )
        .expect("spec");
        let cpu0 = cpu_seconds(libc::RUSAGE_CHILDREN);
        let t0 = Instant::now();
        let status = Command::new(&bin)
            .arg("run")
            .arg(&spec)
            .args(["--quiet", "--checkpoint-interval", "1s", "--checkpoint-dir"])
            .arg(dir.path().join(format!("ck-{delivery}")))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .stdout(Stdio::null())
            .status()
            .expect("rivulet");
        assert!(status.success(), "rivulet run failed");
        rows.push((delivery, t0.elapsed().as_secs_f64(), cpu_seconds(libc::RUSAGE_CHILDREN) - cpu0));
    }
    let _ = Command::new("bash").arg(repo().join("scripts/kafka.sh")).arg("stop").arg(dir.path().join("broker")).status();

    let per = |secs: f64| n as f64 / secs;
    println!("\n{n} records of 100 bytes, 1 partition, parallelism 1, broker on 127.0.0.1 (same machine)\n");
    println!("| pipeline | wall s | records/s | CPU s | records per CPU-second | vs plain loop (per CPU-second) |");
    println!("|---|---|---|---|---|---|");
    println!("| plain rdkafka consume → produce loop | {:.2} | {:.0} | {:.2} | {:.0} | 1.00 |", plain.0, per(plain.0), plain.1, per(plain.1));
    for (delivery, wall, cpu) in rows {
        println!(
            "| Rivulet Kafka → passthrough.wasm → Kafka, {} | {wall:.2} | {:.0} | {cpu:.2} | {:.0} | {:.2} |",
            delivery.replace('_', "-"),
            per(wall),
            per(cpu),
            per(cpu) / per(plain.1)
        );
    }
}
