//! `storm`: the reconnect storm after a network blip. N clients subscribe
//! and receive a first event (so each has a cursor); all drop; K events are
//! published while they are away; then all reconnect at once with
//! `since=<their cursor>` while publishing goes on. Measured: how long until
//! each client has the head as it was at the reconnect, and whether every
//! client got every event exactly once across the handover.

use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio::sync::watch;

use super::error::RunError;
use super::figures::{common_params, transport_figures};
use super::progress::progress;
use super::setup::{Setup, require_pushlog};
use super::subscribers::{Finished, Mix, Subscribers, check_every_event_once_in_order};
use super::usage::{Watch, server_cpu_pct};
use crate::cli::StormArgs;
use crate::procstat::round1;
use crate::publisher::AmbiguousPublish;
use crate::report::{Checks, Outcome};
use crate::worker::protocol::Command;

/// Events per request while building the backlog: big enough to be quick,
/// small enough that one request stays well under the server's limits.
const BACKLOG_BATCH: u32 = 500;
/// How long clients get to receive the first event, and the last.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

pub async fn run(args: StormArgs) -> Result<Outcome, RunError> {
    require_pushlog(
        &args.common,
        "storm resumes from loadgen's cursor with `since`, which nchan does not take; \
         run storm against pushlog",
    )?;
    let setup = Setup::new(
        &args.common,
        "storm",
        args.catch_up_timeout + DRAIN_TIMEOUT * 2,
    )?;
    let channel = setup.channel()?;
    let mix = Mix::new(args.transport, args.clients);
    let (sse, ws) = (mix.sse, mix.ws);
    let mut usage = Watch::new(args.common.server_pid);
    let before = usage.baseline("storm");

    progress(
        "storm",
        &format!(
            "subscribing {sse} SSE + {ws} WebSocket clients to {}",
            setup.topic
        ),
    );
    let mut subscribers = Subscribers::open(&setup, mix, &mut usage).await?;
    let first_connect_failures = subscribers.at_open.connect_failure_count();
    let mut publisher = setup.probe_publisher(channel);
    let publish_failed = |e: AmbiguousPublish| RunError::Setup(e.to_string());

    // 1. A first event, so every client has a cursor to come back with.
    while !publisher.publish(1).await.map_err(publish_failed)? {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let warmed = subscribers.drain(0, DRAIN_TIMEOUT).await?;
    let with_cursor = warmed.all.live;

    // 2. Everyone drops.
    progress(
        "storm",
        &format!("{with_cursor} clients have a cursor; dropping them all"),
    );
    subscribers
        .command(Command::Drop, Duration::from_secs(10))
        .await?;

    // 3. The backlog each client will be behind by.
    let mut backlog = 0u32;
    while backlog < args.behind {
        let count = (args.behind - backlog).min(BACKLOG_BATCH);
        if publisher.publish(count).await.map_err(publish_failed)? {
            backlog += count;
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let head = publisher.stats.last_id.unwrap_or(0);
    let backlog_seq = publisher.last_seq().unwrap_or(0);

    // 4. All reconnect at once while publishing goes on.
    progress(
        "storm",
        &format!(
            "{} events published while away (head {head}); reconnecting all while publishing at {}/s",
            args.behind, args.rate
        ),
    );
    let (stop, stopped) = watch::channel(false);
    let rate = args.rate;
    let publishing = tokio::spawn(async move {
        let result = publisher
            .run(
                rate,
                1,
                args.catch_up_timeout + Duration::from_secs(30),
                stopped,
            )
            .await;
        (publisher, result)
    });
    let storm_from = usage.snapshot();
    let storm_began = Instant::now();
    let rejoined = subscribers
        .command(
            Command::Reconnect {
                target_id: head,
                concurrency: args.reconnect_concurrency,
                timeout_ms: args.catch_up_timeout.as_millis() as u64,
            },
            args.catch_up_timeout,
        )
        .await?;
    let storm_secs = storm_began.elapsed().as_secs_f64();
    let storm_to = usage.snapshot();
    let _ = stop.send(true);
    let (publisher, publish_result) = publishing
        .await
        .map_err(|e| RunError::Setup(format!("the publisher task failed: {e}")))?;
    let catch_up_timed_out = rejoined.timed_out;
    let at_rejoin = rejoined.all;

    // 5. Everyone must end with every event, once.
    let last_seq = publisher.last_seq().unwrap_or(backlog_seq);
    let drained = subscribers.drain(last_seq, DRAIN_TIMEOUT).await?;
    let drain_timed_out = drained.timed_out;
    let end = usage.snapshot();
    let Finished {
        workers,
        per_transport,
        all,
    } = subscribers.finish(Some(last_seq)).await?;

    let reconnect_failures = all
        .connect_failure_count()
        .saturating_sub(first_connect_failures);
    let not_caught_up = with_cursor.saturating_sub(at_rejoin.caught_up);
    let catch_up = all.view().catch_up_us;

    let mut checks = Checks::default();
    check_every_event_once_in_order(&mut checks, &all);
    checks.failure_rate(
        "clients that failed to connect at first",
        first_connect_failures,
        u64::from(args.clients),
        args.common.max_failed_pct,
    );
    checks.failure_rate(
        "clients that failed to reconnect",
        reconnect_failures,
        with_cursor,
        args.common.max_failed_pct,
    );
    checks.failure_rate(
        "clients ended by the server",
        all.unexpected_end_count(),
        u64::from(args.clients),
        args.common.max_failed_pct,
    );
    checks.none("clients that did not catch up in time", not_caught_up);
    checks.require(!catch_up_timed_out, "the catch-up phase timed out");
    checks.require(
        !drain_timed_out,
        "some clients did not receive the last event in time",
    );
    checks.none(
        "publish requests that failed",
        publisher.stats.errors.values().sum(),
    );
    if let Err(error) = &publish_result {
        checks.require(false, error.to_string());
    }

    let mut params = common_params(&setup);
    params.insert("clients".into(), args.clients.into());
    mix.add_params(&mut params);
    params.insert("behind".into(), args.behind.into());
    params.insert("rate".into(), args.rate.to_string().into());
    params.insert(
        "reconnect_concurrency".into(),
        args.reconnect_concurrency.into(),
    );

    let ms = |us: u64| round1(us as f64 / 1000.0);
    let mut figures = Map::new();
    figures.insert("params".into(), Value::Object(params));
    figures.insert(
        "storm".into(),
        json!({
            "clients_with_cursor": with_cursor,
            "head_at_reconnect": head,
            "caught_up": at_rejoin.caught_up,
            "not_caught_up": not_caught_up,
            "reconnect_failures": reconnect_failures,
            "all_caught_up_ms": (not_caught_up == 0).then(|| ms(catch_up.max)),
            "catch_up_ms": {
                "p50": ms(catch_up.p50), "p90": ms(catch_up.p90),
                "p99": ms(catch_up.p99), "max": ms(catch_up.max),
            },
            "phase_secs": round1(storm_secs),
            "events_published": publisher.stats.events,
            "events_received": all.sequence.received,
            "gaps": all.sequence.gaps,
            "missing_events": all.missing_events,
            "duplicates": all.sequence.duplicates,
            "out_of_order": all.sequence.out_of_order,
            "subscribers_with_problems": all.subscribers_with_problems,
            "publish_errors": publisher.stats.errors,
        }),
    );
    figures.insert("transports".into(), transport_figures(&per_transport));
    usage.add_figures(
        &mut figures,
        &[
            ("before", &before),
            ("storm_start", &storm_from),
            ("storm_end", &storm_to),
            ("end", &end),
        ],
        &storm_from,
        &storm_to,
        workers,
    );

    let mut summary = vec![
        format!(
            "{with_cursor} clients ({sse} SSE, {ws} WS) dropped, {} events behind, reconnected at once",
            args.behind
        ),
        format!(
            "caught up: {} of {with_cursor}; all by {} ms (p50 {} ms, p99 {} ms); reconnect failures {reconnect_failures}",
            at_rejoin.caught_up,
            ms(catch_up.max),
            ms(catch_up.p50),
            ms(catch_up.p99)
        ),
    ];
    for (name, tally) in &per_transport {
        let view = tally.view();
        summary.push(format!(
            "{name}: caught up {} (p50 {} ms, max {} ms); gaps {} missing {} dup {} ooo {}; failures {:?}; ended {:?}",
            view.caught_up,
            ms(view.catch_up_us.p50),
            ms(view.catch_up_us.max),
            view.gaps,
            view.missing_events,
            view.duplicates,
            view.out_of_order,
            view.connect_failures,
            view.unexpected_ends
        ));
    }
    if let Some(cpu) = server_cpu_pct(&storm_from, &storm_to) {
        summary.push(format!("server CPU during the storm {cpu:.1}% of a core"));
    }
    Ok(Outcome {
        scenario: "storm",
        figures,
        summary,
        checks,
    })
}
