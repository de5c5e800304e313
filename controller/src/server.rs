//! The controller on a TCP socket: the broker ↔ controller channel, the timers, and the
//! session channel rule (a closed heartbeat connection cuts the broker's session short).

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::io::{BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{debug, warn, Instrument};
use tributary_metadata::rpc::{self, ControllerRequest, ControllerResponse};
use tributary_metadata::{ApiError, ResponseError};

use crate::service::{Controller, REBALANCE_INTERVAL, SESSION_CHECK_INTERVAL};

/// A controller serving on a socket.
pub struct RunningController {
    pub controller: Arc<Controller>,
    pub addr: std::net::SocketAddr,
    server: RunningServer,
}

impl RunningController {
    /// Stops serving; brokers reconnect to whichever controller serves next.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// A controller host serving many clusters' controllers on one socket (the operator).
pub struct RunningServer {
    pub addr: std::net::SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningServer {
    /// Stops serving and drops every connection.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            task.abort();
            let _ = task.await;
        }
    }
}

/// Controllers by cluster name, each with its timers running, for a host that controls
/// several clusters. Brokers name theirs with [`ControllerRequest::Attach`].
#[derive(Debug, Default)]
pub struct ControllerSet {
    controllers: std::sync::RwLock<HashMap<String, Hosted>>,
}

#[derive(Debug)]
struct Hosted {
    controller: Arc<Controller>,
    timers: tokio::task::JoinHandle<()>,
    /// Held while hosted: the timers run until it is dropped.
    _stop_timers: watch::Sender<bool>,
}

impl Drop for Hosted {
    fn drop(&mut self) {
        self.timers.abort();
        self.controller.retire();
    }
}

impl ControllerSet {
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Hosted>> {
        self.controllers.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Hosts `controller` for `cluster` and starts its timers; a controller it replaces is
    /// retired.
    pub fn insert(&self, cluster: &str, controller: Arc<Controller>) {
        let (stop, rx) = watch::channel(false);
        let timers = tokio::spawn(run_timers(controller.clone(), rx));
        let hosted = Hosted {
            controller,
            timers,
            _stop_timers: stop,
        };
        self.write().insert(cluster.to_string(), hosted);
    }

    /// The controller of `cluster`, if hosted here and not deposed.
    pub fn get(&self, cluster: &str) -> Option<Arc<Controller>> {
        let controllers = self.controllers.read().unwrap_or_else(|p| p.into_inner());
        controllers
            .get(cluster)
            .map(|hosted| hosted.controller.clone())
            .filter(|controller| !controller.is_deposed())
    }

    /// Stops hosting `cluster`: its timers stop and its connections close.
    pub fn remove(&self, cluster: &str) -> bool {
        self.write().remove(cluster).is_some()
    }

    /// The clusters hosted here.
    pub fn clusters(&self) -> Vec<String> {
        let controllers = self.controllers.read().unwrap_or_else(|p| p.into_inner());
        controllers.keys().cloned().collect()
    }
}

/// Which controller a connection talks to.
#[derive(Clone)]
enum Routes {
    /// One controller answers every connection (local and standalone hosts).
    Single(Arc<Controller>),
    /// A connection attaches to one cluster's controller first.
    ByCluster(Arc<ControllerSet>),
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
    let mut server = listen_on(Routes::Single(controller.clone()), listen).await?;
    let rx = server.shutdown.subscribe();
    server
        .tasks
        .push(tokio::spawn(run_timers(controller.clone(), rx)));
    Ok(RunningController {
        controller,
        addr: server.addr,
        server,
    })
}

/// Serves every controller in `controllers` on `listen`; brokers attach to theirs by
/// cluster name.
pub async fn serve_set(controllers: Arc<ControllerSet>, listen: &str) -> Result<RunningServer> {
    listen_on(Routes::ByCluster(controllers), listen).await
}

async fn listen_on(routes: Routes, listen: &str) -> Result<RunningServer> {
    let listener = bind_reusable(listen)
        .await
        .with_context(|| format!("binding controller listener {listen}"))?;
    let addr = listener.local_addr()?;
    let (shutdown, rx) = watch::channel(false);
    let accept = tokio::spawn(accept_loop(routes, listener, rx));
    Ok(RunningServer {
        addr,
        shutdown,
        tasks: vec![accept],
    })
}

async fn accept_loop(routes: Routes, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let routes = routes.clone();
                    let mut stop = stop.clone();
                    tokio::spawn(async move {
                        // A stopped controller drops its connections, so brokers
                        // reconnect to whichever controller serves next.
                        tokio::select! {
                            served = serve_connection(routes, stream) => {
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
/// is fenced in a fraction of the session timeout. A connection ends when its controller is
/// deposed or retired, so its broker looks for the current one.
async fn serve_connection(routes: Routes, stream: TcpStream) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut writer = BufWriter::new(write);
    let mut controller = match routes {
        Routes::Single(ref controller) => Some(controller.clone()),
        Routes::ByCluster(_) => None,
    };
    let mut heartbeating: Option<i32> = None;
    let result = async {
        while let Some(request) = rpc::read_message::<_, ControllerRequest>(&mut reader).await? {
            let response = match (&request, &controller, &routes) {
                (ControllerRequest::Attach { cluster }, None, Routes::ByCluster(set)) => {
                    match set.get(cluster) {
                        Some(found) => {
                            let version = found.image().version;
                            controller = Some(found);
                            ControllerResponse::Done {
                                result: Ok(()),
                                version,
                            }
                        }
                        None => ControllerResponse::Error(ApiError::new(
                            ResponseError::NotController,
                            format!("this host does not control cluster {cluster}"),
                        )),
                    }
                }
                (_, Some(controller), _) => {
                    if let ControllerRequest::Heartbeat { broker_id, .. } = &request {
                        heartbeating = Some(*broker_id);
                    }
                    controller.handle(request).await
                }
                (_, None, _) => ControllerResponse::Error(ApiError::new(
                    ResponseError::NotController,
                    "attach to a cluster first",
                )),
            };
            rpc::write_message(&mut writer, &response).await?;
            if controller.as_ref().is_some_and(|c| c.is_deposed()) {
                break;
            }
        }
        Ok(())
    }
    .await;
    if let (Some(broker), Some(controller)) = (heartbeating, &controller) {
        controller.session_channel_closed(broker).await;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryMetadataStore;
    use crate::ControllerConfig;

    async fn call(
        stream: &mut (
            BufReader<tokio::net::tcp::OwnedReadHalf>,
            BufWriter<tokio::net::tcp::OwnedWriteHalf>,
        ),
        request: ControllerRequest,
    ) -> Option<ControllerResponse> {
        rpc::write_message(&mut stream.1, &request).await.ok()?;
        rpc::read_message(&mut stream.0).await.ok()?
    }

    async fn connect(
        addr: std::net::SocketAddr,
    ) -> (
        BufReader<tokio::net::tcp::OwnedReadHalf>,
        BufWriter<tokio::net::tcp::OwnedWriteHalf>,
    ) {
        let (r, w) = TcpStream::connect(addr).await.unwrap().into_split();
        (BufReader::new(r), BufWriter::new(w))
    }

    #[tokio::test]
    async fn connections_attach_to_the_cluster_they_name() {
        let set = Arc::new(ControllerSet::default());
        for cluster in ["ns/a", "ns/b"] {
            let store = Arc::new(MemoryMetadataStore::default());
            let controller = Controller::open(store, ControllerConfig::default())
                .await
                .unwrap();
            set.insert(cluster, controller);
        }
        let server = serve_set(set.clone(), "127.0.0.1:0").await.unwrap();
        let image_of = |cluster: &str| set.get(cluster).unwrap().image();

        let mut unattached = connect(server.addr).await;
        let refused = call(
            &mut unattached,
            ControllerRequest::DeleteTopics { names: vec![] },
        )
        .await;
        assert!(
            matches!(refused, Some(ControllerResponse::Error(e)) if e.code == ResponseError::NotController)
        );
        let unknown = call(
            &mut unattached,
            ControllerRequest::Attach {
                cluster: "ns/c".into(),
            },
        )
        .await;
        assert!(
            matches!(unknown, Some(ControllerResponse::Error(e)) if e.code == ResponseError::NotController)
        );

        let mut to_b = connect(server.addr).await;
        let attached = call(
            &mut to_b,
            ControllerRequest::Attach {
                cluster: "ns/b".into(),
            },
        )
        .await;
        assert!(matches!(
            attached,
            Some(ControllerResponse::Done { result: Ok(()), .. })
        ));
        let fetched = call(
            &mut to_b,
            ControllerRequest::FetchMetadata {
                broker_id: 1,
                known_version: 0,
                known_controller_epoch: 0,
                max_wait_ms: 0,
            },
        )
        .await;
        let Some(ControllerResponse::Metadata {
            image: Some(image), ..
        }) = fetched
        else {
            panic!("no image: {fetched:?}");
        };
        assert_eq!(image.cluster_id, image_of("ns/b").cluster_id);
        assert_ne!(image.cluster_id, image_of("ns/a").cluster_id);

        // A long poll on a controller that stops being hosted ends at once.
        let mut to_a = connect(server.addr).await;
        let attached = call(
            &mut to_a,
            ControllerRequest::Attach {
                cluster: "ns/a".into(),
            },
        )
        .await;
        assert!(matches!(
            attached,
            Some(ControllerResponse::Done { result: Ok(()), .. })
        ));
        let version = image_of("ns/a").version;
        let epoch = set.get("ns/a").unwrap().epoch;
        let poll = tokio::spawn(async move {
            let request = ControllerRequest::FetchMetadata {
                broker_id: 1,
                known_version: version,
                known_controller_epoch: epoch,
                max_wait_ms: 30_000,
            };
            call(&mut to_a, request).await
        });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(set.remove("ns/a"));
        let answer = tokio::time::timeout(std::time::Duration::from_secs(2), poll)
            .await
            .expect("the long poll ends when its controller retires")
            .unwrap();
        assert!(
            matches!(answer, Some(ControllerResponse::Error(e)) if e.code == ResponseError::NotController)
        );

        // A cluster no longer hosted here closes its connections after one refusal.
        assert!(set.remove("ns/b"));
        let after = call(&mut to_b, ControllerRequest::DeleteTopics { names: vec![] }).await;
        assert!(
            matches!(after, Some(ControllerResponse::Error(e)) if e.code == ResponseError::NotController)
        );
        assert!(
            call(&mut to_b, ControllerRequest::DeleteTopics { names: vec![] })
                .await
                .is_none()
        );
        server.shutdown().await;
    }
}
