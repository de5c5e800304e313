//! Small shared helpers.

use std::sync::Arc;

use tokio::sync::watch;

/// Wall-clock milliseconds since the Unix epoch (Kafka timestamps).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A wake-up that any number of waiters can subscribe to: each `notify` wakes every
/// subscriber once. Cloning shares the signal. Used for "data was appended or a high
/// watermark moved", which long-polling fetches wait for.
#[derive(Debug, Clone)]
pub struct Signal(Arc<watch::Sender<u64>>);

impl Default for Signal {
    fn default() -> Self {
        Signal(Arc::new(watch::channel(0).0))
    }
}

impl Signal {
    /// Wakes every current subscriber.
    pub fn notify(&self) {
        self.0.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// A receiver whose `changed()` completes at the next `notify`.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}
