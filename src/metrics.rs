//! Process metrics in the Prometheus text format, from plain atomics: the
//! handful of numbers an operator watches needs no metrics framework.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn set(&self, value: i64) {
        self.0.store(value, Ordering::Relaxed);
    }

    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Holds one unit of a gauge until dropped: an open connection counts exactly
/// as long as its session lives, however the session ends.
pub struct GaugeGuard {
    metrics: Arc<Metrics>,
    gauge: fn(&Metrics) -> &Gauge,
}

impl GaugeGuard {
    pub fn hold(metrics: Arc<Metrics>, gauge: fn(&Metrics) -> &Gauge) -> GaugeGuard {
        gauge(&metrics).inc();
        GaugeGuard { metrics, gauge }
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        (self.gauge)(&self.metrics).dec();
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    pub events_appended_total: Counter,
    pub publish_requests_total: Counter,
    pub deliveries_total: Counter,
    pub lagged_total: Counter,
    pub replayed_events_total: Counter,
    pub subscribers: Gauge,
    pub sse_connections: Gauge,
    pub ws_connections: Gauge,
}

impl Metrics {
    /// Renders every metric, plus the log's bounds, in the text format.
    pub fn render(&self, head: i64, pruned_through: i64) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = write!(
                out,
                "# HELP pushlog_{name} {help}\n# TYPE pushlog_{name} {kind}\npushlog_{name} {value}\n"
            );
        };
        metric(
            "events_appended_total",
            "counter",
            "Events committed to the log by this process.",
            self.events_appended_total.get().to_string(),
        );
        metric(
            "publish_requests_total",
            "counter",
            "Publish requests answered with 200 or 201.",
            self.publish_requests_total.get().to_string(),
        );
        metric(
            "deliveries_total",
            "counter",
            "Live events handed to subscriber queues.",
            self.deliveries_total.get().to_string(),
        );
        metric(
            "replayed_events_total",
            "counter",
            "Events read from the log to catch subscribers up.",
            self.replayed_events_total.get().to_string(),
        );
        metric(
            "lagged_total",
            "counter",
            "Subscribers dropped because their queue was full.",
            self.lagged_total.get().to_string(),
        );
        metric(
            "subscribers",
            "gauge",
            "Live subscriptions registered with the hub.",
            self.subscribers.get().to_string(),
        );
        metric(
            "sse_connections",
            "gauge",
            "Open Server-Sent Events streams.",
            self.sse_connections.get().to_string(),
        );
        metric(
            "ws_connections",
            "gauge",
            "Open WebSocket connections.",
            self.ws_connections.get().to_string(),
        );
        metric(
            "log_head",
            "gauge",
            "Newest event id in the log.",
            head.to_string(),
        );
        metric(
            "log_pruned_through",
            "gauge",
            "Every id up to this one has been deleted by retention.",
            pruned_through.to_string(),
        );
        out
    }
}
