//! The controller on a TCP socket: the broker ↔ controller channel, the timers, and the
//! session channel rule (a closed heartbeat connection cuts the broker's session short).

use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::io::{BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{debug, warn, Instrument};
use tributary_metadata::rpc::{self, ControllerRequest};

use crate::service::{Controller, REBALANCE_INTERVAL, SESSION_CHECK_INTERVAL};

/// A controller serving on a socket.
pub struct RunningController {
    pub controller: Arc<Controller>,
    pub addr: std::net::SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningController {
    /// Stops serving; brokers reconnect to whichever controller serves next.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            task.abort();
            let _ = task.await;
        }
    }
}

/// Binds with SO_REUSEADDR, so a restarted controller can take its port back at once.
async fn bind_reusable(listen: &str) -> std::io::Result<TcpListener> {
    let addr = tokio::net::lookup_host(listen)
        .await?
        .next()
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("no address for {listen}"),
            )
        })?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Serves `controller` on `listen` and runs its timers.
pub async fn serve(controller: Arc<Controller>, listen: &str) -> Result<RunningController> {
    let listener = bind_reusable(listen)
        .await
        .with_context(|| format!("binding controller listener {listen}"))?;
    let addr = listener.local_addr()?;
    let (shutdown, rx) = watch::channel(false);
    let accept = tokio::spawn(accept_loop(controller.clone(), listener, rx.clone()));
    let timers = tokio::spawn(run_timers(controller.clone(), rx));
    Ok(RunningController {
        controller,
        addr,
        shutdown,
        tasks: vec![accept, timers],
    })
}

async fn accept_loop(
    controller: Arc<Controller>,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let controller = controller.clone();
                    let mut stop = stop.clone();
                    tokio::spawn(async move {
                        // A stopped controller drops its connections, so brokers
                        // reconnect to whichever controller serves next.
                        tokio::select! {
                            served = serve_connection(controller, stream) => {
                                if let Err(e) = served {
                                    debug!(error = %e, "controller connection closed");
                                }
                            }
                            _ = stop.changed() => {}
                        }
                    }.instrument(tracing::debug_span!("controller-conn", %peer)));
                }
                Err(e) => warn!(error = %e, "controller accept failed"),
            },
            _ = stop.changed() => return,
        }
    }
}

async fn run_timers(controller: Arc<Controller>, mut stop: watch::Receiver<bool>) {
    let mut sessions = tokio::time::interval(SESSION_CHECK_INTERVAL);
    let mut rebalance = tokio::time::interval(REBALANCE_INTERVAL);
    loop {
        tokio::select! {
            _ = sessions.tick() => controller.tick_sessions().await,
            _ = rebalance.tick() => controller.tick_rebalance().await,
            _ = stop.changed() => return,
        }
    }
}

/// Serves one connection. The connection a broker heartbeats on is its session channel:
/// when it closes (the broker process died), the session is cut short, so a crashed broker
/// is fenced in a fraction of the session timeout.
async fn serve_connection(controller: Arc<Controller>, stream: TcpStream) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut writer = BufWriter::new(write);
    let mut heartbeating: Option<i32> = None;
    let result = async {
        while let Some(request) = rpc::read_message::<_, ControllerRequest>(&mut reader).await? {
            if let ControllerRequest::Heartbeat { broker_id, .. } = &request {
                heartbeating = Some(*broker_id);
            }
            let response = controller.handle(request).await;
            rpc::write_message(&mut writer, &response).await?;
        }
        Ok(())
    }
    .await;
    if let Some(broker) = heartbeating {
        controller.session_channel_closed(broker).await;
    }
    result
}
