//! In-process wake-up from ingest to processor.
//!
//! Polling the log alone would put the poll interval into every record's latency; with this signal
//! a processor in the same process wakes as soon as a batch is committed. Processors in other
//! processes still poll, so the signal is an optimisation, never a correctness requirement.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

#[derive(Debug, Default)]
struct State {
    last_seq: u64,
    closed: bool,
}

/// Shared between one appender and any number of waiters.
#[derive(Debug, Clone, Default)]
pub struct AppendSignal {
    inner: Arc<(Mutex<State>, Condvar)>,
}

impl AppendSignal {
    pub fn new() -> Self {
        Self::default()
    }

    /// Announces that records up to `seq` are durable.
    pub fn appended(&self, seq: u64) {
        let (lock, cvar) = &*self.inner;
        let mut state = lock.lock().expect("signal lock poisoned");
        state.last_seq = state.last_seq.max(seq);
        cvar.notify_all();
    }

    /// Announces that no more records will be appended by this process (ingest finished).
    pub fn close(&self) {
        let (lock, cvar) = &*self.inner;
        lock.lock().expect("signal lock poisoned").closed = true;
        cvar.notify_all();
    }

    pub fn is_closed(&self) -> bool {
        self.inner.0.lock().expect("signal lock poisoned").closed
    }

    /// Blocks until something past `seen` was appended, the signal is closed, or `timeout` passes.
    pub fn wait_past(&self, seen: u64, timeout: Duration) {
        let (lock, cvar) = &*self.inner;
        let state = lock.lock().expect("signal lock poisoned");
        let _unused = cvar
            .wait_timeout_while(state, timeout, |s| s.last_seq <= seen && !s.closed)
            .expect("signal lock poisoned");
    }
}
