//! The control protocol between the coordinator and its workers: typed messages, each a
//! length-delimited frame on the worker's one control connection (after the handshake
//! that proves the cluster token). A frame is one kind byte then its body: a JSON
//! message, or a plugin's bytes (its sha256 first), which a worker caches by digest.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use bytes::{BufMut, Bytes, BytesMut};
use rivulet_checkpoint::TaskReport;
use rivulet_dataflow::{Barrier, SubtaskId};
use rivulet_network::WorkerId;
use rivulet_runtime::RemoteFailure;
use rivulet_state::BackendKind;
use serde::{Deserialize, Serialize};
use tokio_util::codec::LengthDelimitedCodec;

/// The largest control frame: a plugin component is the largest thing sent.
pub const MAX_CONTROL_FRAME: usize = 256 << 20;

/// The worker id the coordinator has in the handshake; workers present
/// [`UNREGISTERED`] until the coordinator gives them theirs.
pub const COORDINATOR: WorkerId = 0;

/// The id a worker presents in the control handshake (it has none yet).
pub const UNREGISTERED: WorkerId = u32::MAX;

/// A run as the cluster knows it: unique for the coordinator process's lifetime and
/// the handshake's attempt on the exchange between the run's workers.
pub type RunId = u64;

/// Counters of one node on one worker (totals for the run so far).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeTotals {
    /// Records received.
    pub records_in: u64,
    /// Records emitted.
    pub records_out: u64,
    /// Late records.
    pub late: u64,
    /// The node's watermark on this worker.
    pub watermark: i64,
    /// Batches received.
    pub batches_in: u64,
    /// Dead letters.
    pub dead_letters: u64,
    /// Nanoseconds in guest calls.
    #[serde(default)]
    pub guest_ns: u64,
    /// Nanoseconds waiting on full channels.
    #[serde(default)]
    pub backpressure_ns: u64,
    /// Largest linear memory of an instance.
    #[serde(default)]
    pub memory_bytes: u64,
}

/// Everything a worker needs to run its share of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deployment {
    /// The job graph, plugin paths as the coordinator has them.
    pub graph: rivulet_job::JobGraph,
    /// The sha256 of each operator node's plugin (sent before as a [`Frame::Plugin`]).
    pub plugins: BTreeMap<usize, String>,
    /// The run's attempt number (guests see it).
    pub attempt: u32,
    /// The snapshot the run starts from.
    pub restore: Option<String>,
    /// The job's checkpoint root, when it checkpoints.
    pub checkpoint_root: Option<String>,
    /// Incremental RocksDB uploads.
    pub incremental: bool,
    /// State backend.
    pub state_backend: BackendKind,
    /// Guest memory limit, bytes.
    pub memory_bytes: usize,
    /// Guest call timeout, ms.
    pub call_timeout_ms: u64,
    /// Drop state the job no longer has.
    pub allow_non_restored_state: bool,
    /// The plan's tasks (by index) this worker runs.
    pub tasks: Vec<usize>,
    /// Which worker runs each receiving subtask.
    pub receivers: Vec<(SubtaskId, WorkerId)>,
}

impl Deployment {
    /// The receivers as a map.
    pub fn receiver_map(&self) -> HashMap<SubtaskId, WorkerId> {
        self.receivers.iter().copied().collect()
    }
}

/// From the coordinator to a worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ToWorker {
    /// Registration accepted: the worker's id and how often to heartbeat.
    Registered {
        /// Its id.
        worker: WorkerId,
        /// Heartbeat interval, ms.
        heartbeat_ms: u64,
        /// A worker that hears nothing from the coordinator for this long stops its
        /// runs and registers again, ms.
        timeout_ms: u64,
        /// The coordinator's epoch (its leadership term; 0 without a lease). A worker
        /// that served a higher epoch refuses a lower one: a deposed coordinator cannot
        /// take workers back.
        epoch: u64,
    },
    /// The answer to each heartbeat: the coordinator is alive.
    Alive,
    /// Get ready to run a share of `run`: load plugins, bind an exchange port, answer
    /// [`ToCoordinator::Ready`].
    Prepare {
        /// The run.
        run: RunId,
        /// What to run.
        deployment: Box<Deployment>,
    },
    /// Every worker of `run` is ready: connect to the peers and start the tasks.
    Start {
        /// The run.
        run: RunId,
        /// Each worker's exchange address.
        peers: BTreeMap<WorkerId, SocketAddr>,
    },
    /// Inject a barrier at the run's sources on this worker.
    Barrier {
        /// The run.
        run: RunId,
        /// The barrier.
        barrier: Barrier,
    },
    /// Snapshot `id` of the run's job completed.
    Completed {
        /// The run.
        run: RunId,
        /// Snapshot id.
        id: u64,
    },
    /// Stop the run's tasks (the run failed elsewhere, or ended).
    Cancel {
        /// The run.
        run: RunId,
    },
}

/// From a worker to the coordinator.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToCoordinator {
    /// The first message: what the worker offers.
    Register {
        /// Task slots.
        slots: u32,
        /// The host its exchange ports are reachable at.
        host: String,
        /// A name for humans (host name, pod name).
        name: String,
        /// The job it was made for (a pod of the `kubernetes` scheduler): it runs only
        /// that job's tasks. `None`: any job's.
        pool: Option<String>,
    },
    /// Alive, with each run's counters.
    Heartbeat {
        /// (run, totals per node index).
        runs: Vec<(RunId, Vec<NodeTotals>)>,
    },
    /// Ready for `run`: its exchange port.
    Ready {
        /// The run.
        run: RunId,
        /// Port of its exchange listener.
        port: u16,
    },
    /// Could not prepare or start `run`.
    Refused {
        /// The run.
        run: RunId,
        /// Why.
        failure: RemoteFailure,
    },
    /// A task's snapshot report.
    Report {
        /// The run.
        run: RunId,
        /// The report.
        report: TaskReport,
    },
    /// The worker's share of `run` ended.
    Finished {
        /// The run.
        run: RunId,
        /// Final counters.
        totals: Vec<NodeTotals>,
        /// The first failure, if any.
        failure: Option<RemoteFailure>,
    },
}

/// One control frame.
#[derive(Debug)]
pub enum Frame<M> {
    /// A message.
    Message(M),
    /// A plugin component: its sha256 (hex) and bytes.
    Plugin {
        /// sha256, hex.
        digest: String,
        /// The component.
        bytes: Bytes,
    },
}

/// Why a control frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// An empty frame, or one of an unknown kind.
    #[error("control frame of unknown kind")]
    UnknownKind,
    /// A message that does not parse.
    #[error("control message: {0}")]
    Json(#[from] serde_json::Error),
    /// A plugin frame whose bytes do not match its digest.
    #[error("plugin frame: bytes do not match digest {0}")]
    Digest(String),
    /// The connection failed.
    #[error("control connection: {0}")]
    Io(#[from] std::io::Error),
}

const KIND_MESSAGE: u8 = 0;
const KIND_PLUGIN: u8 = 1;

/// The codec of control connections.
pub fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder().max_frame_length(MAX_CONTROL_FRAME).new_codec()
}

/// Encode a frame.
pub fn encode<M: Serialize>(frame: &Frame<M>) -> Result<Bytes, ProtocolError> {
    let mut out = BytesMut::new();
    match frame {
        Frame::Message(m) => {
            out.put_u8(KIND_MESSAGE);
            out.extend_from_slice(&serde_json::to_vec(m)?);
        }
        Frame::Plugin { digest, bytes } => {
            out.put_u8(KIND_PLUGIN);
            out.put_u8(digest.len() as u8);
            out.extend_from_slice(digest.as_bytes());
            out.extend_from_slice(bytes);
        }
    }
    Ok(out.freeze())
}

/// Decode a frame (a plugin's digest is checked).
pub fn decode<M: for<'de> Deserialize<'de>>(frame: Bytes) -> Result<Frame<M>, ProtocolError> {
    match frame.first() {
        Some(&KIND_MESSAGE) => Ok(Frame::Message(serde_json::from_slice(&frame[1..])?)),
        Some(&KIND_PLUGIN) => {
            let n = *frame.get(1).ok_or(ProtocolError::UnknownKind)? as usize;
            let digest = frame.get(2..2 + n).ok_or(ProtocolError::UnknownKind)?;
            let digest = String::from_utf8_lossy(digest).into_owned();
            let bytes = frame.slice(2 + n..);
            if rivulet_checkpoint::sha256_hex(&bytes) != digest {
                return Err(ProtocolError::Digest(digest));
            }
            Ok(Frame::Plugin { digest, bytes })
        }
        _ => Err(ProtocolError::UnknownKind),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_plugins_round_trip_and_a_wrong_digest_is_refused() {
        let m = ToWorker::Completed { run: 7, id: 3 };
        let Frame::Message(ToWorker::Completed { run, id }) = decode::<ToWorker>(encode(&Frame::Message(m)).expect("encode")).expect("decode") else {
            panic!("not a message")
        };
        assert_eq!((run, id), (7, 3));
        let bytes = Bytes::from_static(b"\0asm component");
        let digest = rivulet_checkpoint::sha256_hex(&bytes);
        let frame = encode::<ToWorker>(&Frame::Plugin { digest: digest.clone(), bytes: bytes.clone() }).expect("encode");
        assert!(matches!(decode::<ToWorker>(frame).expect("decode"), Frame::Plugin { digest: d, bytes: b } if d == digest && b == bytes));
        let bad = encode::<ToWorker>(&Frame::Plugin { digest: "00".repeat(32), bytes }).expect("encode");
        assert!(matches!(decode::<ToWorker>(bad), Err(ProtocolError::Digest(_))));
        assert!(matches!(decode::<ToWorker>(Bytes::from_static(&[9])), Err(ProtocolError::UnknownKind)));
        assert!(matches!(decode::<ToWorker>(Bytes::new()), Err(ProtocolError::UnknownKind)));
    }
}
