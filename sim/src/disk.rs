//! The simulated disk: a `BlockDevice` with a volatile write cache, flush epochs, seeded
//! per-sector crash images and the fault classes of `fault`. Counterpart: TigerBeetle
//! `testing/storage.zig`, FDB `AsyncFileNonDurable`. The engine owns one handle, the run loop
//! another (crash, faults, counters); never used outside a simulation. Invariants: a write is
//! durable only after a good flush drains it or the full cache destages it (oldest first); a
//! crash keeps all durable data plus a seeded subset of cached sectors, in write order; the event
//! log replays (`image_at`) to exactly what `crash` returns for the same choices. Survivable
//! faults and the budget are argued in `fault`; `Profile::Unrestricted` drops the budget.

use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use engine::vdev::{check_range, BlockDevice, VdevError};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::fault::{
    window_of, BudgetLedger, FaultConfig, FaultCounters, SectorRange, RATE_PPM_MAX, SECTOR_SIZE,
};
use crate::overwrite::WriteSerials;

/// Default bound on cached (completed, not yet durable) writes.
pub const CACHE_CAPACITY_WRITES_DEFAULT: usize = 64;
/// Largest cache the disk accepts.
pub const CACHE_CAPACITY_WRITES_MAX: usize = 1 << 16;
/// Most bytes of write data an event recording may hold (it is for short scenarios).
pub const RECORDING_BYTES_MAX: u64 = 1 << 30;

const _: () = assert!(CACHE_CAPACITY_WRITES_DEFAULT <= CACHE_CAPACITY_WRITES_MAX);
const SECTOR_BYTES: usize = SECTOR_SIZE as usize;

/// How a `SimDisk` behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskConfig {
    /// Completed writes the cache holds before it destages the oldest; 0 = write-through.
    pub cache_capacity_writes: usize,
    /// Faults to inject (switchable later with `SimDisk::set_faults`).
    pub faults: FaultConfig,
    /// Record every write, destage, flush and fault from creation (for crash exploration).
    pub record_events: bool,
}

impl Default for DiskConfig {
    fn default() -> Self {
        Self {
            cache_capacity_writes: CACHE_CAPACITY_WRITES_DEFAULT,
            faults: FaultConfig::NONE,
            record_events: false,
        }
    }
}

/// Command counts of a disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiskStats {
    /// Read commands (including failed ones).
    pub reads: u64,
    /// Write commands (including refused, lost and misdirected ones).
    pub writes: u64,
    /// Flush commands (including failed and lying ones).
    pub flushes: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// Bytes acknowledged as written (not counting `NoSpace` refusals).
    pub bytes_written: u64,
    /// Cached writes made durable early because the cache was full.
    pub destages: u64,
    /// Crashes (power losses) of this handle.
    pub crashes: u64,
    /// Faults that fired but were refused by the budget (and so not injected).
    pub budget_denials: u64,
}

/// One recorded fault, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultEvent {
    /// The sector at `offset` turned latent-bad.
    LatentSector {
        /// Byte offset of the sector.
        offset: u64,
    },
    /// The durable byte at `offset` was `XOR`ed with `mask` (silent corruption at rest).
    Corruption {
        /// Byte offset of the damaged byte.
        offset: u64,
        /// Bits flipped.
        mask: u8,
    },
    /// A write meant for `intended` landed at `landed` (a `Write` event at `landed` follows).
    MisdirectedWrite {
        /// Offset the host asked for.
        intended: u64,
        /// Offset the data went to.
        landed: u64,
        /// Length of the write.
        len: u64,
    },
    /// A write was acknowledged and dropped.
    LostWrite {
        /// Offset of the write.
        offset: u64,
        /// Length of the write.
        len: u64,
    },
    /// A flush returned EIO; the cache stayed as it was.
    FlushError,
    /// A flush returned Ok and drained nothing.
    LyingFlush,
    /// A write was refused with ENOSPC.
    NoSpace {
        /// Offset of the write.
        offset: u64,
        /// Length of the write.
        len: u64,
    },
}

/// One recorded disk event. Indices into the log name writes (`keep`, `Destage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskEvent {
    /// A write entered the cache (at the offset where its data really went).
    Write {
        /// Byte offset.
        offset: u64,
        /// The data, shared with the cache.
        data: Arc<[u8]>,
    },
    /// The cache was full: the oldest cached write (the event at index `write`) became durable.
    Destage {
        /// Event index of the destaged `Write`.
        write: usize,
    },
    /// A flush drained every cached write (only good flushes are recorded as `Flush`).
    Flush,
    /// An injected fault.
    Fault(FaultEvent),
}

/// A recording: the durable image when it started and every event since.
#[derive(Debug, Clone, Default)]
pub struct Recording {
    /// The durable image at the start (the cache then is replayed as the first `Write`s).
    pub base_image: Vec<u8>,
    /// Events in order.
    pub events: Vec<DiskEvent>,
}

/// The outcome of a crash: the image and the per-sector choices that made it.
#[derive(Debug, Clone)]
pub struct CrashImage {
    /// The durable image after the power loss.
    pub image: Vec<u8>,
    /// For each write cached at the crash, oldest first, whether each of its sectors was kept.
    pub kept: Vec<Vec<bool>>,
}

/// A cheap-cloneable handle on one simulated disk (every clone sees the same disk).
#[derive(Clone)]
pub struct SimDisk {
    state: Arc<Mutex<DiskState>>,
}

#[derive(Debug)]
struct PendingWrite {
    offset: u64,
    data: Arc<[u8]>,
    /// Event index of its `Write` when recording.
    event: Option<usize>,
    /// A lying flush acknowledged it: the engine may count it durable, so dropping it at a
    /// crash is damage (recorded in the ledger), not a normal loss of cached writes.
    lied: bool,
}

#[derive(Debug)]
struct RecordingState {
    recording: Recording,
    bytes: u64,
}

/// The mutable disk behind the handle.
#[derive(Debug)]
struct DiskState {
    config: DiskConfig,
    durable: Vec<u8>,
    cache: VecDeque<PendingWrite>,
    rng: ChaCha8Rng,
    /// Sectors whose newest write was durable before the last good flush.
    settled: SectorBitmap,
    /// Sectors written since the last good flush (they settle at the next one).
    unsettled: SectorBitmap,
    latent: BTreeSet<u64>,
    ledger: BudgetLedger,
    counters: FaultCounters,
    stats: DiskStats,
    recording: Option<RecordingState>,
    lying_flushes_forced: u64,
    full_threshold_bytes: Option<u64>,
    bytes_since_faults_set: u64,
    serials: WriteSerials,
}

impl SimDisk {
    /// A zeroed disk of `size_bytes` (a positive sector multiple), seeded by `seed`.
    #[must_use]
    pub fn new(size_bytes: u64, config: DiskConfig, seed: u64) -> Self {
        assert!(size_bytes > 0, "empty disk");
        assert_eq!(size_bytes % SECTOR_SIZE, 0, "size {size_bytes:#x} not sector aligned");
        let len = usize::try_from(size_bytes).expect("invariant: disk fits in memory");
        Self::from_state(DiskState::new(vec![0; len], config, seed, false))
    }

    /// A disk holding `image` (e.g. a crash image), with an empty cache and a fresh budget.
    /// Every non-zero sector counts as settled. Latent errors of a former disk are not carried:
    /// to keep them and the budget ledger across a crash, crash the same handle instead.
    #[must_use]
    pub fn from_image(image: Vec<u8>, config: DiskConfig, seed: u64) -> Self {
        assert!(!image.is_empty(), "empty image");
        assert_eq!(image.len() % SECTOR_BYTES, 0, "image not sector aligned");
        Self::from_state(DiskState::new(image, config, seed, true))
    }

    fn from_state(state: DiskState) -> Self {
        Self { state: Arc::new(Mutex::new(state)) }
    }

    fn lock(&self) -> MutexGuard<'_, DiskState> {
        self.state.lock().expect("invariant: disk lock never poisoned")
    }

    /// Power loss: returns the durable image (durable data plus a seeded per-sector subset of
    /// the cached writes, the newest possibly torn) and makes it this disk's state, with an
    /// empty cache. Latent errors and the budget ledger survive. A recording restarts from the
    /// returned image.
    #[must_use]
    pub fn crash(&self) -> Vec<u8> {
        self.crash_detailed().image
    }

    /// As `crash`, also returning the per-sector choices (see `CrashImage`).
    #[must_use]
    pub fn crash_detailed(&self) -> CrashImage {
        let mut st = self.lock();
        let mut rng = st.rng.clone();
        let image = st.crash(&mut rng);
        st.rng = rng;
        image
    }

    /// As `crash_detailed`, with the choices (keep rate, kept sectors, torn write) drawn from
    /// a generator seeded by `seed` instead of the disk's own: the run loop keys each crash to
    /// the operation it follows, so a shrunk operation list keeps its crashes' choices.
    #[must_use]
    pub fn crash_seeded(&self, seed: u64) -> CrashImage {
        self.lock().crash(&mut ChaCha8Rng::seed_from_u64(seed))
    }

    /// The durable image now (what a crash keeping no cached sector would leave).
    #[must_use]
    pub fn durable_image(&self) -> Vec<u8> {
        self.lock().durable.clone()
    }

    /// Replace the fault configuration (e.g. faults off while import is verified). Re-arms
    /// the full-device threshold; the budget ledger and latent sectors stay.
    pub fn set_faults(&self, faults: FaultConfig) {
        self.lock().set_faults(faults);
    }

    /// The current fault configuration.
    #[must_use]
    pub fn faults(&self) -> FaultConfig {
        self.lock().config.faults
    }

    /// Faults injected so far, per class.
    #[must_use]
    pub fn counters(&self) -> FaultCounters {
        self.lock().counters
    }

    /// Command counts.
    #[must_use]
    pub fn stats(&self) -> DiskStats {
        self.lock().stats
    }

    /// Writes now in the volatile cache.
    #[must_use]
    pub fn cached_writes(&self) -> usize {
        self.lock().cache.len()
    }

    /// Sector indices that now return EIO on read.
    #[must_use]
    pub fn latent_sectors(&self) -> Vec<u64> {
        self.lock().latent.iter().copied().collect()
    }

    /// Serial of the newest write so far (see `crate::overwrite`).
    #[must_use]
    pub fn write_serial(&self) -> u64 {
        self.lock().serials.now()
    }

    /// Sectors written after the write with serial `serial`.
    #[must_use]
    pub fn written_since(&self, serial: u64) -> BTreeSet<u64> {
        self.lock().serials.since(serial)
    }

    /// A copy of the budget bookkeeping (window and damaged sectors).
    #[must_use]
    pub fn budget_ledger(&self) -> BudgetLedger {
        self.lock().ledger.clone()
    }

    /// Carry a ledger over (e.g. to a disk made with `from_image` after a crash).
    pub fn set_budget_ledger(&self, ledger: BudgetLedger) {
        self.lock().ledger = ledger;
    }

    /// Test helper: flip the first byte of the durable sector at `offset`, behind the engine's
    /// back and outside the budget (a cached write to it still reads back intact).
    pub fn corrupt_sector(&self, offset: u64) {
        let mut st = self.lock();
        assert_eq!(offset % SECTOR_SIZE, 0, "offset {offset:#x} not sector aligned");
        assert!(offset < st.size_bytes(), "offset {offset:#x} beyond the disk");
        st.corrupt_byte(offset, 0xff);
    }

    /// Test helper: the next flush returns Ok and persists nothing (a lying flush).
    pub fn drop_next_flush(&self) {
        self.lock().lying_flushes_forced += 1;
    }

    /// Start (or restart) recording events; returns the base image of the recording. Writes
    /// still cached become its first `Write` events.
    #[must_use]
    pub fn start_recording(&self) -> Vec<u8> {
        let mut st = self.lock();
        st.start_recording();
        st.recording.as_ref().expect("invariant: just started").recording.base_image.clone()
    }

    /// A copy of the current recording, if recording.
    #[must_use]
    pub fn recording(&self) -> Option<Recording> {
        self.lock().recording.as_ref().map(|r| r.recording.clone())
    }

    /// Stop recording and return what was recorded.
    #[must_use]
    pub fn take_recording(&self) -> Option<Recording> {
        self.lock().recording.take().map(|r| r.recording)
    }
}

impl fmt::Debug for SimDisk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.lock();
        f.debug_struct("SimDisk")
            .field("size_bytes", &st.size_bytes())
            .field("cached_writes", &st.cache.len())
            .field("stats", &st.stats)
            .field("counters", &st.counters)
            .finish_non_exhaustive()
    }
}

/// A read-only view of a `SimDisk` for checkers: reads return what the pool would read
/// (the durable bytes under the cached writes, latent-bad sectors as I/O errors) without
/// drawing from the fault stream, so checking neither injects faults nor shifts the run.
/// Writes and flushes are refused.
#[derive(Debug)]
pub struct QuietView(SimDisk);

impl SimDisk {
    /// The checkers' view of this disk (see `QuietView`).
    #[must_use]
    pub fn quiet_view(&self) -> QuietView {
        QuietView(self.clone())
    }
}

impl BlockDevice for QuietView {
    fn size_bytes(&self) -> u64 {
        self.0.lock().size_bytes()
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), VdevError> {
        let st = self.0.lock();
        check_range(offset, buf.len() as u64, st.size_bytes())?;
        if buf.is_empty() {
            return Ok(());
        }
        st.read_settled(offset, buf)
    }

    fn write(&mut self, offset: u64, _data: &[u8]) -> Result<(), VdevError> {
        Err(VdevError::Io { offset })
    }

    fn flush(&mut self) -> Result<(), VdevError> {
        Err(VdevError::Io { offset: 0 })
    }
}

impl BlockDevice for SimDisk {
    fn size_bytes(&self) -> u64 {
        self.lock().size_bytes()
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), VdevError> {
        self.lock().read(offset, buf)
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), VdevError> {
        self.lock().write(offset, data)
    }

    fn flush(&mut self) -> Result<(), VdevError> {
        self.lock().flush()
    }
}

fn span(offset: u64, len: usize) -> std::ops::Range<usize> {
    let start = usize::try_from(offset).expect("invariant: checked offset fits usize");
    start..start + len
}

/// Copy the part of `data` (written at `data_offset`) that overlaps `buf` (at `buf_offset`).
fn overlay(buf: &mut [u8], buf_offset: u64, data: &[u8], data_offset: u64) {
    let start = buf_offset.max(data_offset);
    let end = (buf_offset + buf.len() as u64).min(data_offset + data.len() as u64);
    if start >= end {
        return;
    }
    let len = usize::try_from(end - start).expect("invariant: overlap fits usize");
    let to = span(start - buf_offset, len);
    let from = span(start - data_offset, len);
    buf[to].copy_from_slice(&data[from]);
}

impl DiskState {
    fn new(durable: Vec<u8>, config: DiskConfig, seed: u64, settle_nonzero: bool) -> Self {
        assert!(config.cache_capacity_writes <= CACHE_CAPACITY_WRITES_MAX);
        let sectors = durable.len() / SECTOR_BYTES;
        let mut settled = SectorBitmap::new(sectors);
        if settle_nonzero {
            for (i, sector) in durable.chunks_exact(SECTOR_BYTES).enumerate() {
                if sector.iter().any(|&b| b != 0) {
                    settled.set(i as u64);
                }
            }
        }
        let mut st = Self {
            config,
            durable,
            cache: VecDeque::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            settled,
            unsettled: SectorBitmap::new(sectors),
            latent: BTreeSet::new(),
            ledger: BudgetLedger::default(),
            counters: FaultCounters::default(),
            stats: DiskStats::default(),
            recording: None,
            lying_flushes_forced: 0,
            full_threshold_bytes: None,
            bytes_since_faults_set: 0,
            serials: WriteSerials::new(sectors),
        };
        st.set_faults(config.faults);
        if config.record_events {
            st.start_recording();
        }
        st
    }

    fn size_bytes(&self) -> u64 {
        self.durable.len() as u64
    }

    fn size_sectors(&self) -> u64 {
        self.size_bytes() / SECTOR_SIZE
    }

    fn set_faults(&mut self, faults: FaultConfig) {
        self.config.faults = faults;
        self.bytes_since_faults_set = 0;
        self.full_threshold_bytes = None;
        let max = faults.full_after_bytes_max;
        if max > 0 {
            let threshold = self.rng.random_range(max / 2..=max);
            assert!(threshold <= max);
            self.full_threshold_bytes = Some(threshold);
        }
    }

    fn record(&mut self, event: DiskEvent) -> Option<usize> {
        let rec = self.recording.as_mut()?;
        if let DiskEvent::Write { data, .. } = &event {
            rec.bytes += data.len() as u64;
            assert!(rec.bytes <= RECORDING_BYTES_MAX, "recording over {RECORDING_BYTES_MAX} B");
        }
        rec.recording.events.push(event);
        Some(rec.recording.events.len() - 1)
    }

    fn start_recording(&mut self) {
        let base_image = self.durable.clone();
        let recording = Recording { base_image, events: Vec::new() };
        self.recording = Some(RecordingState { recording, bytes: 0 });
        for i in 0..self.cache.len() {
            let (offset, data) = (self.cache[i].offset, Arc::clone(&self.cache[i].data));
            self.cache[i].event = self.record(DiskEvent::Write { offset, data });
            assert!(self.cache[i].event.is_some());
        }
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), VdevError> {
        check_range(offset, buf.len() as u64, self.size_bytes())?;
        self.stats.reads += 1;
        self.stats.bytes_read += buf.len() as u64;
        self.corrupt_at_rest_tick();
        if buf.is_empty() {
            return Ok(());
        }
        self.latent_read_tick(SectorRange::of_bytes(offset, buf.len() as u64));
        self.read_settled(offset, buf)
    }

    /// What a read of a checked, non-empty range returns once the faults of the read are
    /// drawn: an I/O error on a latent-bad sector, else the durable bytes under the cache.
    fn read_settled(&self, offset: u64, buf: &mut [u8]) -> Result<(), VdevError> {
        let range = SectorRange::of_bytes(offset, buf.len() as u64);
        if let Some(&bad) = self.latent.range(range.start..range.end()).next() {
            return Err(VdevError::Io { offset: bad * SECTOR_SIZE });
        }
        buf.copy_from_slice(&self.durable[span(offset, buf.len())]);
        for pending in &self.cache {
            overlay(buf, offset, &pending.data, pending.offset);
        }
        Ok(())
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), VdevError> {
        check_range(offset, data.len() as u64, self.size_bytes())?;
        self.stats.writes += 1;
        self.corrupt_at_rest_tick();
        if data.is_empty() {
            return Ok(());
        }
        let len = data.len() as u64;
        if self.full_device_refuses() {
            self.counters.full_device += 1;
            self.record(DiskEvent::Fault(FaultEvent::NoSpace { offset, len }));
            return Err(VdevError::NoSpace { offset });
        }
        self.stats.bytes_written += len;
        self.bytes_since_faults_set += len;
        if self.lost_write_fires(offset, len) {
            return Ok(());
        }
        let landed = self.misdirect(offset, len);
        self.accept(landed, data);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), VdevError> {
        self.stats.flushes += 1;
        self.corrupt_at_rest_tick();
        let faults = self.config.faults;
        if faults.flush_error.fires(&mut self.rng) {
            self.counters.flush_error += 1;
            self.record(DiskEvent::Fault(FaultEvent::FlushError));
            return Err(VdevError::Io { offset: 0 });
        }
        let drawn = faults.lying_flush.fires(&mut self.rng);
        let forced = self.lying_flushes_forced > 0;
        if drawn || forced {
            self.lying_flushes_forced = self.lying_flushes_forced.saturating_sub(1);
            self.counters.lying_flush += 1;
            self.record(DiskEvent::Fault(FaultEvent::LyingFlush));
            for pending in &mut self.cache {
                pending.lied = true;
            }
            return Ok(());
        }
        while let Some(pending) = self.cache.pop_front() {
            self.durable[span(pending.offset, pending.data.len())].copy_from_slice(&pending.data);
        }
        self.settle();
        self.record(DiskEvent::Flush);
        assert!(self.cache.is_empty());
        Ok(())
    }

    /// Everything written since the last good flush is now durable: it becomes settled.
    fn settle(&mut self) {
        assert!(self.cache.is_empty(), "settle with cached writes");
        self.settled.union_with(&self.unsettled);
        self.unsettled.clear_all();
    }

    /// Take a write into the cache, destaging the oldest writes if the cache is full.
    fn accept(&mut self, offset: u64, data: &[u8]) {
        let range = SectorRange::of_bytes(offset, data.len() as u64);
        let cleared: Vec<u64> = self.latent.range(range.start..range.end()).copied().collect();
        for sector in cleared {
            self.latent.remove(&sector);
        }
        self.settled.clear_range(range);
        self.unsettled.set_range(range);
        self.serials.note(range);
        let data: Arc<[u8]> = Arc::from(data);
        let event = self.record(DiskEvent::Write { offset, data: Arc::clone(&data) });
        self.cache.push_back(PendingWrite { offset, data, event, lied: false });
        while self.cache.len() > self.config.cache_capacity_writes {
            self.destage_oldest();
        }
        assert!(self.cache.len() <= self.config.cache_capacity_writes);
    }

    fn destage_oldest(&mut self) {
        let pending = self.cache.pop_front().expect("invariant: destage from a non-empty cache");
        self.durable[span(pending.offset, pending.data.len())].copy_from_slice(&pending.data);
        self.stats.destages += 1;
        if self.recording.is_some() {
            let write = pending.event.expect("invariant: recorded writes carry their index");
            self.record(DiskEvent::Destage { write });
        }
    }

    fn full_device_refuses(&mut self) -> bool {
        let drawn = self.config.faults.full_device.fires(&mut self.rng);
        let over = self.full_threshold_bytes.is_some_and(|t| self.bytes_since_faults_set >= t);
        drawn || over
    }

    fn lost_write_fires(&mut self, offset: u64, len: u64) -> bool {
        if !self.config.faults.lost_write.fires(&mut self.rng) {
            return false;
        }
        if !self.admit(&[SectorRange::of_bytes(offset, len)]) {
            return false;
        }
        self.counters.lost_write += 1;
        self.record(DiskEvent::Fault(FaultEvent::LostWrite { offset, len }));
        true
    }

    /// Where the write really lands: `offset`, or another sector-aligned offset when a
    /// misdirected write fires (inside the damage window when budgeted).
    fn misdirect(&mut self, offset: u64, len: u64) -> u64 {
        if !self.config.faults.misdirected_write.fires(&mut self.rng) {
            return offset;
        }
        let intended = SectorRange::of_bytes(offset, len);
        let area = match &self.config.faults.budget {
            None => SectorRange { start: 0, count: self.size_sectors() },
            Some(b) => {
                self.ledger.window().unwrap_or_else(|| window_of(b, self.size_bytes(), intended))
            }
        };
        let Some(start) = landing_start(area, intended, &mut self.rng) else {
            self.stats.budget_denials += 1;
            return offset;
        };
        let landed = SectorRange { start, count: intended.count };
        if !self.admit(&[intended, landed]) {
            return offset;
        }
        let landed_offset = start * SECTOR_SIZE;
        assert!(landed_offset + len <= self.size_bytes());
        self.counters.misdirected_write += 1;
        let fault = FaultEvent::MisdirectedWrite { intended: offset, landed: landed_offset, len };
        self.record(DiskEvent::Fault(fault));
        landed_offset
    }

    /// Maybe turn one settled sector of a read range latent-bad.
    fn latent_read_tick(&mut self, range: SectorRange) {
        if !self.config.faults.latent_read.fires(&mut self.rng) {
            return;
        }
        let sector = self.rng.random_range(range.start..range.end());
        if !self.settled.get(sector) || self.latent.contains(&sector) {
            return;
        }
        if !self.admit(&[SectorRange { start: sector, count: 1 }]) {
            return;
        }
        self.latent.insert(sector);
        self.counters.latent_read += 1;
        let offset = sector * SECTOR_SIZE;
        self.record(DiskEvent::Fault(FaultEvent::LatentSector { offset }));
    }

    /// Maybe flip one bit of a settled sector (inside the damage window once it is fixed).
    fn corrupt_at_rest_tick(&mut self) {
        if !self.config.faults.corrupt_at_rest.fires(&mut self.rng) {
            return;
        }
        let whole = SectorRange { start: 0, count: self.size_sectors() };
        let area = match self.config.faults.budget {
            None => whole,
            Some(_) => self.ledger.window().unwrap_or(whole),
        };
        let probe = self.rng.random_range(area.start..area.end());
        let byte = self.rng.random_range(0..SECTOR_SIZE);
        let bit = self.rng.random_range(0..8u32);
        let Some(sector) = self.settled.next_set_in(area, probe) else {
            return;
        };
        assert!(self.settled.get(sector));
        if !self.admit(&[SectorRange { start: sector, count: 1 }]) {
            return;
        }
        self.corrupt_byte(sector * SECTOR_SIZE + byte, 1 << bit);
    }

    fn corrupt_byte(&mut self, offset: u64, mask: u8) {
        assert!(mask != 0, "corruption flips nothing");
        let index = usize::try_from(offset).expect("invariant: offset fits usize");
        self.durable[index] ^= mask;
        self.counters.corrupt_at_rest += 1;
        self.record(DiskEvent::Fault(FaultEvent::Corruption { offset, mask }));
    }

    fn admit(&mut self, ranges: &[SectorRange]) -> bool {
        let size = self.size_bytes();
        let admitted = self.ledger.admit(self.config.faults.budget.as_ref(), size, ranges);
        if !admitted {
            self.stats.budget_denials += 1;
        }
        admitted
    }

    /// Power loss (see `SimDisk::crash`).
    fn crash(&mut self, rng: &mut ChaCha8Rng) -> CrashImage {
        let kept = self.crash_choices(rng);
        let mut image = std::mem::take(&mut self.durable);
        for (pending, keep) in self.cache.iter().zip(&kept) {
            apply_kept(&mut image, pending.offset, &pending.data, keep);
            if pending.lied {
                let first = pending.offset / SECTOR_SIZE;
                let dropped = keep.iter().enumerate().filter(|(_, k)| !**k);
                self.ledger.record(dropped.map(|(i, _)| first + i as u64));
            }
        }
        self.cache.clear();
        self.durable.clone_from(&image);
        self.settle();
        self.stats.crashes += 1;
        if self.recording.is_some() {
            self.start_recording();
        }
        assert_eq!(image.len(), self.durable.len());
        CrashImage { image, kept }
    }

    /// Per-sector keep choices for the cached writes: one keep rate drawn per crash, one draw
    /// per sector, and maybe a torn newest write (a prefix kept, the rest dropped).
    fn crash_choices(&mut self, rng: &mut ChaCha8Rng) -> Vec<Vec<bool>> {
        let keep_ppm = rng.random_range(0..=RATE_PPM_MAX);
        let mut kept: Vec<Vec<bool>> = Vec::with_capacity(self.cache.len());
        for pending in &self.cache {
            let sectors = pending.data.len() / SECTOR_BYTES;
            let keep = (0..sectors).map(|_| rng.random_range(0..RATE_PPM_MAX) < keep_ppm);
            kept.push(keep.collect());
        }
        if let Some(newest) = kept.last_mut() {
            if self.config.faults.torn_write.fires(rng) {
                let prefix = rng.random_range(0..newest.len());
                for (i, keep) in newest.iter_mut().enumerate() {
                    *keep = i < prefix;
                }
                self.counters.torn_write += 1;
            }
        }
        assert_eq!(kept.len(), self.cache.len());
        kept
    }
}

/// A start sector for a misdirected copy of `intended` inside `area` that does not overlap
/// `intended` (overlap would give the intended location part of the new data), drawn
/// uniformly; `None` when there is no such place.
fn landing_start(area: SectorRange, intended: SectorRange, rng: &mut ChaCha8Rng) -> Option<u64> {
    let count = intended.count;
    let last = area.end().checked_sub(count).filter(|&last| last >= area.start)?;
    // Starts in [area.start, before] end at or before the intended range.
    let left = match intended.start.checked_sub(count) {
        Some(before) if before >= area.start => before.min(last) - area.start + 1,
        _ => 0,
    };
    // Starts in [after, last] begin at or after its end.
    let after = intended.end().max(area.start);
    let right = if last >= after { last - after + 1 } else { 0 };
    if left + right == 0 {
        return None;
    }
    let pick = rng.random_range(0..left + right);
    let start = if pick < left { area.start + pick } else { after + pick - left };
    assert!(start + count <= intended.start || start >= intended.end(), "overlap at {start}");
    assert!(start >= area.start && start + count <= area.end(), "{start} outside {area:?}");
    Some(start)
}

/// Apply the kept sectors of one cached write to an image.
fn apply_kept(image: &mut [u8], offset: u64, data: &[u8], keep: &[bool]) {
    assert_eq!(data.len(), keep.len() * SECTOR_BYTES, "choices do not match the write");
    for (i, sector) in data.chunks_exact(SECTOR_BYTES).enumerate() {
        if keep[i] {
            let at = offset + (i * SECTOR_BYTES) as u64;
            image[span(at, SECTOR_BYTES)].copy_from_slice(sector);
        }
    }
}

/// A set of sectors as bits.
#[derive(Debug, Clone)]
struct SectorBitmap {
    words: Vec<u64>,
    sectors: u64,
}

impl SectorBitmap {
    fn new(sectors: usize) -> Self {
        Self { words: vec![0; sectors.div_ceil(64)], sectors: sectors as u64 }
    }

    fn word(sector: u64) -> (usize, u64) {
        let index = usize::try_from(sector / 64).expect("invariant: sector index fits usize");
        (index, 1 << (sector % 64))
    }

    fn get(&self, sector: u64) -> bool {
        assert!(sector < self.sectors, "sector {sector} beyond {}", self.sectors);
        let (i, bit) = Self::word(sector);
        self.words[i] & bit != 0
    }

    fn set(&mut self, sector: u64) {
        assert!(sector < self.sectors, "sector {sector} beyond {}", self.sectors);
        let (i, bit) = Self::word(sector);
        self.words[i] |= bit;
    }

    fn set_range(&mut self, range: SectorRange) {
        for sector in range.start..range.end() {
            self.set(sector);
        }
    }

    fn clear_range(&mut self, range: SectorRange) {
        assert!(range.end() <= self.sectors, "range {range:?} beyond {}", self.sectors);
        for sector in range.start..range.end() {
            let (i, bit) = Self::word(sector);
            self.words[i] &= !bit;
        }
    }

    fn clear_all(&mut self) {
        self.words.fill(0);
    }

    fn union_with(&mut self, other: &Self) {
        assert_eq!(self.sectors, other.sectors);
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= *b;
        }
    }

    /// The first set sector of `area` at or after `probe`, wrapping to the area's start.
    fn next_set_in(&self, area: SectorRange, probe: u64) -> Option<u64> {
        assert!(area.end() <= self.sectors, "area {area:?} beyond {}", self.sectors);
        assert!(probe >= area.start && probe < area.end(), "probe {probe} outside {area:?}");
        let scan = |from: u64, to: u64| {
            let mut sector = from;
            while sector < to {
                let (i, _) = Self::word(sector);
                if self.words[i] == 0 {
                    sector = (sector / 64 + 1) * 64;
                } else if self.get(sector) {
                    return Some(sector);
                } else {
                    sector += 1;
                }
            }
            None
        };
        scan(probe, area.end()).or_else(|| scan(area.start, probe))
    }
}

/// Incremental replay of a recording, for crash-state exploration: walks the events forward
/// keeping the durable image and the cached writes, so that each crash point costs one image
/// copy plus its cached writes (never a replay from the start).
#[derive(Debug, Clone)]
pub struct Replayer<'a> {
    events: &'a [DiskEvent],
    durable: Vec<u8>,
    cached: VecDeque<usize>,
    next: usize,
}

impl<'a> Replayer<'a> {
    /// A replay of `events` starting from `base_image` (the recording's base).
    #[must_use]
    pub fn new(base_image: Vec<u8>, events: &'a [DiskEvent]) -> Self {
        assert_eq!(base_image.len() % SECTOR_BYTES, 0, "base image not sector aligned");
        Self { events, durable: base_image, cached: VecDeque::new(), next: 0 }
    }

    /// Apply every event up to and including `crash_after` (crash points must not go back).
    pub fn advance_to(&mut self, crash_after: usize) {
        assert!(crash_after < self.events.len(), "crash point {crash_after} beyond the log");
        assert!(crash_after + 1 >= self.next, "crash point {crash_after} already passed");
        while self.next <= crash_after {
            replay_step(self.events, self.next, &mut self.cached, Some(&mut self.durable));
            self.next += 1;
        }
    }

    /// Event indices of the writes cached at the current point, oldest first.
    #[must_use]
    pub fn cached_writes(&self) -> Vec<usize> {
        self.cached.iter().copied().collect()
    }

    /// The durable image at the current point (no cached sector kept).
    #[must_use]
    pub fn durable_image(&self) -> &[u8] {
        &self.durable
    }

    /// The image if power failed now: durable data plus the cached sectors `keep` selects
    /// (`keep(write_event_index, sector_index_within_write)`), applied in write order.
    #[must_use]
    pub fn image(&self, keep: &dyn Fn(usize, usize) -> bool) -> Vec<u8> {
        let mut image = self.durable.clone();
        for &write in &self.cached {
            let DiskEvent::Write { offset, data } = &self.events[write] else {
                panic!("invariant: cached event {write} is a write");
            };
            let choices: Vec<bool> =
                (0..data.len() / SECTOR_BYTES).map(|s| keep(write, s)).collect();
            apply_kept(&mut image, *offset, data, &choices);
        }
        image
    }
}

/// Apply event `index` to the cached list and (when given) the durable image.
fn replay_step(
    events: &[DiskEvent],
    index: usize,
    cached: &mut VecDeque<usize>,
    mut durable: Option<&mut Vec<u8>>,
) {
    assert!(index < events.len(), "event {index} beyond the log");
    match &events[index] {
        DiskEvent::Write { .. } => cached.push_back(index),
        DiskEvent::Destage { write } => {
            let oldest = cached.pop_front().expect("invariant: destage from a non-empty cache");
            assert_eq!(oldest, *write, "destage out of order");
            replay_durable(events, oldest, durable);
        }
        DiskEvent::Flush => {
            while let Some(write) = cached.pop_front() {
                replay_durable(events, write, durable.as_deref_mut());
            }
        }
        DiskEvent::Fault(FaultEvent::Corruption { offset, mask }) => {
            if let Some(image) = durable {
                let at = usize::try_from(*offset).expect("invariant: offset fits usize");
                image[at] ^= mask;
            }
        }
        DiskEvent::Fault(_) => {}
    }
}

/// Make the write at event `write` durable in `durable` (when replaying images).
fn replay_durable(events: &[DiskEvent], write: usize, durable: Option<&mut Vec<u8>>) {
    let DiskEvent::Write { offset, data } = &events[write] else {
        panic!("invariant: event {write} is a write");
    };
    if let Some(image) = durable {
        assert!(image.len() as u64 >= offset + data.len() as u64, "write beyond the image");
        image[span(*offset, data.len())].copy_from_slice(data);
    }
}

/// The durable image if power failed right after event `crash_after` of a recording whose base
/// is `base_image`: every write drained by a flush (or destaged) by then is durable; the writes
/// still cached are kept per sector as `keep(write_event_index, sector_index)` says. O(events
/// up to the crash point + one image copy); use `Replayer` to walk many crash points.
#[must_use]
pub fn image_at(
    base_image: &[u8],
    events: &[DiskEvent],
    crash_after: usize,
    keep: &dyn Fn(usize, usize) -> bool,
) -> Vec<u8> {
    let mut replayer = Replayer::new(base_image.to_vec(), events);
    replayer.advance_to(crash_after);
    replayer.image(keep)
}

/// Event indices of the writes still cached right after event `crash_after`, oldest first:
/// the writes whose sectors a crash there may keep or drop.
#[must_use]
pub fn cached_writes_at(events: &[DiskEvent], crash_after: usize) -> Vec<usize> {
    assert!(crash_after < events.len(), "crash point {crash_after} beyond the log");
    let mut cached = VecDeque::new();
    for index in 0..=crash_after {
        replay_step(events, index, &mut cached, None);
    }
    cached.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmap_finds_next_set_with_wrap() {
        let mut map = SectorBitmap::new(300);
        let all = SectorRange { start: 0, count: 300 };
        assert_eq!(map.next_set_in(all, 10), None);
        map.set(5);
        map.set(200);
        assert_eq!(map.next_set_in(all, 10), Some(200));
        assert_eq!(map.next_set_in(all, 201), Some(5));
        let window = SectorRange { start: 64, count: 128 };
        assert_eq!(map.next_set_in(window, 64), None);
        map.clear_range(SectorRange { start: 200, count: 1 });
        assert!(!map.get(200));
    }

    #[test]
    fn landing_start_never_overlaps_and_reaches_every_place() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let area = SectorRange { start: 8, count: 16 };
        for start in 0..30 {
            for count in 1..6 {
                let intended = SectorRange { start, count };
                let mut seen = BTreeSet::new();
                for _ in 0..400 {
                    if let Some(s) = landing_start(area, intended, &mut rng) {
                        seen.insert(s);
                    }
                }
                let expected: BTreeSet<u64> = (area.start..=area.end() - count)
                    .filter(|&s| s + count <= start || s >= start + count)
                    .collect();
                assert_eq!(seen, expected, "intended {intended:?}");
            }
        }
        let tiny = SectorRange { start: 0, count: 2 };
        assert_eq!(landing_start(tiny, SectorRange { start: 0, count: 3 }, &mut rng), None);
    }

    #[test]
    fn overlay_copies_only_the_overlap() {
        let mut buf = vec![0u8; 1024];
        overlay(&mut buf, 512, &[7u8; 1024], 1024);
        assert!(buf[..512].iter().all(|&b| b == 0));
        assert!(buf[512..].iter().all(|&b| b == 7));
        overlay(&mut buf, 512, &[9u8; 512], 0);
        assert!(buf[..512].iter().all(|&b| b == 0), "disjoint write touched the buffer");
    }
}
