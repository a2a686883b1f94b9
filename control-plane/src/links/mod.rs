//! Who is connected to this process: each worker's link, capacity, load
//! and liveness, and the one way to send a worker a command. The database
//! holds leases; this holds sockets. It knows nothing of bots.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use attache_protocol::{BotReport, ControlMsg, Load};
use tokio::sync::mpsc;

mod liveness;
mod regions;

pub(crate) use regions::{pool_label, region_loads};

use liveness::{Action, Event, Liveness};

#[derive(Clone)]
pub(crate) struct Link {
    pub conn_id: usize,
    pub tx: mpsc::Sender<ControlMsg>,
    pub conn: quinn::Connection,
}

struct Entry {
    region: String,
    pool: Option<String>,
    draining: bool,
    link: Option<Link>,
    liveness: Liveness,
    last_heartbeat: Instant,
    load: Load,
    software_version: String,
    /// The bots the worker last said it runs; unknown (`None`) while it has
    /// no link.
    observed: Option<Vec<BotReport>>,
}

/// What a worker says about itself when it connects.
#[derive(Debug, Clone)]
pub(crate) struct Hello {
    pub region: String,
    /// The dedicated pool named in its certificate, if any.
    pub pool: Option<String>,
    pub capacity: u32,
    pub software_version: String,
    pub bots: Vec<BotReport>,
}

impl Entry {
    fn unseen(region: String, liveness: Liveness, now: Instant) -> Entry {
        Entry {
            region,
            pool: None,
            draining: false,
            link: None,
            liveness,
            last_heartbeat: now,
            load: Load::default(),
            software_version: String::new(),
            observed: None,
        }
    }
}

/// One worker as this process sees it.
#[derive(Debug, Clone)]
pub(crate) struct WorkerView {
    pub connected: bool,
    pub draining: bool,
    pub load: Load,
    pub software_version: String,
}

/// A worker the dispatcher may choose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub id: String,
    pub region: String,
    /// `None`: a shared worker, for shared tenants' bots only.
    pub pool: Option<String>,
    pub capacity: u32,
}

#[derive(Clone, Default)]
pub(crate) struct Registry {
    inner: Arc<Mutex<HashMap<String, Entry>>>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.inner.lock().expect("registry lock")
    }

    /// Records a new link and returns the one it replaces, if any.
    pub(crate) fn connect(&self, id: &str, hello: Hello, link: Link) -> Option<Link> {
        let now = Instant::now();
        let mut map = self.lock();
        let e = map
            .entry(id.to_string())
            .or_insert_with(|| Entry::unseen(hello.region.clone(), Liveness::Lost, now));
        e.region = hello.region;
        e.pool = hello.pool;
        // Until its first heartbeat, what it said in its hello.
        e.load = Load {
            active_bots: hello.bots.len() as u32,
            capacity: hello.capacity,
            rss_mib: 0,
            draining: false,
        };
        e.software_version = hello.software_version;
        e.observed = Some(hello.bots);
        e.draining = false;
        e.last_heartbeat = now;
        e.liveness = e
            .liveness
            .step(Event::Connected, now, now, Duration::ZERO)
            .0;
        e.link.replace(link)
    }

    /// Forgets a link, if it is still the current one for this worker.
    pub(crate) fn disconnect(&self, id: &str, conn_id: usize) {
        let now = Instant::now();
        let mut map = self.lock();
        if let Some(e) = map.get_mut(id)
            && e.link.as_ref().is_some_and(|l| l.conn_id == conn_id)
        {
            e.link = None;
            e.observed = None;
            e.liveness = e
                .liveness
                .step(Event::Disconnected, now, e.last_heartbeat, Duration::ZERO)
                .0;
        }
    }

    pub(crate) fn heartbeat(&self, id: &str, load: Load, bots: Vec<BotReport>) {
        if let Some(e) = self.lock().get_mut(id) {
            e.last_heartbeat = Instant::now();
            e.load = load;
            // A draining worker is no candidate for new bots; within one
            // link it never takes them again.
            e.draining |= load.draining;
            e.observed = Some(bots);
        }
    }

    /// The worker refused a bot for want of room: it is offered none until
    /// its next heartbeat says how much it has.
    pub(crate) fn full(&self, id: &str) {
        if let Some(e) = self.lock().get_mut(id) {
            let running = e.observed.as_ref().map_or(0, |b| b.len() as u32);
            e.load.capacity = e.load.capacity.min(running);
        }
    }

    /// The worker said it does not run this lease (it refused a command for
    /// it as stale): until its next heartbeat, it is not counted as running.
    pub(crate) fn forget(&self, id: &str, bot_id: uuid::Uuid, generation: u64) {
        if let Some(bots) = self.lock().get_mut(id).and_then(|e| e.observed.as_mut()) {
            bots.retain(|b| b.bot_id != bot_id || b.generation != generation);
        }
    }

    /// The bots a connected worker last said it runs.
    pub(crate) fn observed(&self, id: &str) -> Option<Vec<BotReport>> {
        self.lock().get(id).and_then(|e| e.observed.clone())
    }

    /// A worker that holds leases but has no entry (this process has not seen
    /// it since starting) begins its grace period now.
    pub(crate) fn note_unseen(&self, id: &str, now: Instant) {
        self.lock().entry(id.to_string()).or_insert_with(|| {
            Entry::unseen(String::new(), Liveness::Reconnecting { since: now }, now)
        });
    }

    /// Advances every liveness clock; returns the workers just lost.
    pub(crate) fn tick(&self, now: Instant, grace: Duration) -> Vec<String> {
        let mut lost = Vec::new();
        for (id, e) in self.lock().iter_mut() {
            let (next, action) = e.liveness.step(Event::Tick, now, e.last_heartbeat, grace);
            e.liveness = next;
            match action {
                Some(Action::CloseLinkAndExpire) => {
                    if let Some(l) = e.link.take() {
                        l.conn.close(
                            attache_protocol::ErrorCode::ResourceExhausted
                                .quic_code()
                                .into(),
                            b"heartbeat timeout",
                        );
                    }
                    lost.push(id.clone());
                }
                Some(Action::ExpireLeases) => lost.push(id.clone()),
                None => {}
            }
        }
        lost
    }

    /// Sends a command to a connected worker. A full queue means the worker
    /// is not keeping up; the sweep repeats what matters.
    pub(crate) fn send(&self, id: &str, msg: ControlMsg) -> bool {
        let tx = self
            .lock()
            .get(id)
            .and_then(|e| e.link.as_ref().map(|l| l.tx.clone()));
        match tx {
            Some(tx) => tx.try_send(msg).is_ok(),
            None => false,
        }
    }

    /// Tells a worker linked here to drain, and stops offering it bots at
    /// once. False if it has no link to this replica.
    pub(crate) fn drain(&self, id: &str) -> bool {
        let sent = self.send(id, ControlMsg::Drain);
        if sent && let Some(e) = self.lock().get_mut(id) {
            e.draining = true;
        }
        sent
    }

    pub(crate) fn candidates(&self) -> Vec<Candidate> {
        self.lock()
            .iter()
            .filter(|(_, e)| e.liveness == Liveness::Connected && e.link.is_some() && !e.draining)
            .map(|(id, e)| Candidate {
                id: id.clone(),
                region: e.region.clone(),
                pool: e.pool.clone(),
                capacity: e.load.capacity,
            })
            .collect()
    }

    /// Lost, with no link: its leases may be taken back.
    pub(crate) fn is_lost(&self, id: &str) -> bool {
        self.lock()
            .get(id)
            .is_some_and(|e| e.liveness == Liveness::Lost && e.link.is_none())
    }

    /// Each known worker's live view.
    pub(crate) fn views(&self) -> HashMap<String, WorkerView> {
        self.lock()
            .iter()
            .map(|(id, e)| {
                let view = WorkerView {
                    connected: e.link.is_some(),
                    draining: e.draining,
                    load: e.load,
                    software_version: e.software_version.clone(),
                };
                (id.clone(), view)
            })
            .collect()
    }

    pub(crate) fn connected(&self) -> usize {
        self.lock().values().filter(|e| e.link.is_some()).count()
    }
}
