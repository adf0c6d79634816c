//! The seeded schedule of one simulation: per-run timing (clients, think-time means, soft dirty
//! limit) drawn once, and per-op choices keyed to the operation they belong to (`OpKey`, its
//! index in the list `run::ops_for` generated): the think time after it, whether a power cut
//! follows it and how, and that cut's disk choices. A keyed choice draws from a generator
//! seeded by (sub-seed, key, purpose), never from a stream consumed in run order, so removing
//! operations (`zsim shrink`) keeps the rest of the schedule (issue 10). Called by run.rs and
//! backup.rs. Still drawn in run order: the sync task's flush latencies, madsim's choice among
//! tasks ready at one instant, and the disk's own faults (faults, unrestricted profiles).

use std::time::Duration;

use oracle::op::Op;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::run::mix;

/// An operation's key: its index in the list its seed generated. Unique and increasing along
/// any list `run_ops` runs (a shrunk list keeps a subsequence).
pub type OpKey = u32;

/// An operation with its key.
pub type KeyedOp = (OpKey, Op);

/// The key of the final crash after the last operation (no operation has it).
pub const FINAL_CRASH_KEY: OpKey = OpKey::MAX;

/// Client tasks per run, drawn in this range.
pub const CLIENTS_MIN: usize = 2;
/// Most client tasks per run.
pub const CLIENTS_MAX: usize = 4;
/// A client's mean think time between operations, drawn per client in this range (ms).
pub const THINK_MEAN_MS_MIN: u64 = 10;
/// Longest mean think time (ms).
pub const THINK_MEAN_MS_MAX: u64 = 100;
/// The sync task quiesces once the open txg holds this many dirty bytes, drawn per run in
/// [min, max] (ZFS's zfs_dirty_data_sync: well below the hard limit).
pub const DIRTY_SYNC_BYTES_MIN: u64 = 8 << 10;
/// Largest soft dirty limit.
pub const DIRTY_SYNC_BYTES_MAX: u64 = 512 << 10;
/// Mean crashes per seed in crashing profiles (plus a final one): each generated operation is
/// followed by one with probability `CRASHES_PER_SEED_MEAN / ops_per_seed`.
pub const CRASHES_PER_SEED_MEAN: u64 = 4;
/// Share of crashes (percent) that wait for a sync in progress and cut into it.
pub const MID_SYNC_CRASH_PCT: u32 = 50;
/// Longest wait of such a crash for a sync to start.
pub const MID_SYNC_WAIT_MAX: Duration = Duration::from_secs(2);
/// Longest cut into a sync after it started (the longest flush latency).
pub const MID_SYNC_INTO_US_MAX: u64 = 40_000;
/// Probabilities in parts per million.
const PPM: u64 = 1_000_000;

const _: () = assert!(CLIENTS_MIN >= 1 && CLIENTS_MIN <= CLIENTS_MAX);
const _: () = assert!(THINK_MEAN_MS_MIN >= 1 && THINK_MEAN_MS_MIN <= THINK_MEAN_MS_MAX);
const _: () = assert!(DIRTY_SYNC_BYTES_MIN <= DIRTY_SYNC_BYTES_MAX);
const _: () = assert!(MID_SYNC_CRASH_PCT <= 100);
const _: () = assert!(CRASHES_PER_SEED_MEAN >= 1);

/// What a keyed generator is for: one purpose, one stream per key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Purpose {
    /// The think time of the client that ran the op, before it takes the next one.
    Think = 1,
    /// Whether a crash follows the op, and how.
    Crash = 2,
    /// The crash's disk choices (kept sectors, torn write).
    CrashDisk = 3,
    /// The backup pool's choices around a remote receive.
    Backup = 4,
}

/// The seed of the generator for (`seed`, `key`, `purpose`).
#[must_use]
pub fn key_seed(seed: u64, key: OpKey, purpose: Purpose) -> u64 {
    mix(mix(seed ^ (purpose as u64).rotate_right(8)) ^ u64::from(key))
}

/// The generator for (`seed`, `key`, `purpose`).
#[must_use]
pub fn key_rng(seed: u64, key: OpKey, purpose: Purpose) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(key_seed(seed, key, purpose))
}

/// `ops` keyed by their index (a generated list).
///
/// # Panics
/// If the list has more than `OpKey::MAX` operations.
#[must_use]
pub fn keyed(ops: Vec<Op>) -> Vec<KeyedOp> {
    assert!(ops.len() < FINAL_CRASH_KEY as usize, "{} ops", ops.len());
    (0..).zip(ops).collect()
}

/// A power cut after an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrashPlan {
    /// The operation it follows (`FINAL_CRASH_KEY`: the end of the run).
    pub key: OpKey,
    /// Wait (at most `MID_SYNC_WAIT_MAX`) for a sync to start, then cut `into` it.
    pub mid_sync: Option<Duration>,
    /// Seed of the disk's choices (`SimDisk::crash_seeded`).
    pub disk_seed: u64,
}

/// Timing of one run, drawn from the timing sub-seed in a fixed order, and the keyed choices.
pub struct Timing {
    /// Mean think time of each client.
    pub think_mean_ms: Vec<u64>,
    /// Think time of each client before its first operation.
    pub first_think_ms: Vec<u64>,
    /// The sync task's soft dirty limit.
    pub dirty_sync_bytes: u64,
    /// Seed of the sync task's latency generator.
    pub sync_seed: u64,
    /// Base of the keyed think times.
    think_seed: u64,
    /// Base of the keyed crash choices (crashing profiles), and the crash chance per op.
    crash_seed: u64,
    crash_ppm: u64,
}

impl Timing {
    /// Draw the timing of a run: `timing` and `crash` are its sub-seeds, `ops_generated` the
    /// length of the list its seed generated (not of a shrunk one: the chances must not move).
    #[must_use]
    pub fn draw(timing: u64, crash: u64, ops_generated: usize) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(timing);
        let clients = rng.random_range(CLIENTS_MIN..=CLIENTS_MAX);
        let think_mean_ms: Vec<u64> =
            (0..clients).map(|_| rng.random_range(THINK_MEAN_MS_MIN..=THINK_MEAN_MS_MAX)).collect();
        let first_think_ms: Vec<u64> =
            think_mean_ms.iter().map(|&m| rng.random_range(1..=2 * m)).collect();
        let shift_min = DIRTY_SYNC_BYTES_MIN.trailing_zeros();
        let shift = rng.random_range(shift_min..=DIRTY_SYNC_BYTES_MAX.trailing_zeros());
        let dirty_sync_bytes = (1u64 << shift).clamp(DIRTY_SYNC_BYTES_MIN, DIRTY_SYNC_BYTES_MAX);
        let sync_seed = rng.random();
        let think_seed = rng.random();
        let crash_ppm = (CRASHES_PER_SEED_MEAN * PPM / ops_generated.max(1) as u64).min(PPM);
        assert_eq!(think_mean_ms.len(), first_think_ms.len());
        assert!(crash_ppm > 0, "{ops_generated} ops");
        Self {
            think_mean_ms,
            first_think_ms,
            dirty_sync_bytes,
            sync_seed,
            think_seed,
            crash_seed: crash,
            crash_ppm,
        }
    }

    /// How long client `client` thinks after running the op keyed `key`.
    #[must_use]
    pub fn think_after(&self, client: usize, key: OpKey) -> Duration {
        let mean = self.think_mean_ms[client];
        let ms = key_rng(self.think_seed, key, Purpose::Think).random_range(1..=2 * mean);
        assert!(ms >= 1, "{ms} ms");
        assert!(ms <= 2 * THINK_MEAN_MS_MAX, "{ms} ms");
        Duration::from_millis(ms)
    }

    /// The crash after the op keyed `key`, if one follows it (crashing profiles only).
    #[must_use]
    pub fn crash_after(&self, key: OpKey) -> Option<CrashPlan> {
        assert_ne!(key, FINAL_CRASH_KEY, "the final crash always happens");
        let mut rng = key_rng(self.crash_seed, key, Purpose::Crash);
        if rng.random_range(0..PPM) >= self.crash_ppm {
            return None;
        }
        let mid = rng.random_range(0..100) < MID_SYNC_CRASH_PCT;
        let into = Duration::from_micros(rng.random_range(0..=MID_SYNC_INTO_US_MAX));
        Some(CrashPlan { key, mid_sync: mid.then_some(into), disk_seed: self.disk_seed(key) })
    }

    /// The final crash after the last op.
    #[must_use]
    pub fn final_crash(&self) -> CrashPlan {
        let key = FINAL_CRASH_KEY;
        CrashPlan { key, mid_sync: None, disk_seed: self.disk_seed(key) }
    }

    fn disk_seed(&self, key: OpKey) -> u64 {
        key_seed(self.crash_seed, key, Purpose::CrashDisk)
    }
}

#[cfg(test)]
mod tests {
    use super::{keyed, Timing, CRASHES_PER_SEED_MEAN, FINAL_CRASH_KEY};
    use oracle::op::Op;

    #[test]
    fn keyed_choices_do_not_depend_on_other_ops() {
        let t = Timing::draw(1, 2, 120);
        let u = Timing::draw(1, 2, 120);
        let plans: Vec<_> = (0..120).filter_map(|k| t.crash_after(k)).collect();
        let again: Vec<_> = (0..120).rev().filter_map(|k| u.crash_after(k)).collect();
        assert_eq!(plans.len(), again.len());
        assert!(plans.iter().all(|p| again.contains(p)), "order of draws changed a plan");
        assert_eq!(t.think_after(0, 7), u.think_after(0, 7));
        assert_ne!(t.final_crash().disk_seed, plans.first().map_or(0, |p| p.disk_seed));
    }

    #[test]
    fn crashes_per_seed_stay_near_the_mean() {
        let seeds = 200u64;
        let crashes: usize = (0..seeds)
            .map(|s| {
                let t = Timing::draw(s, s ^ 0xabc, 120);
                (0..120).filter(|&k| t.crash_after(k).is_some()).count()
            })
            .sum();
        let mean = crashes as f64 / seeds as f64;
        let want = CRASHES_PER_SEED_MEAN as f64;
        assert!((mean - want).abs() < 1.0, "{mean} crashes per seed, want about {want}");
    }

    #[test]
    fn keys_are_list_indexes() {
        let ops = keyed(vec![Op::Sync, Op::Sync, Op::Sync]);
        let keys: Vec<u32> = ops.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, [0, 1, 2]);
        assert!(keys.iter().all(|&k| k != FINAL_CRASH_KEY));
    }
}
