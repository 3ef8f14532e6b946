//! Two (or more) workers' exchanges over loopback TCP in one test process: messages keep
//! their order, credit bounds what is in flight, and a peer that dies or goes quiet fails
//! the exchange instead of hanging it.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use rivulet_dataflow::{Barrier, BatchBuilder, Envelope, Exchange, InputQueue, Message, SnapshotKind, SubtaskId};
use rivulet_network::{ClusterToken, NetworkConfig, NetworkError, NetworkExchange};
use tokio::net::TcpListener;

const SOURCE: SubtaskId = SubtaskId { node: 0, subtask: 0 };
const SINK: SubtaskId = SubtaskId { node: 1, subtask: 0 };

fn token() -> ClusterToken {
    ClusterToken::new("the cluster token for these tests").expect("token")
}

fn config() -> NetworkConfig {
    NetworkConfig {
        credits_per_channel: 2,
        heartbeat: Duration::from_millis(50),
        peer_timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_secs(10),
        ..NetworkConfig::default()
    }
}

async fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    (l, addr)
}

/// Workers 1 (runs SOURCE) and 2 (runs SINK), connected.
async fn two_workers(config: NetworkConfig) -> (NetworkExchange, NetworkExchange) {
    let ((l1, a1), (l2, a2)) = (listener().await, listener().await);
    let placement: HashMap<SubtaskId, u32> = HashMap::from([(SOURCE, 1), (SINK, 2)]);
    let t = token();
    let (x1, x2) = tokio::join!(
        NetworkExchange::connect(config.clone(), 1, t.clone(), 7, &l1, BTreeMap::from([(2, a2)]), placement.clone()),
        NetworkExchange::connect(config.clone(), 2, t.clone(), 7, &l2, BTreeMap::from([(1, a1)]), placement.clone()),
    );
    (x1.expect("worker 1"), x2.expect("worker 2"))
}

async fn recv(input: &mut Box<dyn InputQueue>) -> Option<Envelope> {
    tokio::time::timeout(Duration::from_secs(5), std::future::poll_fn(|cx| input.poll_recv(cx))).await.expect("a message or the end in time")
}

#[tokio::test]
async fn messages_cross_in_order_with_batches_intact() {
    let (w1, w2) = two_workers(config()).await;
    let mut input = w2.input(SINK, 1);
    let tx = w1.sender(SINK, 0).expect("sender");
    let mut b = BatchBuilder::new();
    b.push(Some(b"key"), b"{\"v\":1}", 5);
    b.push(None, b"second", 6);
    let batch = b.take();
    let sent = vec![
        Message::Batch(batch.clone()),
        Message::Watermark(5),
        Message::Barrier(Barrier { id: 1, kind: SnapshotKind::Checkpoint, stop: false, format: rivulet_dataflow::SnapshotFormat::Canonical }),
        Message::Idle,
        Message::Batch(batch),
        Message::End,
    ];
    let sending = async {
        for m in sent.clone() {
            tx.send(m).await.expect("send");
        }
    };
    let receiving = async {
        let mut got = Vec::new();
        for _ in 0..sent.len() {
            let env = recv(&mut input).await.expect("a message");
            assert_eq!(env.channel, 0);
            got.push(env.msg);
        }
        got
    };
    let ((), got) = tokio::join!(sending, receiving);
    assert_eq!(got, sent);
}

#[tokio::test]
async fn credit_bounds_what_is_in_flight_and_comes_back_as_the_receiver_reads() {
    let (w1, w2) = two_workers(config()).await;
    let mut input = w2.input(SINK, 1);
    let tx = w1.sender(SINK, 0).expect("sender");
    for wm in 0..2 {
        tokio::time::timeout(Duration::from_secs(5), tx.send(Message::Watermark(wm))).await.expect("within credit").expect("sent");
    }
    // Out of credit: the third send waits for the receiver.
    let third = tx.send(Message::Watermark(2));
    tokio::pin!(third);
    assert!(tokio::time::timeout(Duration::from_millis(300), &mut third).await.is_err(), "a send beyond the credit waits");
    assert_eq!(recv(&mut input).await.map(|e| e.msg), Some(Message::Watermark(0)));
    tokio::time::timeout(Duration::from_secs(5), &mut third).await.expect("credit came back").expect("sent");
    assert_eq!(recv(&mut input).await.map(|e| e.msg), Some(Message::Watermark(1)));
    assert_eq!(recv(&mut input).await.map(|e| e.msg), Some(Message::Watermark(2)));
    assert!(w1.failure().is_none() && w2.failure().is_none());
}

#[tokio::test]
async fn a_peer_that_dies_fails_the_exchange_on_both_ends_of_its_channels() {
    let (w1, w2) = two_workers(config()).await;
    let mut input = w2.input(SINK, 1);
    let tx = w1.sender(SINK, 0).expect("sender");
    tx.send(Message::Watermark(1)).await.expect("sent");
    assert_eq!(recv(&mut input).await.map(|e| e.msg), Some(Message::Watermark(1)));
    drop(w1); // its connections close, as when its process is killed
    assert_eq!(recv(&mut input).await, None, "the input ends: the task fails, it does not wait");
    let why = tokio::time::timeout(Duration::from_secs(5), w2.failed()).await.expect("fails in time");
    assert!(why.contains("worker 1"), "{why}");
    // The dead worker's sender side: a sender of a failed exchange gives up too.
    let (w1, w2) = two_workers(config()).await;
    let tx = w1.sender(SINK, 0).expect("sender");
    drop(w2);
    let gone = async {
        loop {
            if tx.send(Message::Idle).await.is_err() {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), gone).await.expect("the sender gives up");
}

#[tokio::test]
async fn a_peer_that_goes_quiet_fails_the_exchange_after_the_timeout() {
    // "Worker 1" completes the handshake and then says nothing, not even heartbeats (a
    // partition that drops packets looks the same).
    let (l2, _) = listener().await;
    let t = token();
    let placement: HashMap<SubtaskId, u32> = HashMap::from([(SOURCE, 1), (SINK, 2)]);
    let (l1, a1) = listener().await;
    let quiet = async {
        let (mut s, _) = l1.accept().await.expect("accept");
        rivulet_network::handshake::handshake(&mut s, &t, 1, 7, None, Duration::from_secs(5)).await.expect("handshake");
        s
    };
    // The real worker is 0, so it dials the quiet worker 1.
    let placement0: HashMap<SubtaskId, u32> = placement.iter().map(|(k, v)| (*k, if *v == 2 { 0 } else { 1 })).collect();
    let real = NetworkExchange::connect(config(), 0, t.clone(), 7, &l2, BTreeMap::from([(1, a1)]), placement0);
    let (real, _socket) = tokio::join!(real, quiet);
    let real = real.expect("connected");
    let mut input = real.input(SINK, 1);
    let started = tokio::time::Instant::now();
    assert_eq!(recv(&mut input).await, None);
    let why = real.failed().await;
    assert!(why.contains("sent nothing"), "{why}");
    assert!(started.elapsed() < Duration::from_secs(3), "noticed within a few timeouts: {:?}", started.elapsed());
}

#[tokio::test]
async fn only_holders_of_the_token_join_and_missing_peers_are_named() {
    let (l1, a1) = listener().await;
    let placement: HashMap<SubtaskId, u32> = HashMap::from([(SOURCE, 1), (SINK, 2)]);
    // Worker 2 waits for worker 1; an impostor with another token connects first and is
    // turned away, then nobody else comes.
    let waiting = NetworkExchange::connect(
        NetworkConfig { connect_timeout: Duration::from_millis(800), ..config() },
        2,
        token(),
        7,
        &l1,
        BTreeMap::from([(1, "127.0.0.1:9".parse().expect("addr"))]),
        placement,
    );
    let impostor = async {
        let mut s = tokio::net::TcpStream::connect(a1).await.expect("connect");
        let other = ClusterToken::new("not the cluster token at all").expect("token");
        rivulet_network::handshake::handshake(&mut s, &other, 1, 7, None, Duration::from_secs(5)).await
    };
    let (waited, refused) = tokio::join!(waiting, impostor);
    assert!(refused.is_err(), "the impostor is refused: {refused:?}");
    match waited {
        Err(NetworkError::Missing(ids)) => assert_eq!(ids, vec![1]),
        other => panic!("expected worker 1 missing, got {other:?}"),
    }
}

#[tokio::test]
async fn same_worker_channels_stay_in_memory_beside_remote_ones() {
    let ((l1, a1), (l2, a2)) = (listener().await, listener().await);
    let other_source = SubtaskId { node: 0, subtask: 1 };
    let placement: HashMap<SubtaskId, u32> = HashMap::from([(SOURCE, 1), (other_source, 2), (SINK, 2)]);
    let t = token();
    let (w1, w2) = tokio::join!(
        NetworkExchange::connect(config(), 1, t.clone(), 7, &l1, BTreeMap::from([(2, a2)]), placement.clone()),
        NetworkExchange::connect(config(), 2, t.clone(), 7, &l2, BTreeMap::from([(1, a1)]), placement),
    );
    let (w1, w2) = (w1.expect("1"), w2.expect("2"));
    let mut input = w2.input(SINK, 2);
    let remote = w1.sender(SINK, 0).expect("remote sender");
    let local = w2.sender(SINK, 1).expect("local sender");
    w2.seal();
    remote.send(Message::End).await.expect("remote");
    local.send(Message::End).await.expect("local");
    let mut channels = vec![recv(&mut input).await.expect("one").channel, recv(&mut input).await.expect("two").channel];
    channels.sort();
    assert_eq!(channels, vec![0, 1]);
    assert!(w1.failure().is_none());
}

/// A new CA and a member certificate from it (`scripts/cluster-certs.sh`).
fn certificates(dir: &std::path::Path) -> rivulet_network::Transport {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/cluster-certs.sh");
    let out = std::process::Command::new("bash").arg(script).arg(dir).output().expect("bash");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let read = |f: &str| std::fs::read(dir.join(f)).expect("pem");
    rivulet_network::Transport::tls(rivulet_network::ClusterTls::from_pem(&read("tls.crt"), &read("tls.key"), &read("ca.crt")).expect("tls"))
}

#[tokio::test]
async fn tls_carries_the_exchange_and_a_peer_of_another_ca_or_without_tls_cannot_join() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ours = NetworkConfig { transport: certificates(&dir.path().join("a")), ..config() };
    let (w1, w2) = two_workers(ours.clone()).await;
    let mut input = w2.input(SINK, 1);
    let tx = w1.sender(SINK, 0).expect("sender");
    let mut b = BatchBuilder::new();
    b.push(Some(b"k"), b"{\"over\":\"tls\"}", 1);
    let batch = b.take();
    tx.send(Message::Batch(batch.clone())).await.expect("send");
    assert_eq!(recv(&mut input).await.expect("a message").msg, Message::Batch(batch));

    // A certificate of another CA, or none: the connection never gets to the token.
    let stranger = NetworkConfig { transport: certificates(&dir.path().join("b")), connect_timeout: Duration::from_secs(2), ..config() };
    let plain = NetworkConfig { connect_timeout: Duration::from_secs(2), ..config() };
    let ours = NetworkConfig { connect_timeout: Duration::from_secs(2), ..ours };
    for other in [stranger, plain] {
        let ((l1, a1), (l2, a2)) = (listener().await, listener().await);
        let placement: HashMap<SubtaskId, u32> = HashMap::from([(SOURCE, 1), (SINK, 2)]);
        let (x1, x2) = tokio::join!(
            NetworkExchange::connect(ours.clone(), 1, token(), 7, &l1, BTreeMap::from([(2, a2)]), placement.clone()),
            NetworkExchange::connect(other, 2, token(), 7, &l2, BTreeMap::from([(1, a1)]), placement),
        );
        assert!(x1.is_err() && x2.is_err(), "a connection between different TLS settings was made");
    }
}
