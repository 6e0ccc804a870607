//! One subscriber's life: connect, subscribe, read until told to stop or the
//! server ends it, checking every event on the way.
//!
//! A subscriber's record ([`Track`]) outlives its task: the worker reads it
//! to report, and a reconnect starts a new task on the same record, so the
//! sequence check and the cursor carry across connections the way a real
//! client's would.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::feed::Feed;
use crate::histogram::Recorder;
use crate::net::Dialer;
use crate::probe::{ReceivedEvent, unix_micros};
use crate::sequence::SequenceCheck;
use crate::server::Server;
use crate::subscription::{FeedItem, OpenError, Subscription};
use crate::target::Target;
use crate::transport::{Start, Transport};

/// Where a subscriber is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Connecting,
    Live,
    /// The last connection attempt failed; the kind is in `failures`.
    Failed,
    /// The server ended a live connection; the kind is in `ends`.
    Ended,
    /// We closed it on purpose (storm's drop).
    Dropped,
}

#[derive(Debug)]
pub struct Track {
    pub transport: Transport,
    pub state: State,
    pub check: SequenceCheck,
    /// The resume cursor: the highest event id received.
    pub last_id: Option<u64>,
    /// Successful connections so far.
    pub connections: u32,
    pub heartbeats: u64,
    /// Events without a loadgen probe (someone else published on the topic).
    pub foreign: u64,
    pub unreadable: u64,
    /// Each failed connection attempt, by kind.
    pub failures: Vec<String>,
    /// Each unexpected end of a live connection, by kind.
    pub ends: Vec<String>,
    /// Time from the reconnect order to receiving the catch-up target.
    pub caught_up_after: Option<Duration>,
}

impl Track {
    pub fn new(transport: Transport) -> Track {
        Track {
            transport,
            state: State::Connecting,
            check: SequenceCheck::default(),
            last_id: None,
            connections: 0,
            heartbeats: 0,
            foreign: 0,
            unreadable: 0,
            failures: Vec::new(),
            ends: Vec::new(),
            caught_up_after: None,
        }
    }
}

/// Locks a mutex, recovering the data if a task panicked while holding it:
/// the counters inside stay meaningful, and a report beats a second panic.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A catch-up goal: the head of the topic when clients were told to
/// reconnect, and when they were told.
#[derive(Debug, Clone, Copy)]
pub struct CatchUpGoal {
    pub target_id: u64,
    pub since: Instant,
}

/// What all subscribers of one worker record into. `std::sync::Mutex`es, not
/// Tokio ones: nothing awaits while holding them, and a worker runs on one
/// thread, so they are never contended.
#[derive(Debug, Default)]
pub struct Shared {
    /// Publish→receive latency in µs, per transport.
    pub latency: Mutex<[Recorder; 2]>,
    /// Connect-to-confirmed time in µs, per transport.
    pub connect: Mutex<[Recorder; 2]>,
    pub catch_up: Mutex<Option<CatchUpGoal>>,
    /// Wall-clock span of all deliveries, for deliveries per second.
    pub first_receive_us: AtomicU64,
    pub last_receive_us: AtomicU64,
}

impl Shared {
    pub fn new() -> Shared {
        Shared {
            first_receive_us: AtomicU64::new(u64::MAX),
            ..Shared::default()
        }
    }
}

pub fn slot(transport: Transport) -> usize {
    match transport {
        Transport::Sse => 0,
        Transport::Ws => 1,
    }
}

/// Everything the subscribers of one worker have in common.
#[derive(Debug)]
pub struct Plan {
    pub server: Server,
    pub target: Target,
    pub token: Option<String>,
    pub topic: String,
    pub dialer: Dialer,
    pub connect_timeout: Duration,
}

/// Runs one subscriber until its connection ends (or its task is aborted).
/// `index` picks the source address; `gate` limits attempts in flight.
pub async fn run(
    plan: Arc<Plan>,
    index: usize,
    track: Arc<Mutex<Track>>,
    shared: Arc<Shared>,
    gate: Option<Arc<Semaphore>>,
) {
    let (transport, start) = {
        let mut t = lock(&track);
        t.state = State::Connecting;
        (t.transport, t.last_id.map_or(Start::Now, Start::After))
    };
    let subscription = Subscription {
        server: plan.server,
        target: &plan.target,
        token: plan.token.as_deref(),
        topic: &plan.topic,
        start,
    };
    let opened = {
        // Held only while connecting; a closed semaphore means no limit.
        let _permit = match &gate {
            Some(gate) => gate.clone().acquire_owned().await.ok(),
            None => None,
        };
        let began = Instant::now();
        let attempt = async {
            let stream = plan
                .dialer
                .connect(index)
                .await
                .map_err(OpenError::Connect)?;
            Feed::open(transport, stream, &subscription).await
        };
        match tokio::time::timeout(plan.connect_timeout, attempt).await {
            Ok(opened) => opened.map(|feed| (feed, began.elapsed())),
            Err(_) => Err(OpenError::Timeout(plan.connect_timeout)),
        }
    };
    let mut feed = match opened {
        Ok((feed, took)) => {
            lock(&shared.connect)[slot(transport)].record(took.as_micros() as u64);
            let mut t = lock(&track);
            t.state = State::Live;
            t.connections += 1;
            drop(t);
            feed
        }
        Err(error) => {
            let mut t = lock(&track);
            t.state = State::Failed;
            t.failures.push(error.kind());
            return;
        }
    };

    loop {
        let item = feed.next().await;
        let mut t = lock(&track);
        match item {
            Ok(FeedItem::Event(event)) => observe(&mut t, &event, &shared),
            Ok(FeedItem::Heartbeat) => t.heartbeats += 1,
            Ok(FeedItem::Unreadable) => t.unreadable += 1,
            Ok(FeedItem::CaughtUp | FeedItem::Other) => {}
            Err(end) => {
                t.state = State::Ended;
                t.ends.push(end.kind());
                return;
            }
        }
    }
}

fn observe(track: &mut Track, event: &ReceivedEvent, shared: &Shared) {
    let now_us = unix_micros();
    shared.first_receive_us.fetch_min(now_us, Ordering::Relaxed);
    shared.last_receive_us.fetch_max(now_us, Ordering::Relaxed);
    track.last_id = Some(track.last_id.map_or(event.id, |last| last.max(event.id)));
    match event.probe() {
        Some(probe) => {
            track.check.observe(probe.seq);
            lock(&shared.latency)[slot(track.transport)]
                .record(now_us.saturating_sub(probe.sent_us));
        }
        None => track.foreign += 1,
    }
    if track.caught_up_after.is_none()
        && let Some(goal) = *lock(&shared.catch_up)
        && event.id >= goal.target_id
    {
        track.caught_up_after = Some(goal.since.elapsed());
    }
}
