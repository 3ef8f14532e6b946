//! The first bytes of every connection between workers: each side names itself and the
//! job attempt it belongs to, and proves it holds the cluster token without sending it —
//! an HMAC-SHA256, keyed by the token, over the other side's fresh nonce and both names.
//! A connection that fails the proof, names another attempt, or takes longer than the
//! timeout is closed before any frame is read.
//!
//! Each side sends `hello` = magic `RVLX`, version u8, worker id u32, attempt u64,
//! nonce (32 bytes), then, after reading the other's hello, `proof` = 32 bytes.

use std::time::Duration;

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A worker's id in the cluster.
pub type WorkerId = u32;

const MAGIC: &[u8; 4] = b"RVLX";
const VERSION: u8 = 2;
const HELLO_BYTES: usize = 4 + 1 + 4 + 8 + 32;
const PROOF_BYTES: usize = 32;

/// The cluster's shared secret: who holds it may join.
#[derive(Clone)]
pub struct ClusterToken(hmac::Key);

impl ClusterToken {
    /// A token from its text (at least 16 bytes).
    pub fn new(secret: &str) -> Result<Self, HandshakeError> {
        if secret.len() < 16 {
            return Err(HandshakeError::WeakToken);
        }
        Ok(ClusterToken(hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes())))
    }
}

impl std::fmt::Debug for ClusterToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterToken(..)")
    }
}

/// Why a connection was refused.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The connection failed or closed.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// The other side did not answer in time.
    #[error("no handshake within {0:?}")]
    Timeout(Duration),
    /// The other side does not speak this protocol (or another version of it).
    #[error("not a Rivulet worker (or another protocol version)")]
    Protocol,
    /// The other side's proof does not match the cluster token.
    #[error("worker {0} does not hold the cluster token")]
    BadProof(WorkerId),
    /// The other side belongs to another attempt of the job.
    #[error("worker {peer} is at attempt {theirs}, this one at {ours}")]
    StaleAttempt {
        /// The other side.
        peer: WorkerId,
        /// Its attempt.
        theirs: u64,
        /// Ours.
        ours: u64,
    },
    /// The other side is not the worker this side dialled.
    #[error("expected worker {expected}, found worker {found}")]
    WrongPeer {
        /// Dialled.
        expected: WorkerId,
        /// Answered.
        found: WorkerId,
    },
    /// The cluster token is shorter than 16 bytes.
    #[error("the cluster token must be at least 16 bytes")]
    WeakToken,
    /// No randomness for a nonce.
    #[error("no randomness for a nonce")]
    Random,
}

/// Who is at the other end, once proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// Its worker id.
    pub id: WorkerId,
}

fn proof(token: &ClusterToken, their_nonce: &[u8], me: WorkerId, them: WorkerId, attempt: u64) -> hmac::Tag {
    let mut msg = Vec::with_capacity(64);
    msg.extend_from_slice(b"rivulet-exchange-v1");
    msg.extend_from_slice(their_nonce);
    msg.extend_from_slice(&me.to_le_bytes());
    msg.extend_from_slice(&them.to_le_bytes());
    msg.extend_from_slice(&attempt.to_le_bytes());
    hmac::sign(&token.0, &msg)
}

/// Run the handshake on `io` as worker `me` of `attempt`; `expect` is the worker dialled
/// (`None` when accepting). Both sides run the same steps.
pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    token: &ClusterToken,
    me: WorkerId,
    attempt: u64,
    expect: Option<WorkerId>,
    timeout: Duration,
) -> Result<Peer, HandshakeError> {
    tokio::time::timeout(timeout, exchange(io, token, me, attempt, expect)).await.map_err(|_| HandshakeError::Timeout(timeout))?
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    token: &ClusterToken,
    me: WorkerId,
    attempt: u64,
    expect: Option<WorkerId>,
) -> Result<Peer, HandshakeError> {
    let mut nonce = [0u8; 32];
    SystemRandom::new().fill(&mut nonce).map_err(|_| HandshakeError::Random)?;
    let mut hello = Vec::with_capacity(HELLO_BYTES);
    hello.extend_from_slice(MAGIC);
    hello.push(VERSION);
    hello.extend_from_slice(&me.to_le_bytes());
    hello.extend_from_slice(&attempt.to_le_bytes());
    hello.extend_from_slice(&nonce);
    io.write_all(&hello).await?;
    io.flush().await?;

    let mut theirs = [0u8; HELLO_BYTES];
    io.read_exact(&mut theirs).await?;
    if &theirs[..4] != MAGIC || theirs[4] != VERSION {
        return Err(HandshakeError::Protocol);
    }
    let peer = WorkerId::from_le_bytes(theirs[5..9].try_into().map_err(|_| HandshakeError::Protocol)?);
    let their_attempt = u64::from_le_bytes(theirs[9..17].try_into().map_err(|_| HandshakeError::Protocol)?);
    let their_nonce = &theirs[17..];
    if let Some(expected) = expect
        && expected != peer
    {
        return Err(HandshakeError::WrongPeer { expected, found: peer });
    }

    io.write_all(proof(token, their_nonce, me, peer, attempt).as_ref()).await?;
    io.flush().await?;
    let mut their_proof = [0u8; PROOF_BYTES];
    io.read_exact(&mut their_proof).await?;
    let mut signed = Vec::with_capacity(64);
    signed.extend_from_slice(b"rivulet-exchange-v1");
    signed.extend_from_slice(&nonce);
    signed.extend_from_slice(&peer.to_le_bytes());
    signed.extend_from_slice(&me.to_le_bytes());
    signed.extend_from_slice(&their_attempt.to_le_bytes());
    hmac::verify(&token.0, &signed, &their_proof).map_err(|_| HandshakeError::BadProof(peer))?;
    if their_attempt != attempt {
        return Err(HandshakeError::StaleAttempt { peer, theirs: their_attempt, ours: attempt });
    }
    Ok(Peer { id: peer })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(1);

    async fn pair(
        a: (&ClusterToken, WorkerId, u64, Option<WorkerId>),
        b: (&ClusterToken, WorkerId, u64, Option<WorkerId>),
    ) -> (Result<Peer, HandshakeError>, Result<Peer, HandshakeError>) {
        let (mut x, mut y) = tokio::io::duplex(1024);
        tokio::join!(handshake(&mut x, a.0, a.1, a.2, a.3, T), handshake(&mut y, b.0, b.1, b.2, b.3, T))
    }

    #[tokio::test]
    async fn workers_with_the_token_and_the_same_attempt_meet() {
        let t = ClusterToken::new("a cluster secret of some length").expect("token");
        let (a, b) = pair((&t, 1, 7, Some(2)), (&t, 2, 7, None)).await;
        assert_eq!(a.expect("a").id, 2);
        assert_eq!(b.expect("b").id, 1);
    }

    #[tokio::test]
    async fn a_wrong_token_a_stale_attempt_or_another_peer_is_refused() {
        let t = ClusterToken::new("a cluster secret of some length").expect("token");
        let other = ClusterToken::new("another secret, not the cluster's").expect("token");
        let (a, b) = pair((&t, 1, 7, None), (&other, 2, 7, None)).await;
        assert!(matches!(a, Err(HandshakeError::BadProof(2))), "{a:?}");
        assert!(matches!(b, Err(HandshakeError::BadProof(1))), "{b:?}");
        let (a, _) = pair((&t, 1, 7, None), (&t, 2, 6, None)).await;
        assert!(matches!(a, Err(HandshakeError::StaleAttempt { peer: 2, theirs: 6, ours: 7 })), "{a:?}");
        let (a, _) = pair((&t, 1, 7, Some(3)), (&t, 2, 7, None)).await;
        assert!(matches!(a, Err(HandshakeError::WrongPeer { expected: 3, found: 2 })), "{a:?}");
        assert!(matches!(ClusterToken::new("short"), Err(HandshakeError::WeakToken)));
    }

    #[tokio::test]
    async fn garbage_or_silence_is_refused() {
        let t = ClusterToken::new("a cluster secret of some length").expect("token");
        let (mut x, mut y) = tokio::io::duplex(1024);
        let junk = async move {
            y.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n________________________").await.expect("write");
            y
        };
        let (r, _y) = tokio::join!(handshake(&mut x, &t, 1, 7, None, T), junk);
        assert!(matches!(r, Err(HandshakeError::Protocol)), "{r:?}");
        let (mut x, _y) = tokio::io::duplex(1024);
        let r = handshake(&mut x, &t, 1, 7, None, Duration::from_millis(50)).await;
        assert!(matches!(r, Err(HandshakeError::Timeout(_))), "{r:?}");
    }
}
