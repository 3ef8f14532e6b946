//! The in-process exchange: a bounded tokio queue per receiving subtask.

use std::collections::HashMap;
use std::sync::Mutex;
use std::task::{Context, Poll};

use tokio::sync::mpsc;

use super::{ChannelSender, DownstreamGone, Exchange, ExchangeError, InputQueue, SendFuture, SubtaskId};
use crate::message::{Envelope, Message};

/// Subtasks of one process, connected by bounded queues of `capacity` messages each.
#[derive(Debug)]
pub struct LocalExchange {
    capacity: usize,
    senders: Mutex<HashMap<SubtaskId, mpsc::Sender<Envelope>>>,
}

impl LocalExchange {
    /// An exchange whose queues hold `capacity` messages before senders wait.
    pub fn new(capacity: usize) -> Self {
        LocalExchange { capacity: capacity.max(1), senders: Mutex::new(HashMap::new()) }
    }
}

#[derive(Debug)]
struct LocalInput(mpsc::Receiver<Envelope>);

impl InputQueue for LocalInput {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Envelope>> {
        self.0.poll_recv(cx)
    }
}

/// The sending end of one channel into a bounded in-memory queue (also what other
/// exchanges use for channels between subtasks of one process).
#[derive(Debug)]
pub struct LocalSender {
    tx: mpsc::Sender<Envelope>,
    channel: usize,
}

impl LocalSender {
    /// Channel `channel` of the queue `tx` feeds.
    pub fn new(tx: mpsc::Sender<Envelope>, channel: usize) -> Self {
        LocalSender { tx, channel }
    }
}

impl ChannelSender for LocalSender {
    fn send(&self, msg: Message) -> SendFuture<'_> {
        Box::pin(async move { self.tx.send(Envelope { channel: self.channel, msg }).await.map_err(|_| DownstreamGone) })
    }
}

impl Exchange for LocalExchange {
    fn input(&self, to: SubtaskId, _channels: usize) -> Box<dyn InputQueue> {
        let (tx, rx) = mpsc::channel(self.capacity);
        self.senders.lock().unwrap_or_else(|p| p.into_inner()).insert(to, tx);
        Box::new(LocalInput(rx))
    }

    fn sender(&self, to: SubtaskId, channel: usize) -> Result<Box<dyn ChannelSender>, ExchangeError> {
        let senders = self.senders.lock().unwrap_or_else(|p| p.into_inner());
        let tx = senders.get(&to).ok_or(ExchangeError::NoInput(to))?;
        Ok(Box::new(LocalSender { tx: tx.clone(), channel }))
    }

    fn seal(&self) {
        // Only tasks hold senders now: a queue closes when its producers are gone.
        self.senders.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}
