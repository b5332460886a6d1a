//! The kernel's double-buffered write counters (`maps::WRITES`), read and
//! emptied in batches.
//!
//! The probe counts into the table `GEN` names. A drain flips `GEN`, waits
//! for an RCU grace period — after it, every program run that read the old
//! generation has returned, so nothing writes the old table any more — and
//! then empties the old table with `BPF_MAP_LOOKUP_AND_DELETE_BATCH`, a few
//! thousand entries per syscall. No increment can fall between the read and
//! the delete, so counts stay exact; and the tables hold only the tuples of
//! one tick, never those of maps and goroutines long gone.
//!
//! aya has no batch operations and no way to wait for a grace period, so
//! both are raw `bpf(2)` calls here. The wait uses the kernel's own rule
//! (`maybe_wait_bpf_programs`, kernel/bpf/syscall.c): an update of a
//! map-in-map from userspace returns only after `synchronize_rcu()`, which
//! the kernel selftests use for the same purpose. Uprobe programs run under
//! `rcu_read_lock()` (non-sleepable), which that grace period covers.

use std::os::fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};

use anyhow::Context as _;
use aya::maps::{Array, Map, MapData, PerCpuArray, PerCpuValues};
use probe_common::{
    maps as names,
    uprobe::{WriteKey, WriteValue},
};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_LOOKUP_AND_DELETE_BATCH: libc::c_long = 25;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
const BPF_MAP_TYPE_ARRAY: u32 = 2;
const BPF_MAP_TYPE_ARRAY_OF_MAPS: u32 = 12;

/// Entries asked for per batch call. The kernel returns a hash bucket whole
/// or not at all (ENOSPC when one bucket is larger than this).
const BATCH: u32 = 4096;

/// A key's counts summed over CPUs, with what was read when it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drained {
    pub count: u64,
    pub maptype: u64,
    pub gopc: u64,
}

pub struct CounterTables {
    tables: [MapData; 2],
    generation: Array<MapData, u32>,
    current: u32,
    /// New keys per table since it became the active one (`INSERTS`).
    inserts: PerCpuArray<MapData, u64>,
    /// Entries a table holds.
    capacity: u64,
    /// The map-in-map whose updates wait for a grace period, and the inner
    /// map put into it.
    sync_outer: OwnedFd,
    sync_inner: OwnedFd,
    ncpus: usize,
    keys: Vec<WriteKey>,
    values: Vec<WriteValue>,
}

impl CounterTables {
    pub fn new(ebpf: &mut aya::Ebpf) -> anyhow::Result<Self> {
        let mut take = |n: &str| match ebpf.take_map(n) {
            Some(Map::PerCpuHashMap(m)) => Ok(m),
            _ => anyhow::bail!("per-CPU hash map {n} missing from the eBPF object"),
        };
        let tables = [take(names::WRITES[0])?, take(names::WRITES[1])?];
        let generation = Array::try_from(ebpf.take_map(names::GEN).context("map GEN missing")?)?;
        let inserts = PerCpuArray::try_from(ebpf.take_map(names::INSERTS).context("map INSERTS missing")?)?;
        let capacity = u64::from(tables[0].info().context("reading the counter table's size")?.max_entries());
        let ncpus = aya::util::nr_cpus().map_err(|(what, e)| anyhow::anyhow!("{what}: {e}"))?;
        let sync_inner = map_create(BPF_MAP_TYPE_ARRAY, 4, 4, 1, None).context("creating the grace-period map")?;
        let sync_outer = map_create(BPF_MAP_TYPE_ARRAY_OF_MAPS, 4, 4, 1, Some(sync_inner.as_raw_fd()))
            .context("creating the grace-period map-in-map")?;
        Ok(Self {
            tables,
            generation,
            current: 0,
            inserts,
            capacity,
            sync_outer,
            sync_inner,
            ncpus,
            keys: Vec::new(),
            values: Vec::new(),
        })
    }

    /// Whether the active table is at least half full (new keys since it
    /// became active, summed over CPUs): time to drain, whatever the period.
    pub fn half_full(&self) -> bool {
        let n: u64 = self.inserts.get(&self.current, 0).map(|v| v.iter().sum()).unwrap_or(0);
        n * 2 >= self.capacity
    }

    /// Flips the generation, waits until no probe writes the old table,
    /// then empties it into `out` (sums over CPUs). Returns how many keys.
    pub fn drain(&mut self, out: &mut Vec<(WriteKey, Drained)>) -> anyhow::Result<usize> {
        let old = self.current;
        self.current ^= 1;
        // The table about to become active has been idle since the last
        // flip's grace period: nothing bumps its insert count meanwhile.
        let zeros = PerCpuValues::try_from(vec![0u64; self.ncpus]).context("zeroing the insert count")?;
        self.inserts.set(self.current, zeros, 0).context("zeroing the insert count")?;
        self.generation.set(0, self.current, 0).context("switching the counter table")?;
        self.wait_for_programs().context("waiting for running probes to finish")?;
        self.empty(old as usize, out)
    }

    /// Empties both tables (the final read: the probes are still attached,
    /// so after this, what the active table gained since is read too).
    pub fn drain_all(&mut self, out: &mut Vec<(WriteKey, Drained)>) -> anyhow::Result<usize> {
        Ok(self.drain(out)? + self.drain(out)?)
    }

    /// Empties both tables without a flip or a grace period: only once no
    /// probe is attached and none runs (`Probes::detached_within`), so that
    /// nothing can write them any more.
    pub fn drain_detached(&mut self, out: &mut Vec<(WriteKey, Drained)>) -> anyhow::Result<usize> {
        Ok(self.empty(self.current as usize ^ 1, out)? + self.empty(self.current as usize, out)?)
    }

    /// CPUs the per-CPU values are kept for (the values read per key).
    pub fn ncpus(&self) -> usize {
        self.ncpus
    }

    /// Benchmark (`mapaudit-bench snapshot`): puts `keys` into the table the
    /// next `drain` empties, with `value` on every CPU, in batches of
    /// `BATCH` (`BPF_MAP_UPDATE_BATCH`), as a full table of that many
    /// tuples would hold them. Returns how many went in; a full table
    /// stops the fill (E2BIG) without error.
    pub fn bench_fill(&mut self, keys: &[WriteKey], value: WriteValue) -> anyhow::Result<usize> {
        let fd = self.tables[self.current as usize].fd().as_fd().as_raw_fd();
        let values = vec![value; BATCH as usize * self.ncpus];
        let mut filled = 0;
        for chunk in keys.chunks(BATCH as usize) {
            let mut attr = [0u64; 16];
            attr[2] = chunk.as_ptr() as u64;
            attr[3] = values.as_ptr() as u64;
            attr[4] = chunk.len() as u64 | (fd as u64) << 32;
            let r = sys_bpf(BPF_MAP_UPDATE_BATCH, &mut attr);
            filled += (attr[4] & 0xffff_ffff) as usize;
            match r {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::E2BIG) => return Ok(filled),
                Err(e) => return Err(e).context("filling a counter table (BPF_MAP_UPDATE_BATCH)"),
            }
        }
        Ok(filled)
    }

    /// Returns after an RCU grace period (see the module doc).
    fn wait_for_programs(&self) -> std::io::Result<()> {
        let key: u32 = 0;
        let value: u32 = self.sync_inner.as_raw_fd() as u32;
        let mut attr = [0u64; 16];
        attr[0] = self.sync_outer.as_raw_fd() as u64;
        attr[1] = &key as *const u32 as u64;
        attr[2] = &value as *const u32 as u64;
        attr[3] = 0; // BPF_ANY
        sys_bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
    }

    fn empty(&mut self, table: usize, out: &mut Vec<(WriteKey, Drained)>) -> anyhow::Result<usize> {
        let fd = self.tables[table].fd().as_fd().as_raw_fd();
        let per_key = self.ncpus;
        self.keys.resize(BATCH as usize, WriteKey::default());
        self.values.resize(BATCH as usize * per_key, WriteValue::default());
        let mut token: u32 = 0;
        let mut first = true;
        let mut total = 0;
        loop {
            let mut next: u32 = 0;
            let mut attr = [0u64; 16];
            attr[0] = if first { 0 } else { &token as *const u32 as u64 };
            attr[1] = &mut next as *mut u32 as u64;
            attr[2] = self.keys.as_mut_ptr() as u64;
            attr[3] = self.values.as_mut_ptr() as u64;
            attr[4] = u64::from(BATCH) | (fd as u64) << 32;
            let r = sys_bpf(BPF_MAP_LOOKUP_AND_DELETE_BATCH, &mut attr);
            let n = (attr[4] & 0xffff_ffff) as usize;
            for (i, k) in self.keys[..n].iter().enumerate() {
                let mut d = Drained::default();
                // `WriteValue` is 24 bytes, a multiple of 8: per-CPU values
                // are packed with no padding between CPUs.
                for v in &self.values[i * per_key..(i + 1) * per_key] {
                    d.count += v.count;
                    if v.maptype != 0 {
                        d.maptype = v.maptype;
                    }
                    if v.gopc != 0 {
                        d.gopc = v.gopc;
                    }
                }
                out.push((*k, d));
            }
            total += n;
            match r {
                Ok(_) => {}
                // The end of the table.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(total),
                Err(e) => return Err(e).context("reading the write counters (BPF_MAP_LOOKUP_AND_DELETE_BATCH)"),
            }
            token = next;
            first = false;
        }
    }
}

fn sys_bpf(cmd: libc::c_long, attr: &mut [u64; 16]) -> std::io::Result<i64> {
    // SAFETY: `attr` is a zero-padded bpf_attr of 128 bytes laid out for
    // `cmd`; every pointer in it outlives the call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), std::mem::size_of_val(attr)) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(r) }
}

fn map_create(map_type: u32, key: u32, value: u32, max: u32, inner: Option<RawFd>) -> std::io::Result<OwnedFd> {
    let mut attr = [0u64; 16];
    attr[0] = u64::from(map_type) | u64::from(key) << 32;
    attr[1] = u64::from(value) | u64::from(max) << 32;
    // map_flags (0), inner_map_fd.
    attr[2] = (inner.unwrap_or(0) as u64) << 32;
    let fd = sys_bpf(BPF_MAP_CREATE, &mut attr)?;
    // SAFETY: BPF_MAP_CREATE returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// The keys of one period's drains, from the drainer thread.
pub struct Batch {
    pub keys: Vec<(WriteKey, Drained)>,
    /// Each table drain in it — a period's own, and those made early when
    /// the active table was half full — as (keys, how long the flip, the
    /// grace period and the reads took).
    pub drains: Vec<(usize, std::time::Duration)>,
    /// The `Drainer::sync` call this batch answers (None: a periodic one).
    pub answers: Option<u64>,
    pub error: Option<String>,
}

/// How often the drainer looks at the active table's fill between periods
/// (one small per-CPU array read).
const POLL: std::time::Duration = std::time::Duration::from_millis(5);

/// What a drain reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The active table (a period's drain).
    Active,
    /// Both tables, waiting for running probes (the final read).
    All,
    /// Both tables, at once: the probes are detached (`drain_detached`).
    Detached,
}

enum Request {
    Drain { id: u64, scope: Scope },
}

/// The counter tables on a thread of their own: a drain waits for an RCU
/// grace period (10–40 ms here), and the loop that resumes processes stopped
/// at exec must never wait behind it. The thread drains every `every` and
/// sends the batches; `sync` asks for a drain now and returns when its batch
/// is in (every batch before it is received first, in order). Between
/// periods it looks at the active table's fill every `POLL` and drains it
/// early once half full, keeping those keys for the period's batch: the
/// model still sees one batch per period (its idle windows count periods),
/// and a table only needs to hold what churn makes in a few polls.
pub struct Drainer {
    requests: std::sync::mpsc::Sender<Request>,
    batches: std::sync::mpsc::Receiver<Batch>,
    next_id: u64,
}

impl Drainer {
    pub fn spawn(mut tables: CounterTables, every: std::time::Duration) -> std::io::Result<Self> {
        let (req_tx, req_rx) = std::sync::mpsc::channel::<Request>();
        let (batch_tx, batch_rx) = std::sync::mpsc::channel::<Batch>();
        std::thread::Builder::new().name("mapaudit-drain".into()).spawn(move || {
            let mut period = std::time::Instant::now();
            let (mut keys, mut drains, mut error) = (Vec::new(), Vec::new(), None);
            loop {
                let wait = POLL.min(every.saturating_sub(period.elapsed()));
                let (answers, scope) = match req_rx.recv_timeout(wait) {
                    Ok(Request::Drain { id, scope }) => (Some(id), scope),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => (None, Scope::Active),
                    // The collector is gone: so is the recording.
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                };
                let due = answers.is_some() || period.elapsed() >= every;
                if !due && !tables.half_full() {
                    continue;
                }
                let t = std::time::Instant::now();
                let before = keys.len();
                let r = match scope {
                    Scope::Active => tables.drain(&mut keys),
                    Scope::All => tables.drain_all(&mut keys),
                    Scope::Detached => tables.drain_detached(&mut keys),
                };
                drains.push((keys.len() - before, t.elapsed()));
                error = error.or(r.err().map(|e| format!("{e:#}")));
                if !due {
                    continue;
                }
                period = std::time::Instant::now();
                let batch = Batch { keys: std::mem::take(&mut keys), drains: std::mem::take(&mut drains), answers, error: error.take() };
                if batch_tx.send(batch).is_err() {
                    return;
                }
            }
        })?;
        Ok(Self { requests: req_tx, batches: batch_rx, next_id: 0 })
    }

    /// The batches drained since the last call, without waiting.
    pub fn pending(&self) -> Vec<Batch> {
        self.batches.try_iter().collect()
    }

    /// Drains now what `scope` says and returns every batch up to and
    /// including that drain's.
    pub fn sync(&mut self, scope: Scope) -> anyhow::Result<Vec<Batch>> {
        self.next_id += 1;
        let id = self.next_id;
        self.requests.send(Request::Drain { id, scope }).map_err(|_| anyhow::anyhow!("the counter drainer thread is gone"))?;
        let mut out = Vec::new();
        loop {
            let b = self.batches.recv().map_err(|_| anyhow::anyhow!("the counter drainer thread is gone"))?;
            let done = b.answers == Some(id);
            out.push(b);
            if done {
                return Ok(out);
            }
        }
    }
}
