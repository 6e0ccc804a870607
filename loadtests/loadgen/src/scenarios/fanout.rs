//! `fanout`: N subscribers on one topic, one publisher. Each subscriber
//! measures publish→receive latency and checks it gets every event once, in
//! order. `--rate max` publishes as fast as the publisher goes, to find the
//! deliveries per second the server sustains.

use std::time::Instant;

use serde_json::{Map, Value, json};
use tokio::sync::watch;

use super::{
    RunError, Setup, Watch, common_params, loadgen_figures, progress, rate, server_figures,
};
use crate::cli::{FanoutArgs, Pace};
use crate::http::HttpClient;
use crate::probe::unix_micros;
use crate::procstat::round1;
use crate::publisher::ProbePublisher;
use crate::report::{Checks, Outcome};
use crate::worker::protocol::{Command, combine};

pub async fn run(args: FanoutArgs) -> Result<Outcome, RunError> {
    if args.batch > 1 {
        super::require_pushlog(
            &args.common,
            "nchan takes one message per request; drop --batch",
        )?;
    }
    let setup = Setup::new(&args.common, "fanout", args.duration + args.drain_timeout)?;
    let channel = setup.channel()?;
    let (sse, ws) = args.transport.split(args.subscribers);
    let mut usage = Watch::new(args.common.server_pid);

    let before = usage.snapshot();
    super::warn_if_busy("fanout", &before);
    let (mut pool, at_open) = super::subscribe_all("fanout", &setup, sse, ws, &mut usage).await?;
    let subscribed = at_open.live;
    progress(
        "fanout",
        &format!(
            "{subscribed} subscribed, {} failed; publishing at {} events/s for {:?}",
            at_open.connect_failure_count(),
            args.rate,
            args.duration
        ),
    );

    // The publisher's socket comes from the first source address, like
    // connection 0; it is one socket among thousands.
    let client = HttpClient::new(setup.dialer.clone(), 0, setup.common.url.clone());
    let mut publisher = ProbePublisher::new(client, channel);
    let (_keep_running, running) = watch::channel(false);

    let publish_from = usage.snapshot();
    let publish_start_us = unix_micros();
    let publish_began = Instant::now();
    let publish_result = publisher
        .run(args.rate, args.batch, args.duration, running)
        .await;
    let publish_secs = publish_began.elapsed().as_secs_f64();
    let publish_to = usage.snapshot();
    if let Err(error) = &publish_result {
        progress("fanout", &error.to_string());
    }
    let last_seq = publisher.last_seq();
    let published = publisher.stats.events;
    progress(
        "fanout",
        &format!("published {published} events in {publish_secs:.1}s; waiting for delivery"),
    );

    let mut drain_secs = 0.0;
    let mut drain_timed_out = false;
    if let Some(last_seq) = last_seq {
        let drained = pool
            .broadcast(
                &Command::Drain {
                    last_seq,
                    timeout_ms: args.drain_timeout.as_millis() as u64,
                },
                args.drain_timeout,
            )
            .await?;
        drain_secs = publish_began.elapsed().as_secs_f64() - publish_secs;
        drain_timed_out = drained.iter().any(|r| r.timed_out);
    }
    let delivered = usage.snapshot();
    let workers = pool.len();
    let finished = pool.finish(last_seq).await?;
    let (per_transport, all) = combine(&finished);

    // Deliveries per second: every delivery, over the span from the first
    // publish to the last delivery.
    let deliveries = all.sequence.received;
    let delivery_secs = all.last_receive_unix_us.map_or(0.0, |last| {
        last.saturating_sub(publish_start_us) as f64 / 1e6
    });
    let expected_deliveries = published * subscribed;
    let cpu_us_per_delivery =
        super::per_item(super::server_cpu_us(&publish_from, &delivered), deliveries);
    let sys_us_per_delivery =
        super::per_item(super::server_sys_us(&publish_from, &delivered), deliveries);

    let mut checks = Checks::default();
    checks.none("gaps", all.sequence.gaps);
    checks.none("missing events", all.missing_events);
    checks.none("duplicates", all.sequence.duplicates);
    checks.none("out-of-order events", all.sequence.out_of_order);
    checks.none("unreadable messages", all.unreadable);
    checks.failure_rate(
        "subscribers that failed to connect",
        all.connect_failure_count(),
        u64::from(args.subscribers),
        args.common.max_failed_pct,
    );
    checks.failure_rate(
        "subscribers ended by the server",
        all.unexpected_end_count(),
        u64::from(args.subscribers),
        args.common.max_failed_pct,
    );
    checks.none(
        "publish requests that failed",
        publisher.stats.errors.values().sum(),
    );
    checks.require(
        !drain_timed_out,
        "some subscribers did not receive the last event in time",
    );
    checks.require(published > 0, "nothing was published");

    let mut params = common_params(&setup);
    params.insert("subscribers".into(), args.subscribers.into());
    params.insert("transport".into(), args.transport.to_string().into());
    params.insert("sse".into(), sse.into());
    params.insert("ws".into(), ws.into());
    params.insert("rate".into(), args.rate.to_string().into());
    params.insert("duration_secs".into(), args.duration.as_secs_f64().into());
    params.insert("batch".into(), args.batch.into());

    let stats = &publisher.stats;
    let mut figures = Map::new();
    figures.insert("params".into(), Value::Object(params));
    figures.insert(
        "publish".into(),
        json!({
            "events": published,
            "requests": stats.requests,
            "secs": round1(publish_secs),
            "events_per_sec": rate(published, publish_secs),
            "errors": stats.errors,
            "ambiguous": stats.ambiguous,
            "first_id": stats.first_id,
            "last_id": stats.last_id,
            "latency_us": stats.latency.summary(),
        }),
    );
    figures.insert(
        "delivery".into(),
        json!({
            "subscribed": subscribed,
            "expected": expected_deliveries,
            "received": deliveries,
            "deliveries_per_sec": rate(deliveries, delivery_secs),
            "drain_secs": round1(drain_secs),
            "latency_us": all.view().latency_us,
            "gaps": all.sequence.gaps,
            "missing_events": all.missing_events,
            "duplicates": all.sequence.duplicates,
            "out_of_order": all.sequence.out_of_order,
            "subscribers_with_problems": all.subscribers_with_problems,
        }),
    );
    figures.insert(
        "transports".into(),
        super::transport_figures(&per_transport),
    );
    figures.insert(
        "server".into(),
        server_figures(
            args.common.server_pid,
            &[
                ("before", &before),
                ("subscribed", &publish_from),
                ("published", &publish_to),
                ("end", &delivered),
            ],
            &publish_from,
            &delivered,
        ),
    );
    figures.insert(
        "server_cpu_us_per_delivery".into(),
        json!(cpu_us_per_delivery),
    );
    figures.insert(
        "server_sys_us_per_delivery".into(),
        json!(sys_us_per_delivery),
    );
    figures.insert(
        "loadgen".into(),
        loadgen_figures(workers, &publish_from, &delivered),
    );

    let latency = all.view().latency_us;
    let mut summary = vec![
        format!(
            "{subscribed} subscribers ({sse} SSE, {ws} WS); published {published} events in {publish_secs:.1}s ({}/s{})",
            rate(published, publish_secs),
            if args.rate == Pace::Max { ", max" } else { "" }
        ),
        format!(
            "delivered {deliveries} of {expected_deliveries} expected ({}/s); latency µs p50 {} p90 {} p99 {} p99.9 {} max {}",
            rate(deliveries, delivery_secs),
            latency.p50,
            latency.p90,
            latency.p99,
            latency.p999,
            latency.max
        ),
    ];
    for (name, tally) in &per_transport {
        let view = tally.view();
        summary.push(format!(
            "{name}: {} subscribers, {} events; p50 {} p99 {} µs; gaps {} missing {} dup {} ooo {}; ended {:?}",
            view.subscribers,
            view.events_received,
            view.latency_us.p50,
            view.latency_us.p99,
            view.gaps,
            view.missing_events,
            view.duplicates,
            view.out_of_order,
            view.unexpected_ends
        ));
    }
    if let Some(cpu) = super::server_cpu_pct(&publish_from, &delivered) {
        summary.push(format!(
            "server CPU {cpu:.1}% of a core while publishing and delivering; {} µs per delivery, {} of them in the kernel",
            cpu_us_per_delivery.unwrap_or(0.0),
            sys_us_per_delivery.unwrap_or(0.0)
        ));
    }
    Ok(Outcome {
        scenario: "fanout",
        figures,
        summary,
        checks,
    })
}
