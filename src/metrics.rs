//! The process's metrics, kept with prometheus-client and served on
//! `GET /metrics` in the OpenMetrics text format that Prometheus scrapes.
//!
//! What the delivery path touches is a plain atomic: each labelled counter
//! is resolved to its series once, here, so a delivery never looks a label
//! up. A histogram is one mutex shared by every worker, held per
//! observation only to bump a bucket; the one observed per delivery
//! (`delivery_seconds`) is observed by the session's worker as it takes the
//! event.

use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A label set of one or two `name="value"` pairs.
type OneLabel = [(&'static str, &'static str); 1];
type TwoLabels = [(&'static str, &'static str); 2];

/// How a subscriber is connected, as the `transport` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Sse,
    WebSocket,
}

impl Transport {
    fn label(self) -> &'static str {
        match self {
            Transport::Sse => "sse",
            Transport::WebSocket => "ws",
        }
    }
}

/// What a client sent that the server could not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// An HTTP request head actix refused (400, 431).
    HttpRequest,
    /// A WebSocket frame that broke the protocol (1002, 1007, 1009).
    WebSocketFrame,
    /// A WebSocket message that is no message of the contract.
    WebSocketMessage,
}

impl Malformed {
    fn label(self) -> &'static str {
        match self {
            Malformed::HttpRequest => "http_request",
            Malformed::WebSocketFrame => "websocket_frame",
            Malformed::WebSocketMessage => "websocket_message",
        }
    }
}

pub struct Metrics {
    registry: Registry,
    pub events_appended: Counter,
    pub publish_requests: Counter,
    /// Live events handed to subscriber queues.
    pub deliveries: Counter,
    pub replayed_from_memory: Counter,
    pub replayed_from_log: Counter,
    /// Subscribers the hub dropped because their queue was full.
    pub lagged: Counter,
    pub store_errors: Counter,
    pub subscribers: Gauge,
    pub sse_connections: Gauge,
    pub ws_connections: Gauge,
    resets: Family<TwoLabels, Counter>,
    ws_closes: Family<OneLabel, Counter>,
    malformed: Family<OneLabel, Counter>,
    log_head: Gauge,
    log_oldest_id: Gauge,
    /// From a publish request's arrival to its events being durable.
    pub publish_seconds: Histogram,
    /// Events per commit of the log's writer.
    pub commit_batch_events: Histogram,
    /// From an event's timestamp to a live subscriber's session taking it.
    pub delivery_seconds: Histogram,
    /// Events a subscription replayed before it caught up.
    pub replay_events: Histogram,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("pushlog");
        let events_appended = Counter::default();
        registry.register(
            "events_appended",
            "Events committed to the log by this process",
            events_appended.clone(),
        );
        let publish_requests = Counter::default();
        registry.register(
            "publish_requests",
            "Publish requests answered with 200 or 201",
            publish_requests.clone(),
        );
        let deliveries = Counter::default();
        registry.register(
            "deliveries",
            "Live events handed to subscriber queues",
            deliveries.clone(),
        );
        let replayed = Family::<OneLabel, Counter>::default();
        registry.register(
            "replayed_events",
            "Events served to catch a subscriber or /events/missed up, by where they came from",
            replayed.clone(),
        );
        let lagged = Counter::default();
        registry.register(
            "lagged",
            "Subscribers dropped because their queue was full",
            lagged.clone(),
        );
        let store_errors = Counter::default();
        registry.register(
            "store_errors",
            "Reads and writes of the log that failed",
            store_errors.clone(),
        );
        let subscribers = Gauge::default();
        registry.register(
            "subscribers",
            "Live subscriptions registered with the hub",
            subscribers.clone(),
        );
        let connections = Family::<OneLabel, Gauge>::default();
        registry.register(
            "connections",
            "Open streams, by transport",
            connections.clone(),
        );
        let resets = Family::<TwoLabels, Counter>::default();
        registry.register(
            "resets",
            "Resets told to subscribers, by transport and reason",
            resets.clone(),
        );
        let ws_closes = Family::<OneLabel, Counter>::default();
        registry.register(
            "ws_closes",
            "WebSocket connections ended, by reason",
            ws_closes.clone(),
        );
        let malformed = Family::<OneLabel, Counter>::default();
        registry.register(
            "malformed_requests",
            "Requests, frames and messages the server could not read",
            malformed.clone(),
        );
        let log_head = Gauge::default();
        registry.register("log_head", "Newest event id in the log", log_head.clone());
        let log_oldest_id = Gauge::default();
        registry.register(
            "log_oldest_id",
            "Oldest event id retention still keeps (head + 1 when the log is empty)",
            log_oldest_id.clone(),
        );
        // 0.5 ms to about 16 s.
        let publish_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register(
            "publish_seconds",
            "From a publish request's arrival to its events being durable",
            publish_seconds.clone(),
        );
        let commit_batch_events = Histogram::new(exponential_buckets(1.0, 2.0, 14));
        registry.register(
            "commit_batch_events",
            "Events per commit of the log's writer",
            commit_batch_events.clone(),
        );
        let delivery_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register(
            "delivery_seconds",
            "From an event's timestamp (taken, to the millisecond, as the log appends it) to a live subscriber's session taking it",
            delivery_seconds.clone(),
        );
        let replay_events = Histogram::new(exponential_buckets(1.0, 4.0, 10));
        registry.register(
            "replay_events",
            "Events a subscription replayed before it caught up",
            replay_events.clone(),
        );
        // Each child is bound in its own statement: the guard `get_or_create`
        // returns holds the family's lock until the statement ends.
        let replayed_from_memory = replayed.get_or_create(&[("source", "memory")]).clone();
        let replayed_from_log = replayed.get_or_create(&[("source", "log")]).clone();
        let sse_connections = connections
            .get_or_create(&[("transport", Transport::Sse.label())])
            .clone();
        let ws_connections = connections
            .get_or_create(&[("transport", Transport::WebSocket.label())])
            .clone();
        Metrics {
            events_appended,
            publish_requests,
            deliveries,
            replayed_from_memory,
            replayed_from_log,
            lagged,
            store_errors,
            subscribers,
            sse_connections,
            ws_connections,
            resets,
            ws_closes,
            malformed,
            log_head,
            log_oldest_id,
            publish_seconds,
            commit_batch_events,
            delivery_seconds,
            replay_events,
            registry,
        }
    }

    /// Counts a reset told to a subscriber on `transport`, for `reason` as
    /// the contract spells it.
    pub fn reset(&self, transport: Transport, reason: &'static str) {
        self.resets
            .get_or_create(&[("transport", transport.label()), ("reason", reason)])
            .inc();
    }

    /// Counts a WebSocket connection ended for `reason`.
    pub fn ws_closed(&self, reason: &'static str) {
        self.ws_closes.get_or_create(&[("reason", reason)]).inc();
    }

    pub fn malformed(&self, kind: Malformed) {
        self.malformed
            .get_or_create(&[("kind", kind.label())])
            .inc();
    }

    /// Renders every metric, with the log's bounds as they are now.
    pub fn render(&self, head: i64, oldest_id: i64) -> String {
        self.log_head.set(head);
        self.log_oldest_id.set(oldest_id);
        let mut out = String::new();
        // Writing to a `String` cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Holds one unit of a gauge until dropped: an open connection counts exactly
/// as long as its session lives, however the session ends.
pub struct GaugeGuard {
    gauge: Gauge,
}

impl GaugeGuard {
    pub fn hold(metrics: Arc<Metrics>, gauge: fn(&Metrics) -> &Gauge) -> GaugeGuard {
        let gauge = gauge(&metrics).clone();
        gauge.inc();
        GaugeGuard { gauge }
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labelled_series_are_rendered_once_touched_and_counters_end_in_total() {
        let metrics = Metrics::new();
        metrics.reset(Transport::Sse, "lagged");
        metrics.malformed(Malformed::HttpRequest);
        metrics.replayed_from_log.inc_by(3);

        let text = metrics.render(7, 3);

        assert!(
            text.contains("# TYPE pushlog_events_appended counter\n"),
            "{text}"
        );
        assert!(
            text.contains("pushlog_resets_total{transport=\"sse\",reason=\"lagged\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("pushlog_malformed_requests_total{kind=\"http_request\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("pushlog_replayed_events_total{source=\"log\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("pushlog_log_head 7\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn a_gauge_guard_counts_while_it_lives() {
        let metrics = Arc::new(Metrics::new());
        let guard = GaugeGuard::hold(metrics.clone(), |m| &m.ws_connections);
        assert_eq!(metrics.ws_connections.get(), 1);
        drop(guard);
        assert_eq!(metrics.ws_connections.get(), 0);
    }
}
