//! Benchmarks of the hot paths: encoding an event, matching topics, fanning
//! an event out to in-process subscribers, and appending to the log.
//!
//! `cargo bench --bench hot_paths` prints the figures; nothing here asserts a
//! time.

use std::hint::black_box;
use std::sync::Arc;

use chrono::Utc;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pushlog::domain::event::{
    Audience, Event, EventDraft, EventId, PayloadRules, Topic, TopicPattern,
};
use pushlog::domain::filter::Filter;
use pushlog::domain::read_scope::ReadScope;
use pushlog::domain::type_filter::TypeFilter;
use pushlog::domain::wire::{SharedEvent, Viewer};
use pushlog::fanout::{Hub, Received, Shard};
use pushlog::metrics::Metrics;
use pushlog::store::EventLog;
use serde_json::value::RawValue;

fn event(id: i64, topic: &str, payload_bytes: usize) -> Event {
    let payload = format!(
        r#"{{"status":"resolved","note":"{}"}}"#,
        "x".repeat(payload_bytes)
    );
    Event {
        id: EventId::new(id).unwrap(),
        topic: Topic::parse(topic).unwrap(),
        kind: "entity:updated".into(),
        entity: None,
        payload: Some(RawValue::from_string(payload).unwrap()),
        audience: None,
        timestamp: Utc::now(),
        key: None,
    }
}

fn reader(user: &str) -> ReadScope {
    ReadScope {
        user: user.into(),
        roles: vec!["staff".into()],
        topics: None,
    }
}

fn serialisation(c: &mut Criterion) {
    let mut group = c.benchmark_group("serialise");
    for size in [64, 4096] {
        group.bench_with_input(BenchmarkId::new("sse_frame", size), &size, |b, &size| {
            b.iter_batched(
                || SharedEvent::new(event(1, "faults", size)),
                |shared| black_box(shared.sse_frame(Viewer::Reader)),
                BatchSize::SmallInput,
            )
        });
        group.bench_with_input(BenchmarkId::new("ws_frame", size), &size, |b, &size| {
            b.iter_batched(
                || SharedEvent::new(event(1, "faults", size)),
                |shared| black_box(shared.ws_frame(Viewer::Reader)),
                BatchSize::SmallInput,
            )
        });
    }
    group.bench_function("cached_frame_per_recipient", |b| {
        let shared = SharedEvent::new(event(1, "faults", 64));
        shared.sse_frame(Viewer::Reader);
        b.iter(|| black_box(shared.sse_frame(Viewer::Reader)))
    });
    group.bench_function("validate_draft", |b| {
        let body = r#"{"topic":"device:dev-0001","type":"entity:updated","entity":{"kind":"device","id":"1","op":"updated"},"payload":{"temp": 21.5, "ok": true}}"#;
        b.iter(|| {
            let draft: EventDraft = serde_json::from_str(black_box(body)).unwrap();
            black_box(draft.validate(PayloadRules {
                max_bytes: 64 * 1024,
                max_depth: 64,
            }).unwrap())
        })
    });
    group.finish();
}

fn topic_matching(c: &mut Criterion) {
    let mut group = c.benchmark_group("match");
    let topic = Topic::parse("device:dev-0001").unwrap();
    for raw in ["device:dev-0001", "device:*", "*", "alerts"] {
        let pattern = TopicPattern::parse(raw).unwrap();
        group.bench_with_input(BenchmarkId::new("pattern", raw), &pattern, |b, pattern| {
            b.iter(|| black_box(pattern.matches(black_box(&topic))))
        });
    }
    let mut addressed = event(1, "device:dev-0001", 16);
    addressed.audience = Some(Audience {
        users: (0..20).map(|i| format!("user-{i}")).collect(),
        roles: vec!["manager".into(), "staff".into()],
    });
    let filter = Filter {
        patterns: vec![TopicPattern::parse("device:*").unwrap()],
        types: TypeFilter::any(),
        scope: reader("alice"),
    };
    group.bench_function("filter_with_audience", |b| {
        b.iter(|| black_box(filter.admits(black_box(&addressed))))
    });
    group.finish();
}

fn hub_fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("hub_fanout");
    for subscribers in [100, 1000, 5000] {
        let hub = Hub::new(1024, 0, Arc::new(Metrics::default()));
        // What a worker's shard does with each event the hub hands it; the
        // shard's own task is not run, the bench delivers by hand.
        let (shard, _feed_shard) = Shard::open(&hub);
        let mut subscriptions: Vec<_> = (0..subscribers)
            .map(|i| {
                shard.subscribe(Arc::new(Filter {
                    patterns: vec![TopicPattern::parse("fanout").unwrap()],
                    types: TypeFilter::any(),
                    scope: reader(&format!("user-{i}")),
                }))
            })
            .collect();
        let mut id = 0;
        group.throughput(Throughput::Elements(subscribers as u64));
        group.bench_function(BenchmarkId::from_parameter(subscribers), |b| {
            b.iter(|| {
                id += 1;
                shard.deliver(&Arc::new(SharedEvent::new(event(id, "fanout", 64))));
                // Draining is part of a delivery: each session takes its event.
                for subscription in &mut subscriptions {
                    match subscription.try_recv() {
                        Some(Received::Event(event)) => {
                            black_box(event);
                        }
                        other => panic!("expected an event, got {other:?}"),
                    }
                }
            })
        });
    }
    group.finish();
}

fn store_append(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let opened = runtime
        .block_on(EventLog::open(&url, Default::default()))
        .unwrap();
    let log = opened.log;
    // Nobody listens to the committed stream here: drain it so the writer
    // never waits for room.
    let mut committed = opened.committed;
    runtime.spawn(async move { while committed.recv().await.is_some() {} });
    let mut group = c.benchmark_group("store_append");
    group.sample_size(20);
    for batch in [1usize, 100, 1000] {
        let drafts: Vec<_> = (0..batch)
            .map(|i| {
                serde_json::from_str::<EventDraft>(&format!(
                    r#"{{"topic":"bench","type":"t","payload":{{"n":{i}}}}}"#
                ))
                .unwrap()
                .validate(PayloadRules {
                    max_bytes: 64 * 1024,
                    max_depth: 64,
                })
                .unwrap()
            })
            .collect();
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(BenchmarkId::new("durable_batch", batch), |b| {
            b.iter(|| runtime.block_on(log.append(drafts.clone())).unwrap())
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    serialisation,
    topic_matching,
    hub_fanout,
    store_append
);
criterion_main!(benches);
