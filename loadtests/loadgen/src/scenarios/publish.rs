//! `publish`: C publishers, each on its own keep-alive connection, POSTing
//! as fast as answers come back for D seconds. Every request waits for the
//! server's durable acknowledgement, so this measures committed events/s.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::error::RunError;
use super::figures::{common_params, per_item, rate};
use super::progress::progress;
use super::setup::{Setup, require_pushlog, require_single_events_for_nchan};
use super::usage::{Watch, server_cpu_pct, server_cpu_us};
use crate::cli::PublishArgs;
use crate::histogram::Recorder;
use crate::procstat::round1;
use crate::publisher::{Outcome as Published, Shape};
use crate::report::{Checks, Outcome};

/// What one publisher did.
#[derive(Default)]
struct Tally {
    requests: u64,
    events: u64,
    errors: BTreeMap<String, u64>,
    latency: Recorder,
}

/// The probe payload without padding, `{"seq":…,"sent_us":…}`, is about this
/// long; padding makes up the rest of `--payload-bytes`.
const BARE_PAYLOAD_BYTES: u32 = 48;

pub async fn run(args: PublishArgs) -> Result<Outcome, RunError> {
    require_single_events_for_nchan(&args.common, args.batch)?;
    if args.keys {
        require_pushlog(&args.common, "nchan has no idempotency keys; drop --keys")?;
    }
    if args.entities > 0 {
        require_pushlog(&args.common, "nchan has no entities; drop --entities")?;
    }
    let setup = Setup::new(&args.common, "publish", args.duration)?;
    let channel = setup.channel()?;
    let usage = Watch::new(args.common.server_pid);
    let pad = "x".repeat(args.payload_bytes.saturating_sub(BARE_PAYLOAD_BYTES) as usize);

    progress(
        "publish",
        &format!(
            "{} publishers, batches of {}, for {:?} on {}",
            args.publishers, args.batch, args.duration, setup.topic
        ),
    );
    let before = usage.baseline("publish");
    let began = Instant::now();
    let deadline = began + args.duration;
    let tasks: Vec<_> = (0..args.publishers as usize)
        .map(|i| {
            let mut client = setup.http_client(i);
            let channel = channel.clone();
            let pad = pad.clone();
            let keys = args.keys.then(|| format!("{}-{i}", setup.topic));
            let batch = args.batch;
            let entities = args.entities;
            // Spread evenly, so publishers in step change different entities.
            let entity_offset = u64::from(entities) * i as u64 / u64::from(args.publishers);
            tokio::spawn(async move {
                let mut tally = Tally::default();
                let mut seq = 0u64;
                while Instant::now() < deadline {
                    let shape = Shape {
                        pad: &pad,
                        key_prefix: keys.as_deref(),
                        entities,
                        entity_offset,
                    };
                    let body = channel.body(seq, batch, shape);
                    let sent = Instant::now();
                    let outcome = channel.post(&mut client, seq, &body).await;
                    tally.requests += 1;
                    match outcome {
                        Published::Acked { events, .. } => {
                            tally.latency.record(sent.elapsed().as_micros() as u64);
                            tally.events += events;
                            seq += u64::from(batch);
                        }
                        Published::Rejected(kind) | Published::Ambiguous(kind) => {
                            *tally.errors.entry(kind).or_default() += 1;
                            // Back off briefly rather than spin on a failing
                            // server.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
                tally
            })
        })
        .collect();

    let mut total = Tally::default();
    for task in tasks {
        let tally = task
            .await
            .map_err(|e| RunError::Setup(format!("a publisher task failed: {e}")))?;
        total.requests += tally.requests;
        total.events += tally.events;
        for (kind, count) in tally.errors {
            *total.errors.entry(kind).or_default() += count;
        }
        total.latency.add(&tally.latency.buckets());
    }
    let secs = began.elapsed().as_secs_f64();
    let after = usage.snapshot();

    let cpu_us_per_event = per_item(server_cpu_us(&before, &after), total.events);
    let error_count: u64 = total.errors.values().sum();

    let mut checks = Checks::default();
    checks.none("publish requests that failed", error_count);
    checks.require(total.events > 0, "no event was acknowledged");

    let mut params = common_params(&setup);
    params.insert("publishers".into(), args.publishers.into());
    params.insert("duration_secs".into(), args.duration.as_secs_f64().into());
    params.insert("batch".into(), args.batch.into());
    params.insert("payload_bytes".into(), args.payload_bytes.into());
    params.insert("keys".into(), args.keys.into());
    params.insert("entities".into(), args.entities.into());

    let latency = total.latency.summary();
    let mut figures = Map::new();
    figures.insert("params".into(), Value::Object(params));
    figures.insert(
        "publish".into(),
        json!({
            "requests": total.requests,
            "events_acked": total.events,
            "errors": total.errors,
            "secs": round1(secs),
            "events_per_sec": rate(total.events, secs),
            "requests_per_sec": rate(total.requests - error_count, secs),
            "latency_us": latency,
        }),
    );
    usage.add_figures(
        &mut figures,
        &[("before", &before), ("end", &after)],
        &before,
        &after,
        0,
    );
    figures.insert("server_cpu_us_per_event".into(), json!(cpu_us_per_event));

    let mut summary = vec![
        format!(
            "{} publishers × batches of {}: {} events acknowledged in {secs:.1}s = {}/s ({} requests/s)",
            args.publishers,
            args.batch,
            total.events,
            rate(total.events, secs),
            rate(total.requests - error_count, secs)
        ),
        format!(
            "request latency µs p50 {} p90 {} p99 {} p99.9 {} max {}; errors {:?}",
            latency.p50, latency.p90, latency.p99, latency.p999, latency.max, total.errors
        ),
    ];
    if let Some(cpu) = server_cpu_pct(&before, &after) {
        summary.push(format!(
            "server CPU {cpu:.1}% of a core; {} µs per event",
            cpu_us_per_event.unwrap_or(0.0)
        ));
    }
    Ok(Outcome {
        scenario: "publish",
        figures,
        summary,
        checks,
    })
}
