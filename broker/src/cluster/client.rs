//! The broker's connection to the controller: one request at a time per client, with
//! reconnection, so a controller restart is survived by retrying.

use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use tokio::io::{BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use tributary_metadata::rpc::{self, ControllerRequest, ControllerResponse};

type Connection = (BufReader<OwnedReadHalf>, BufWriter<OwnedWriteHalf>);

/// A client of the controller RPC channel.
#[derive(Debug)]
pub struct ControllerClient {
    addr: String,
    connection: Mutex<Option<Connection>>,
}

impl ControllerClient {
    /// A client for the controller at `addr` (connects lazily).
    pub fn new(addr: impl Into<String>) -> Self {
        ControllerClient {
            addr: addr.into(),
            connection: Mutex::new(None),
        }
    }

    /// The controller's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends one request and waits up to `timeout` for its answer. On any failure the
    /// connection is dropped, so the next call reconnects; a request that failed on a
    /// connection opened earlier (which the controller may have closed, e.g. on restart) is
    /// retried once on a fresh one.
    pub async fn call(
        &self,
        request: &ControllerRequest,
        timeout: Duration,
    ) -> Result<ControllerResponse> {
        let mut guard = self.connection.lock().await;
        let reused = guard.is_some();
        match self.attempt(&mut guard, request, timeout).await {
            Err(_) if reused => self.attempt(&mut guard, request, timeout).await,
            result => result,
        }
    }

    /// Connects, and attaches to the named cluster when the address names one.
    async fn connect(&self) -> Result<Connection> {
        let (host_port, cluster) = rpc::split_controller_address(&self.addr);
        let stream = TcpStream::connect(host_port)
            .await
            .with_context(|| format!("connecting to controller {}", self.addr))?;
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        let (mut reader, mut writer) = (BufReader::new(r), BufWriter::new(w));
        if let Some(cluster) = cluster {
            let attach = ControllerRequest::Attach {
                cluster: cluster.to_string(),
            };
            rpc::write_message(&mut writer, &attach).await?;
            match rpc::read_message::<_, ControllerResponse>(&mut reader).await? {
                Some(ControllerResponse::Done { result: Ok(()), .. }) => {}
                Some(
                    ControllerResponse::Error(e) | ControllerResponse::Done { result: Err(e), .. },
                ) => {
                    return Err(anyhow!(
                        "controller {} refused cluster {cluster}: {e}",
                        self.addr
                    ))
                }
                other => return Err(anyhow!("unexpected answer to Attach: {other:?}")),
            }
        }
        Ok((reader, writer))
    }

    async fn attempt(
        &self,
        slot: &mut Option<Connection>,
        request: &ControllerRequest,
        timeout: Duration,
    ) -> Result<ControllerResponse> {
        let exchange = async {
            if slot.is_none() {
                *slot = Some(self.connect().await?);
            }
            let (reader, writer) = slot.as_mut().expect("connected above");
            rpc::write_message(writer, request).await?;
            rpc::read_message::<_, ControllerResponse>(reader)
                .await?
                .ok_or_else(|| anyhow!("controller closed the connection"))
        };
        let result = match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(anyhow!("controller request timed out after {timeout:?}")),
        };
        if result.is_err() {
            *slot = None;
        }
        result
    }
}
