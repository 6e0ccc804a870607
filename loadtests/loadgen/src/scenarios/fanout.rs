//! `fanout`: N subscribers on one topic, one publisher. Each subscriber
//! measures publish→receive latency and checks it gets every event once, in
//! order. `--rate max` publishes as fast as the publisher goes, to find the
//! deliveries per second the server sustains.

use std::time::Instant;

use serde_json::{Map, Value, json};
use tokio::sync::watch;

use super::error::RunError;
use super::figures::{common_params, per_item, rate, transport_figures};
use super::progress::progress;
use super::setup::{Setup, require_single_events_for_nchan};
use super::subscribers::{Finished, Mix, Subscribers, check_every_event_once_in_order};
use super::usage::{Watch, server_cpu_pct, server_cpu_us, server_sys_us};
use crate::cli::{FanoutArgs, Pace};
use crate::probe::unix_micros;
use crate::procstat::round1;
use crate::report::{Checks, Outcome};

pub async fn run(args: FanoutArgs) -> Result<Outcome, RunError> {
    require_single_events_for_nchan(&args.common, args.batch)?;
    let setup = Setup::new(&args.common, "fanout", args.duration + args.drain_timeout)?;
    let channel = setup.channel()?;
    let mix = Mix::new(args.transport, args.subscribers);
    let (sse, ws) = (mix.sse, mix.ws);
    let mut usage = Watch::new(args.common.server_pid);

    let before = usage.baseline("fanout");
    progress(
        "fanout",
        &format!(
            "subscribing {sse} SSE + {ws} WebSocket clients to {}",
            setup.topic
        ),
    );
    let mut subscribers = Subscribers::open(&setup, mix, &mut usage).await?;
    let at_open = &subscribers.at_open;
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

    let mut publisher = setup.probe_publisher(channel);
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
        let drained = subscribers.drain(last_seq, args.drain_timeout).await?;
        drain_secs = publish_began.elapsed().as_secs_f64() - publish_secs;
        drain_timed_out = drained.timed_out;
    }
    let delivered = usage.snapshot();
    let Finished {
        workers,
        per_transport,
        all,
    } = subscribers.finish(last_seq).await?;

    // Deliveries per second: every delivery, over the span from the first
    // publish to the last delivery.
    let deliveries = all.sequence.received;
    let delivery_secs = all.last_receive_unix_us.map_or(0.0, |last| {
        last.saturating_sub(publish_start_us) as f64 / 1e6
    });
    let expected_deliveries = published * subscribed;
    let cpu_us_per_delivery = per_item(server_cpu_us(&publish_from, &delivered), deliveries);
    let sys_us_per_delivery = per_item(server_sys_us(&publish_from, &delivered), deliveries);

    let mut checks = Checks::default();
    check_every_event_once_in_order(&mut checks, &all);
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
    mix.add_params(&mut params);
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
    figures.insert("transports".into(), transport_figures(&per_transport));
    usage.add_figures(
        &mut figures,
        &[
            ("before", &before),
            ("subscribed", &publish_from),
            ("published", &publish_to),
            ("end", &delivered),
        ],
        &publish_from,
        &delivered,
        workers,
    );
    figures.insert(
        "server_cpu_us_per_delivery".into(),
        json!(cpu_us_per_delivery),
    );
    figures.insert(
        "server_sys_us_per_delivery".into(),
        json!(sys_us_per_delivery),
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
    if let Some(cpu) = server_cpu_pct(&publish_from, &delivered) {
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
