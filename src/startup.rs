//! Wiring: open the log, start the hub, the pruner and the HTTP server, and
//! take them down in the right order.

use std::net::TcpListener;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_http::HttpService;
use actix_http::body::BoxBody;
use actix_http::error::DispatchError;
use actix_server::{GracefulShutdownSignal, Server};
use actix_service::{IntoServiceFactory, Service, ServiceFactory, fn_factory, fn_service};
use actix_web::dev::{AppConfig, ServiceRequest, ServiceResponse};
use actix_web::{App, web};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::api::{self, AppState};
use crate::auth::{Authenticator, KeyError};
use crate::config::Config;
use crate::edge::request_id;
use crate::edge::{self, Rewind};
use crate::fanout::{Hub, Shard};
use crate::limits::{ConnectionLimiter, Limits, PendingLimiter};
use crate::metrics::{Malformed, Metrics};
use crate::sessions::StreamSettings;
use crate::shutdown::Shutdown;
use crate::store::retention;
use crate::store::{EventLog, Retention, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {addr}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the event log")]
    Store(#[from] StoreError),
    #[error("bad JWT key")]
    Key(#[from] KeyError),
    #[error("cannot read the public key file {path}")]
    KeyFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the HTTP server")]
    Server(#[source] std::io::Error),
}

/// The verifier the configuration asks for. Without a secret or a public key,
/// a random secret for this run: development mode, said loudly by `main`.
pub fn authenticator(config: &Config) -> Result<(Authenticator, bool), StartupError> {
    let (authenticator, development) = key(config)?;
    let expecting = authenticator.expecting(config.jwt_audience.clone(), config.jwt_issuer.clone());
    Ok((expecting, development))
}

/// The configured key, or a generated secret (development mode).
fn key(config: &Config) -> Result<(Authenticator, bool), StartupError> {
    if let Some(secret) = &config.jwt_secret {
        return Ok((Authenticator::from_secret(secret.as_bytes())?, false));
    }
    if let Some(key) = &config.jwt_public_key {
        let pem = if key.trim_start().starts_with("-----BEGIN") {
            key.clone().into_bytes()
        } else {
            std::fs::read(key).map_err(|source| StartupError::KeyFile {
                path: key.clone(),
                source,
            })?
        };
        return Ok((Authenticator::from_public_key_pem(&pem)?, false));
    }
    let secret: [u8; 32] = rand::random();
    Ok((Authenticator::from_secret(&secret)?, true))
}

/// actix's default: how long a client may take to send a request head.
const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections the kernel holds for `accept`; see `build_on`.
const LISTEN_BACKLOG: i32 = 8192;
/// actix-web's default linger for a closing connection.
const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The application: every route, on the shared state and this worker's
/// shard of the hub.
fn app(
    state: web::Data<AppState>,
    shard: Shard,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<BoxBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let origins = state.allowed_origins.clone();
    App::new()
        .app_data(state)
        .app_data(web::Data::new(shard))
        .configure(|cfg| api::configure(cfg, &origins))
        .default_service(web::to(api::not_found))
        .wrap(actix_web::middleware::from_fn(request_id::within_span))
}

/// What serves each accepted connection, one per worker: the edge, with
/// the worker's application behind it twice over, once for the stream
/// requests the edge carries itself and once inside actix's HTTP/1
/// dispatcher for everything else (see `edge`). The application is built
/// here, on the worker's thread, with the worker's shard of the hub.
fn connections(
    state: web::Data<AppState>,
    stopping: GracefulShutdownSignal,
    local_addr: std::net::SocketAddr,
    timeouts: edge::Timeouts,
) -> impl ServiceFactory<TcpStream, Config = (), Response = (), Error = (), InitError = ()> {
    fn_factory(move || {
        let (shard, feed_shard) = Shard::open(&state.hub);
        let application = app(state.clone(), shard)
            .into_factory()
            .new_service(AppConfig::default());
        let stopping = stopping.clone();
        let metrics = state.metrics.clone();
        async move {
            actix_web::rt::spawn(feed_shard);
            let application = Rc::new(application.await?);
            let dispatcher = Rc::new(
                HttpService::<Rewind<TcpStream>, _, _>::build()
                    .client_request_timeout(CLIENT_REQUEST_TIMEOUT)
                    // actix-web's default: a closing connection waits this
                    // long for the client to take the answer, so unread
                    // request bytes do not reset it.
                    .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
                    .local_addr(local_addr)
                    // Kept-alive idle connections close when the server
                    // stops instead of holding the stop up until their
                    // keep-alive runs out, as under actix-web's own server.
                    // (The drain starts earlier: until the stop, a request
                    // is answered, if only with `503 shutting_down`.)
                    .graceful_shutdown_signal(move || {
                        let stopping = stopping.clone();
                        async move { stopping.notified().await }
                    })
                    .h1(shared(application.clone()))
                    .new_service(())
                    .await?,
            );
            Ok::<_, ()>(fn_service(move |io: TcpStream| {
                let dispatcher = dispatcher.clone();
                let application = application.clone();
                let metrics = metrics.clone();
                async move {
                    let served = edge::serve_connection(io, &*dispatcher, &*application, timeouts);
                    // actix answers a head it cannot parse (400, 431) and
                    // ends the connection with this error.
                    if let Err(DispatchError::Parse(_)) = served.await {
                        metrics.malformed(Malformed::HttpRequest);
                    }
                    Ok::<(), ()>(())
                }
            }))
        }
    })
}

/// A factory that hands out `service` itself, so actix's dispatcher runs the
/// application the edge already holds instead of building its own.
fn shared<S, Req>(
    service: Rc<S>,
) -> impl ServiceFactory<Req, Config = (), Response = S::Response, Error = S::Error, InitError = ()>
where
    S: Service<Req> + 'static,
{
    fn_factory(move || std::future::ready(Ok::<_, ()>(service.clone())))
}

/// A running pushlog, before it is awaited.
pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    writer_task: JoinHandle<()>,
    hub_task: JoinHandle<()>,
    retention_task: JoinHandle<()>,
}

/// What tests and `main` keep to steer a running application.
#[derive(Clone)]
pub struct AppHandle {
    pub shutdown: Shutdown,
    pub log: EventLog,
}

impl Application {
    pub async fn build(config: &Config, auth: Authenticator) -> Result<Application, StartupError> {
        let listener = TcpListener::bind(&config.addr).map_err(|source| StartupError::Bind {
            addr: config.addr.clone(),
            source,
        })?;
        Application::build_on(listener, config, auth).await
    }

    /// Builds on a listener the caller bound (port 0 in tests).
    pub async fn build_on(
        listener: TcpListener,
        config: &Config,
        auth: Authenticator,
    ) -> Result<Application, StartupError> {
        // A reconnect storm opens thousands of connections at once. A
        // listener bound by `std` has a backlog of 128, and actix's own
        // backlog setting applies only to sockets actix binds: past 128
        // connections waiting for `accept`, the kernel drops SYNs and each
        // such client waits a whole second to retry. Listening again on a
        // listening socket sets its backlog (the kernel caps it at
        // `net.core.somaxconn`).
        socket2::SockRef::from(&listener)
            .listen(LISTEN_BACKLOG)
            .map_err(StartupError::Server)?;
        let local_addr = listener.local_addr().map_err(StartupError::Server)?;
        let port = local_addr.port();
        let metrics = Arc::new(Metrics::default());
        let opened = EventLog::open(&config.database_url, metrics.clone()).await?;
        let hub = Hub::new(
            config.subscriber_queue,
            config.replay_memory_events,
            metrics.clone(),
        );
        let shutdown = Shutdown::new();
        let hub_task = tokio::spawn(hub.clone().run(opened.committed));
        let retention_task = tokio::spawn(retention::run(
            opened.log.clone(),
            Retention {
                max_age: config.retention.max_age,
                max_events: config.retention.max_events,
                entity_max_age: config.entity_retention.0,
            },
            config.prune_interval,
            shutdown.clone(),
        ));
        let state = web::Data::new(AppState {
            log: opened.log,
            hub,
            auth,
            metrics,
            limits: Arc::new(Limits::from_config(config)),
            streams: Arc::new(StreamSettings::from_config(config)),
            allowed_origins: config.allowed_origins.clone(),
            connections: ConnectionLimiter::new(config.max_connections),
            pending: PendingLimiter::new(
                config.max_pending_connections,
                config.max_pending_per_address,
            ),
            shutdown,
        });
        let builder = Server::build();
        let stopping = builder.graceful_shutdown_signal();
        let server = builder
            // Signals are ours: shutdown must drain streams before the
            // server stops, which actix's own handling would not do.
            .disable_signals()
            .shutdown_timeout(config.shutdown_grace_secs)
            .listen("pushlog", listener, {
                let state = state.clone();
                let timeouts = edge::Timeouts {
                    request: CLIENT_REQUEST_TIMEOUT,
                    stalled_write: Duration::from_secs(config.stalled_write_secs),
                };
                move || connections(state.clone(), stopping.clone(), local_addr, timeouts)
            })
            .map_err(StartupError::Server)?
            .run();
        tracing::info!(port, database = %config.database_url, "pushlog listening");
        Ok(Application {
            port,
            server,
            state,
            writer_task: opened.writer_task,
            hub_task,
            retention_task,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn handle(&self) -> AppHandle {
        AppHandle {
            shutdown: self.state.shutdown.clone(),
            log: self.state.log.clone(),
        }
    }

    /// Serves until the shutdown signal, then drains in order: refuse new
    /// streams and end open ones, let in-flight requests finish, commit what
    /// the writer holds, stop.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Application {
            server,
            state,
            writer_task,
            hub_task,
            retention_task,
            ..
        } = self;
        let server_handle = server.handle();
        let mut server = tokio::spawn(server);
        let served = tokio::select! {
            served = &mut server => served,
            () = state.shutdown.wait() => {
                tracing::info!("shutting down: draining streams and in-flight publishes");
                server_handle.stop(true).await;
                server.await
            }
        };
        // Whatever ended the server, stop everything behind it.
        state.shutdown.trigger();
        state.log.stop_writer().await;
        let _ = writer_task.await;
        let _ = tokio::time::timeout(Duration::from_secs(5), hub_task).await;
        let _ = retention_task.await;
        state.log.close().await;
        tracing::info!("pushlog stopped");
        served.unwrap_or_else(|join| Err(std::io::Error::other(join)))
    }
}
