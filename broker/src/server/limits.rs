//! Limits that keep one client, or many, from exhausting the broker: connection counts
//! (`max.connections`, `max.connections.per.ip`), the memory of requests being read or
//! served (`queued.max.request.bytes`) and idle connections (`connections.max.idle.ms`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::BrokerConfig;

/// The listener's limits, shared by every connection.
#[derive(Debug)]
pub struct Limits {
    max_connections: usize,
    max_per_ip: usize,
    open: Mutex<ConnectionCounts>,
    /// Bytes of requests held in memory, from their first byte read until their response
    /// is written. A connection waits for room before reading more.
    request_bytes: Arc<Semaphore>,
    request_bytes_max: usize,
    /// A connection that sends nothing for this long is closed.
    pub idle: Duration,
}

#[derive(Debug, Default)]
struct ConnectionCounts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Why a connection was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    #[error("max.connections ({0}) reached")]
    Total(usize),
    #[error("max.connections.per.ip ({0}) reached for this address")]
    PerIp(usize),
}

/// An admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Admitted {
    limits: Arc<Limits>,
    ip: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.limits.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.per_ip.remove(&self.ip);
            }
        }
    }
}

impl Limits {
    /// The limits `config` sets.
    pub fn new(config: &BrokerConfig) -> Arc<Self> {
        let positive = |key: &str| config.setting_i64(key).max(1) as usize;
        let request_bytes_max = positive("queued.max.request.bytes").min(Semaphore::MAX_PERMITS);
        Arc::new(Limits {
            max_connections: positive("max.connections"),
            max_per_ip: positive("max.connections.per.ip"),
            open: Mutex::default(),
            request_bytes: Arc::new(Semaphore::new(request_bytes_max)),
            request_bytes_max,
            idle: Duration::from_millis(positive("connections.max.idle.ms") as u64),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ConnectionCounts> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a connection from `ip`, or says which limit refuses it.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, Refused> {
        let mut open = self.lock();
        if open.total >= self.max_connections {
            return Err(Refused::Total(self.max_connections));
        }
        let from_ip = open.per_ip.entry(ip).or_default();
        if *from_ip >= self.max_per_ip {
            return Err(Refused::PerIp(self.max_per_ip));
        }
        *from_ip += 1;
        open.total += 1;
        Ok(Admitted {
            limits: self.clone(),
            ip,
        })
    }

    /// Reserves `bytes` of request memory, waiting until that much is free. A request
    /// larger than the whole budget reserves all of it, so it still gets served, alone.
    pub async fn reserve(&self, bytes: usize) -> OwnedSemaphorePermit {
        let bytes = bytes.clamp(1, self.request_bytes_max.min(u32::MAX as usize)) as u32;
        self.request_bytes
            .clone()
            .acquire_many_owned(bytes)
            .await
            .expect("the request memory semaphore is never closed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_ip: usize, bytes: usize) -> Arc<Limits> {
        Arc::new(Limits {
            max_connections: total,
            max_per_ip: per_ip,
            open: Mutex::default(),
            request_bytes: Arc::new(Semaphore::new(bytes)),
            request_bytes_max: bytes,
            idle: Duration::from_secs(1),
        })
    }

    #[test]
    fn connections_are_counted_in_total_and_per_address() {
        let limits = limits(3, 2, 10);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let first = limits.admit(a).unwrap();
        let _second = limits.admit(a).unwrap();
        assert_eq!(limits.admit(a).unwrap_err(), Refused::PerIp(2));
        let _third = limits.admit(b).unwrap();
        assert_eq!(limits.admit(b).unwrap_err(), Refused::Total(3));
        drop(first);
        assert!(
            limits.admit(a).is_ok(),
            "a closed connection frees its place"
        );
    }

    #[tokio::test]
    async fn request_memory_is_bounded_and_returned() {
        let limits = limits(1, 1, 100);
        let big = limits.reserve(1_000_000).await;
        assert_eq!(limits.request_bytes.available_permits(), 0);
        let waiting = tokio::time::timeout(Duration::from_millis(50), limits.reserve(1)).await;
        assert!(
            waiting.is_err(),
            "nothing is left until the big request is done"
        );
        drop(big);
        let _small = limits.reserve(60).await;
        assert_eq!(limits.request_bytes.available_permits(), 40);
    }
}
