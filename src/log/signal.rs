//! In-process wake-up from ingest to its readers (the processor, the relay).
//!
//! Polling the log alone would put the poll interval into every record's latency; with this signal
//! a reader in the same process wakes as soon as a batch is committed. Readers in other processes
//! still poll, so the signal is an optimisation, never a correctness requirement. It is a tokio
//! `watch` channel: readers await it on the runtime, with no thread parked per reader.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

#[derive(Debug, Default, Clone, Copy)]
struct State {
    last_seq: u64,
    closed: bool,
}

/// Shared between one appender and any number of waiters.
#[derive(Debug, Clone)]
pub struct AppendSignal {
    state: Arc<watch::Sender<State>>,
}

impl Default for AppendSignal {
    fn default() -> Self {
        Self {
            state: Arc::new(watch::Sender::new(State::default())),
        }
    }
}

impl AppendSignal {
    pub fn new() -> Self {
        Self::default()
    }

    /// Announces that records up to `seq` are durable.
    pub fn appended(&self, seq: u64) {
        self.state.send_if_modified(|s| {
            let moved = seq > s.last_seq;
            s.last_seq = s.last_seq.max(seq);
            moved
        });
    }

    /// Announces that no more records will be appended by this process (ingest finished).
    pub fn close(&self) {
        self.state.send_modify(|s| s.closed = true);
    }

    pub fn is_closed(&self) -> bool {
        self.state.borrow().closed
    }

    /// Waits until something past `seen` was appended, the signal is closed, or `timeout` passes.
    pub async fn wait_past(&self, seen: u64, timeout: Duration) {
        let mut changes = self.state.subscribe();
        let _ = tokio::time::timeout(timeout, changes.wait_for(|s| s.last_seq > seen || s.closed))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_waiter_wakes_on_an_append_past_what_it_saw_or_on_close() {
        let signal = AppendSignal::new();
        signal.appended(5);
        let started = tokio::time::Instant::now();
        signal.wait_past(4, Duration::from_secs(60)).await;
        assert_eq!(started.elapsed(), Duration::ZERO, "5 > 4: no wait");
        let waiter = tokio::spawn({
            let signal = signal.clone();
            async move { signal.wait_past(5, Duration::from_secs(60)).await }
        });
        tokio::task::yield_now().await;
        signal.close();
        waiter.await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "woken by close"
        );
        assert!(signal.is_closed());
    }
}
