//! Fencing by epoch, from a worker's side: a coordinator at the control port answers each
//! registration with its epoch; once a worker has served epoch 5 it refuses a coordinator
//! of epoch 3 (a deposed one) and keeps serving epoch 5 and higher.

use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use rivulet_cluster::protocol::{COORDINATOR, Frame, ToCoordinator, ToWorker, codec, decode, encode};
use rivulet_cluster::{ClusterToken, NetworkConfig, WorkerConfig, run_worker};
use rivulet_network::handshake::handshake;
use tokio::net::TcpListener;
use tokio_util::codec::Framed;

/// Accept one registration, answer it with `epoch`, and say whether the worker stayed
/// (sent a heartbeat within a second) or hung up.
async fn register_once(listener: &TcpListener, token: &ClusterToken, epoch: u64) -> bool {
    let (mut stream, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept()).await.expect("a worker in time").expect("accept");
    handshake(&mut stream, token, COORDINATOR, 0, None, Duration::from_secs(5)).await.expect("handshake");
    let mut framed = Framed::new(stream, codec());
    let first = framed.next().await.expect("a frame").expect("read");
    let Ok(Frame::Message(ToCoordinator::Register { pool, .. })) = decode::<ToCoordinator>(first.freeze()) else { panic!("not a registration") };
    assert_eq!(pool.as_deref(), Some("job-7"));
    let registered = ToWorker::Registered { worker: 1, heartbeat_ms: 100, timeout_ms: 5_000, epoch };
    framed.send(encode(&Frame::Message(&registered)).expect("encode")).await.expect("send");
    loop {
        match tokio::time::timeout(Duration::from_secs(1), framed.next()).await {
            Ok(Some(Ok(b))) => {
                if let Ok(Frame::Message(ToCoordinator::Heartbeat { .. })) = decode::<ToCoordinator>(b.freeze()) {
                    return true;
                }
            }
            Ok(_) => return false,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn a_worker_refuses_a_coordinator_of_an_older_epoch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let token = ClusterToken::new("the cluster token of the epoch test").expect("token");
    let config = WorkerConfig {
        coordinator: listener.local_addr().expect("addr").to_string(),
        token: token.clone(),
        slots: 1,
        data_dir: dir.path().to_path_buf(),
        advertise: "127.0.0.1".into(),
        bind: [127, 0, 0, 1].into(),
        name: "w".into(),
        network: NetworkConfig::default(),
        engine: rivulet_plugin::PluginEngine::new(None).expect("engine"),
        reconnect: Duration::from_millis(50),
        pool: Some("job-7".into()),
    };
    let worker = tokio::spawn(run_worker(config));
    assert!(register_once(&listener, &token, 5).await, "epoch 5 refused by a new worker");
    assert!(!register_once(&listener, &token, 3).await, "a worker that served epoch 5 accepted epoch 3");
    assert!(register_once(&listener, &token, 5).await, "epoch 5 refused after a deposed coordinator");
    assert!(register_once(&listener, &token, 6).await, "a newer epoch refused");
    assert!(!register_once(&listener, &token, 5).await, "a worker that served epoch 6 accepted epoch 5");
    worker.abort();
}
