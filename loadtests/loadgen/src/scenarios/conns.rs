//! `conns`: open N connections, hold them idle with heartbeats on, and see
//! what they cost the server in memory and CPU.

use serde_json::{Map, Value, json};

use super::error::RunError;
use super::figures::{common_params, rate, transport_figures};
use super::progress::progress;
use super::setup::Setup;
use super::subscribers::{Finished, Mix, Subscribers};
use super::usage::{Watch, server_cpu_pct};
use crate::cli::ConnsArgs;
use crate::procstat::round1;
use crate::report::{Checks, Outcome};

pub async fn run(args: ConnsArgs) -> Result<Outcome, RunError> {
    let setup = Setup::new(&args.common, "conns", args.hold)?;
    let mix = Mix::new(args.transport, args.connections);
    let (sse, ws) = (mix.sse, mix.ws);
    let mut usage = Watch::new(args.common.server_pid);

    let before = usage.baseline("conns");
    progress(
        "conns",
        &format!(
            "opening {sse} SSE + {ws} WebSocket connections to {}",
            args.common.url
        ),
    );
    let subscribers = Subscribers::open(&setup, mix, &mut usage).await?;
    let connect_secs = subscribers.open_secs;
    let at_open = &subscribers.at_open;
    progress(
        "conns",
        &format!(
            "{} live, {} failed in {connect_secs:.1}s; holding {:?}",
            at_open.live,
            at_open.connect_failure_count(),
            args.hold
        ),
    );

    let holding = usage.snapshot();
    tokio::time::sleep(args.hold).await;
    let held = usage.snapshot();
    let live_at_open = at_open.live;
    let Finished {
        workers,
        per_transport,
        all,
    } = subscribers.finish(None).await?;

    let attempted = u64::from(args.connections);
    let rss_per_connection = match (before.server, holding.server) {
        (Some(a), Some(b)) if live_at_open > 0 => Some(round1(
            (b.rss_kib as f64 - a.rss_kib as f64) * 1024.0 / live_at_open as f64,
        )),
        _ => None,
    };
    let pss_per_connection = match (
        before.server.and_then(|s| s.pss_kib),
        holding.server.and_then(|s| s.pss_kib),
    ) {
        (Some(a), Some(b)) if live_at_open > 0 => {
            Some(round1((b as f64 - a as f64) * 1024.0 / live_at_open as f64))
        }
        _ => None,
    };
    let rss_growth_during_hold_kib = match (holding.server, held.server) {
        (Some(a), Some(b)) => Some(b.rss_kib as i64 - a.rss_kib as i64),
        _ => None,
    };
    let cpu_pct = server_cpu_pct(&holding, &held);

    let mut checks = Checks::default();
    let failed = all.connect_failure_count() + all.unexpected_end_count();
    checks.failure_rate(
        "connections that failed or were ended by the server",
        failed,
        attempted,
        args.common.max_failed_pct,
    );

    let mut params = common_params(&setup);
    params.insert("connections".into(), args.connections.into());
    mix.add_params(&mut params);
    params.insert("hold_secs".into(), args.hold.as_secs_f64().into());

    let mut figures = Map::new();
    figures.insert("params".into(), Value::Object(params));
    figures.insert(
        "connections".into(),
        json!({
            "attempted": attempted,
            "live_after_open": live_at_open,
            "live_at_end": all.live,
            "connect_failures": all.connect_failures,
            "ended_by_server": all.unexpected_ends,
            "open_secs": round1(connect_secs),
            "opened_per_sec": rate(live_at_open, connect_secs),
            "heartbeats_received": all.heartbeats,
        }),
    );
    figures.insert("transports".into(), transport_figures(&per_transport));
    usage.add_figures(
        &mut figures,
        &[("before", &before), ("connected", &holding), ("end", &held)],
        &holding,
        &held,
        workers,
    );
    figures.insert("rss_per_connection_bytes".into(), json!(rss_per_connection));
    figures.insert("pss_per_connection_bytes".into(), json!(pss_per_connection));
    figures.insert(
        "rss_growth_during_hold_kib".into(),
        json!(rss_growth_during_hold_kib),
    );
    figures.insert("server_cpu_pct_during_hold".into(), json!(cpu_pct));

    let mut summary = vec![
        format!(
            "{} of {attempted} connections live after {connect_secs:.1}s ({sse} SSE, {ws} WS); {} still live after {:?}",
            live_at_open, all.live, args.hold
        ),
        format!(
            "connect failures {:?}; ended by server {:?}; heartbeats received {}",
            all.connect_failures, all.unexpected_ends, all.heartbeats
        ),
    ];
    if let (Some(a), Some(b), Some(c)) = (before.server, holding.server, held.server) {
        summary.push(format!(
            "server RSS {} → {} → {} KiB (before / connected / end{}); {} bytes per connection (PSS {}); hold growth {} KiB",
            a.rss_kib,
            b.rss_kib,
            c.rss_kib,
            match c.processes {
                1 => String::new(),
                n => format!(", {n} processes"),
            },
            rss_per_connection.unwrap_or(0.0),
            pss_per_connection.map_or("-".to_string(), |pss| pss.to_string()),
            c.rss_kib as i64 - b.rss_kib as i64
        ));
        summary.push(format!(
            "server CPU during hold {:.1}% of a core; open files {:?}",
            cpu_pct.unwrap_or(0.0),
            c.open_files
        ));
    }
    Ok(Outcome {
        scenario: "conns",
        figures,
        summary,
        checks,
    })
}
