//! The frames on a connection between two workers, and their byte encoding (inside
//! `tokio-util`'s length-delimited framing; all integers little-endian).
//!
//! | frame | tag | body |
//! |---|---|---|
//! | data | 1 | node u32, subtask u32, channel u32, then the message |
//! | credit | 2 | node u32, subtask u32, channel u32, grant u32 |
//! | heartbeat | 3 | — |
//!
//! A message is a kind byte and its fields: batch (0: record count u32, then the batch's
//! encoded bytes to the end of the frame — the same encoding guests read), watermark
//! (1: i64), idle (2), end (3), barrier (4: id u64, kind u8 — 0 checkpoint, 1 savepoint —,
//! stop u8, and format u8 — 0 canonical, 1 native).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use rivulet_dataflow::{Barrier, Batch, Message, SnapshotFormat, SnapshotKind, SubtaskId};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

/// The largest frame accepted: a batch of records each at most the largest record size,
/// with room to spare. A peer sending more is broken or hostile.
pub const MAX_FRAME_BYTES: usize = 1 << 30;

/// One frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A message for channel `channel` of subtask `to` (which runs at the receiver).
    Data {
        /// The receiving subtask.
        to: SubtaskId,
        /// Its input channel.
        channel: u32,
        /// The message.
        msg: Message,
    },
    /// The receiver of channel `channel` of `to` took `grant` more messages off it: the
    /// sender may send that many more.
    Credit {
        /// The receiving subtask.
        to: SubtaskId,
        /// Its input channel.
        channel: u32,
        /// Messages granted.
        grant: u32,
    },
    /// Nothing to say: the connection is alive.
    Heartbeat,
}

/// A frame that could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The connection failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The bytes are not a frame.
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
}

const DATA: u8 = 1;
const CREDIT: u8 = 2;
const HEARTBEAT: u8 = 3;

const BATCH: u8 = 0;
const WATERMARK: u8 = 1;
const IDLE: u8 = 2;
const END: u8 = 3;
const BARRIER: u8 = 4;

/// Encodes and decodes [`Frame`]s inside length-delimited framing.
#[derive(Debug)]
pub struct FrameCodec {
    framing: LengthDelimitedCodec,
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec { framing: LengthDelimitedCodec::builder().little_endian().max_frame_length(MAX_FRAME_BYTES).new_codec() }
    }
}

fn put_subtask(out: &mut BytesMut, to: SubtaskId, channel: u32) {
    out.put_u32_le(u32::try_from(to.node).unwrap_or(u32::MAX));
    out.put_u32_le(to.subtask);
    out.put_u32_le(channel);
}

/// The frame's body (without the length prefix).
fn encode_body(frame: &Frame, out: &mut BytesMut) {
    match frame {
        Frame::Data { to, channel, msg } => {
            out.put_u8(DATA);
            put_subtask(out, *to, *channel);
            match msg {
                Message::Batch(b) => {
                    out.put_u8(BATCH);
                    out.put_u32_le(u32::try_from(b.len()).unwrap_or(u32::MAX));
                    out.put_slice(b.as_slice());
                }
                Message::Watermark(wm) => {
                    out.put_u8(WATERMARK);
                    out.put_i64_le(*wm);
                }
                Message::Idle => out.put_u8(IDLE),
                Message::End => out.put_u8(END),
                Message::Barrier(b) => {
                    out.put_u8(BARRIER);
                    out.put_u64_le(b.id);
                    out.put_u8(match b.kind {
                        SnapshotKind::Checkpoint => 0,
                        SnapshotKind::Savepoint => 1,
                    });
                    out.put_u8(u8::from(b.stop));
                    out.put_u8(match b.format {
                        SnapshotFormat::Canonical => 0,
                        SnapshotFormat::Native => 1,
                    });
                }
            }
        }
        Frame::Credit { to, channel, grant } => {
            out.put_u8(CREDIT);
            put_subtask(out, *to, *channel);
            out.put_u32_le(*grant);
        }
        Frame::Heartbeat => out.put_u8(HEARTBEAT),
    }
}

fn need(body: &Bytes, n: usize, what: &'static str) -> Result<(), FrameError> {
    if body.remaining() < n { Err(FrameError::Malformed(what)) } else { Ok(()) }
}

fn get_subtask(body: &mut Bytes) -> Result<(SubtaskId, u32), FrameError> {
    need(body, 12, "truncated subtask")?;
    let node = body.get_u32_le() as usize;
    let subtask = body.get_u32_le();
    let channel = body.get_u32_le();
    Ok((SubtaskId { node, subtask }, channel))
}

/// Decode a frame's body.
pub fn decode_body(mut body: Bytes) -> Result<Frame, FrameError> {
    need(&body, 1, "empty frame")?;
    match body.get_u8() {
        DATA => {
            let (to, channel) = get_subtask(&mut body)?;
            need(&body, 1, "no message kind")?;
            let msg = match body.get_u8() {
                BATCH => {
                    need(&body, 4, "truncated batch")?;
                    let records = body.get_u32_le() as usize;
                    Message::Batch(Batch::new(body.to_vec(), records))
                }
                WATERMARK => {
                    need(&body, 8, "truncated watermark")?;
                    Message::Watermark(body.get_i64_le())
                }
                IDLE => Message::Idle,
                END => Message::End,
                BARRIER => {
                    need(&body, 11, "truncated barrier")?;
                    let id = body.get_u64_le();
                    let kind = match body.get_u8() {
                        0 => SnapshotKind::Checkpoint,
                        1 => SnapshotKind::Savepoint,
                        _ => return Err(FrameError::Malformed("unknown snapshot kind")),
                    };
                    let stop = match body.get_u8() {
                        0 => false,
                        1 => true,
                        _ => return Err(FrameError::Malformed("bad stop flag")),
                    };
                    let format = match body.get_u8() {
                        0 => SnapshotFormat::Canonical,
                        1 => SnapshotFormat::Native,
                        _ => return Err(FrameError::Malformed("unknown snapshot format")),
                    };
                    Message::Barrier(Barrier { id, kind, stop, format })
                }
                _ => return Err(FrameError::Malformed("unknown message kind")),
            };
            if !matches!(msg, Message::Batch(_)) && body.has_remaining() {
                return Err(FrameError::Malformed("trailing bytes"));
            }
            Ok(Frame::Data { to, channel, msg })
        }
        CREDIT => {
            let (to, channel) = get_subtask(&mut body)?;
            need(&body, 4, "truncated credit")?;
            let grant = body.get_u32_le();
            if body.has_remaining() {
                return Err(FrameError::Malformed("trailing bytes"));
            }
            Ok(Frame::Credit { to, channel, grant })
        }
        HEARTBEAT if !body.has_remaining() => Ok(Frame::Heartbeat),
        HEARTBEAT => Err(FrameError::Malformed("trailing bytes")),
        _ => Err(FrameError::Malformed("unknown frame tag")),
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        // The body is written once, after a placeholder for its length: a batch's bytes
        // are copied straight into the write buffer.
        let start = dst.len();
        dst.put_u32_le(0);
        encode_body(&frame, dst);
        let len = dst.len() - start - 4;
        if len > MAX_FRAME_BYTES {
            dst.truncate(start);
            return Err(FrameError::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, "frame larger than the limit")));
        }
        dst[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
        Ok(())
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        match self.framing.decode(src)? {
            Some(body) => decode_body(body.freeze()).map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(frame: Frame) {
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        codec.encode(frame.clone(), &mut buf).expect("encodes");
        let back = codec.decode(&mut buf).expect("decodes").expect("a whole frame");
        assert_eq!(back, frame);
        assert!(buf.is_empty());
    }

    #[test]
    fn every_frame_round_trips() {
        let to = SubtaskId { node: 3, subtask: 7 };
        let mut b = rivulet_dataflow::BatchBuilder::new();
        b.push(Some(b"k"), b"value", 42);
        b.push(None, b"", -1);
        for msg in [
            Message::Batch(b.take()),
            Message::Watermark(i64::MIN),
            Message::Idle,
            Message::End,
            Message::Barrier(Barrier { id: 9, kind: SnapshotKind::Savepoint, stop: true, format: SnapshotFormat::Native }),
        ] {
            round_trip(Frame::Data { to, channel: 2, msg });
        }
        round_trip(Frame::Credit { to, channel: 5, grant: 4 });
        round_trip(Frame::Heartbeat);
    }

    #[test]
    fn malformed_bodies_are_errors() {
        for body in [&b""[..], b"\x09", b"\x01\x00", b"\x03x", b"\x01\0\0\0\0\0\0\0\0\0\0\0\0\x04\0"] {
            assert!(decode_body(Bytes::copy_from_slice(body)).is_err(), "{body:?}");
        }
    }
}
