//! Fault configuration of the simulated disk: per-class switches and rates, the five profiles,
//! the damage budget and the per-class counters. Counterpart: TigerBeetle `storage.zig`
//! (fault zones), FDB's `canKillProcesses`. Read by `disk` (which injects); never touches data.
//! Budget rule (bounded profiles): at most `damaged_sectors_max` distinct damaged sectors per
//! run, all inside ONE aligned damage window (device size >> `window_shift`), fixed by the first
//! damage; corruption and latent errors hit only settled sectors (durable before the last flush).
//! Survivable because ditto copies lie >= `window + SPA_MAXBLOCKSIZE` apart, so one window never
//! holds both copies of a block; transient flush/ENOSPC errors only suspend the pool.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use engine::limits::{SPA_MAXBLOCKSIZE, SPA_MINBLOCKSIZE};
use rand::{Rng, RngExt};

/// Bytes of one simulated sector: the unit of crash choices and of damage.
pub const SECTOR_SIZE: u64 = SPA_MINBLOCKSIZE;
/// Denominator of every fault rate: rates are parts per million of the draws of their class.
pub const RATE_PPM_MAX: u32 = 1_000_000;
/// Default budget: damaged sectors per run (two 128 KiB blocks' worth).
pub const DAMAGED_SECTORS_MAX_DEFAULT: u64 = 2 * SPA_MAXBLOCKSIZE / SECTOR_SIZE;
/// Default budget: the damage window is 1/16 of the device.
pub const WINDOW_SHIFT_DEFAULT: u32 = 4;
/// Largest window shift accepted (a window of 1/2^20 of the device).
pub const WINDOW_SHIFT_MAX: u32 = 20;

const _: () = assert!(SECTOR_SIZE == 512);
const _: () = assert!(DAMAGED_SECTORS_MAX_DEFAULT * SECTOR_SIZE >= SPA_MAXBLOCKSIZE);
const _: () = assert!(WINDOW_SHIFT_DEFAULT >= 1 && WINDOW_SHIFT_DEFAULT <= WINDOW_SHIFT_MAX);

/// One fault class: a switch and a rate in parts per million of the class's draws.
///
/// A disabled class draws nothing from the disk's random stream; an enabled one draws exactly
/// once per opportunity (per read, write, flush, command or crash, as its class says).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FaultSwitch {
    /// Whether the class may fire at all.
    pub enabled: bool,
    /// Probability per opportunity, in parts per million (`RATE_PPM_MAX` = always).
    pub rate_ppm: u32,
}

impl FaultSwitch {
    /// A class that never fires and never draws.
    pub const OFF: Self = Self { enabled: false, rate_ppm: 0 };
    /// A class that fires at every opportunity.
    pub const ALWAYS: Self = Self { enabled: true, rate_ppm: RATE_PPM_MAX };

    /// An enabled class firing with probability `rate_ppm` / 1e6.
    #[must_use]
    pub const fn on(rate_ppm: u32) -> Self {
        assert!(rate_ppm <= RATE_PPM_MAX, "rate above one million ppm");
        Self { enabled: true, rate_ppm }
    }

    /// Draw once (if enabled) and say whether the fault fires now.
    pub fn fires<R: Rng + ?Sized>(&self, rng: &mut R) -> bool {
        assert!(self.rate_ppm <= RATE_PPM_MAX, "rate {} ppm", self.rate_ppm);
        if !self.enabled {
            return false;
        }
        let draw: u32 = rng.random_range(0..RATE_PPM_MAX);
        draw < self.rate_ppm
    }
}

/// Which faults the disk injects, and the budget that bounds the damaging ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultConfig {
    /// Latent sector error, drawn per read: one settled sector of the read range turns bad and
    /// returns EIO until it is rewritten (a write accepted to it clears it).
    pub latent_read: FaultSwitch,
    /// Silent corruption at rest, drawn per device command: one bit of a settled sector flips.
    pub corrupt_at_rest: FaultSwitch,
    /// Misdirected write, drawn per write: the data lands at another sector-aligned offset
    /// (inside the damage window when budgeted); the intended location keeps its old data.
    pub misdirected_write: FaultSwitch,
    /// Lost write, drawn per write: `write` returns Ok but the data never enters the cache, so
    /// a read right after returns the old data.
    pub lost_write: FaultSwitch,
    /// Flush error, drawn per flush: `flush` returns `Io`; cached writes stay cached.
    pub flush_error: FaultSwitch,
    /// Lying flush, drawn per flush: `flush` returns Ok but drains nothing.
    pub lying_flush: FaultSwitch,
    /// Full device, drawn per write: the write fails with `NoSpace` and changes nothing.
    pub full_device: FaultSwitch,
    /// Full device by threshold: when non-zero, a threshold is drawn in
    /// `[max / 2, max]` bytes; once the bytes written since `set_faults` pass it, every write
    /// fails with `NoSpace` (until the next `set_faults`).
    pub full_after_bytes_max: u64,
    /// Torn write, drawn per crash: the newest cached write keeps only a prefix of its
    /// sectors (the others follow the per-sector crash choice).
    pub torn_write: FaultSwitch,
    /// Bound on damage; `None` (the unrestricted profile) injects without limit.
    pub budget: Option<FaultBudget>,
}

impl FaultConfig {
    /// No fault at all (crashes still drop unflushed sectors: that is the cache, not a fault).
    pub const NONE: Self = Self {
        latent_read: FaultSwitch::OFF,
        corrupt_at_rest: FaultSwitch::OFF,
        misdirected_write: FaultSwitch::OFF,
        lost_write: FaultSwitch::OFF,
        flush_error: FaultSwitch::OFF,
        lying_flush: FaultSwitch::OFF,
        full_device: FaultSwitch::OFF,
        full_after_bytes_max: 0,
        torn_write: FaultSwitch::OFF,
        budget: Some(FaultBudget::DEFAULT),
    };

    /// True when no class can fire (torn writes aside, which need a crash).
    #[must_use]
    pub fn is_quiet(&self) -> bool {
        let switches = [
            self.latent_read,
            self.corrupt_at_rest,
            self.misdirected_write,
            self.lost_write,
            self.flush_error,
            self.lying_flush,
            self.full_device,
        ];
        switches.iter().all(|s| !s.enabled) && self.full_after_bytes_max == 0
    }
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self::NONE
    }
}

/// The damage budget of the bounded profiles (see the file header for the rule and why).
///
/// Damage is: a latent sector error, a corrupted sector, the intended range of a lost or
/// misdirected write (it keeps stale data) and the landing range of a misdirected write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultBudget {
    /// Most distinct sectors damaged per run (per `SimDisk`, across crashes on one handle).
    pub damaged_sectors_max: u64,
    /// The damage window is `size_bytes >> window_shift` bytes (rounded down to sectors),
    /// aligned to its own size; every damaged sector of a run lies in one window.
    pub window_shift: u32,
}

impl FaultBudget {
    /// `DAMAGED_SECTORS_MAX_DEFAULT` sectors inside one window of 1/16 of the device.
    pub const DEFAULT: Self = Self {
        damaged_sectors_max: DAMAGED_SECTORS_MAX_DEFAULT,
        window_shift: WINDOW_SHIFT_DEFAULT,
    };

    /// Size of the damage window, in sectors, on a device of `size_bytes`.
    #[must_use]
    pub fn window_sectors(&self, size_bytes: u64) -> u64 {
        assert!(self.window_shift <= WINDOW_SHIFT_MAX, "window_shift {}", self.window_shift);
        assert_eq!(size_bytes % SECTOR_SIZE, 0, "device size not sector aligned");
        ((size_bytes >> self.window_shift) / SECTOR_SIZE).max(1)
    }
}

impl Default for FaultBudget {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A run of whole sectors: `start` (sector index) and `count` sectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SectorRange {
    /// First sector index.
    pub start: u64,
    /// Number of sectors, at least one.
    pub count: u64,
}

impl SectorRange {
    /// The sectors of a byte request (`offset` and `len` sector multiples, `len` > 0).
    #[must_use]
    pub fn of_bytes(offset: u64, len: u64) -> Self {
        assert_eq!(offset % SECTOR_SIZE, 0, "offset {offset:#x} not aligned");
        assert!(len > 0, "empty sector range at {offset:#x}");
        assert_eq!(len % SECTOR_SIZE, 0, "length {len:#x} not whole sectors");
        Self { start: offset / SECTOR_SIZE, count: len / SECTOR_SIZE }
    }

    /// One past the last sector.
    #[must_use]
    pub fn end(&self) -> u64 {
        self.start + self.count
    }
}

/// The budget's bookkeeping for one disk: the window in use and the damaged sectors.
#[derive(Debug, Clone, Default)]
pub struct BudgetLedger {
    window: Option<SectorRange>,
    damaged: BTreeSet<u64>,
}

impl BudgetLedger {
    /// Admit damage to `ranges` under `budget` on a device of `size_bytes`, or refuse it.
    /// On admission the sectors are recorded (and the first admission fixes the window).
    /// With no budget every damage is admitted and nothing is recorded.
    pub fn admit(
        &mut self,
        budget: Option<&FaultBudget>,
        size_bytes: u64,
        ranges: &[SectorRange],
    ) -> bool {
        assert!(!ranges.is_empty(), "admit without ranges");
        let Some(budget) = budget else {
            // No budget: every damage is admitted, and recorded for the integrity walk.
            self.damaged.extend(ranges.iter().flat_map(|r| r.start..r.end()));
            return true;
        };
        let window = self.window.unwrap_or_else(|| window_of(budget, size_bytes, ranges[0]));
        let inside = ranges.iter().all(|r| r.start >= window.start && r.end() <= window.end());
        if !inside {
            return false;
        }
        let fresh: BTreeSet<u64> = ranges
            .iter()
            .flat_map(|r| r.start..r.end())
            .filter(|s| !self.damaged.contains(s))
            .collect();
        if self.damaged.len() as u64 + fresh.len() as u64 > budget.damaged_sectors_max {
            return false;
        }
        self.window = Some(window);
        self.damaged.extend(fresh);
        assert!(self.damaged.len() as u64 <= budget.damaged_sectors_max);
        true
    }

    /// Record damage no fault draw admitted: writes a lying flush acknowledged and a crash
    /// dropped.
    pub fn record(&mut self, sectors: impl Iterator<Item = u64>) {
        self.damaged.extend(sectors);
    }

    /// The window fixed by the first damage, if any.
    #[must_use]
    pub fn window(&self) -> Option<SectorRange> {
        self.window
    }

    /// The distinct damaged sectors recorded so far.
    #[must_use]
    pub fn damaged_sectors(&self) -> &BTreeSet<u64> {
        &self.damaged
    }
}

/// The aligned window (of `budget`'s size) holding the first sector of `range`.
#[must_use]
pub fn window_of(budget: &FaultBudget, size_bytes: u64, range: SectorRange) -> SectorRange {
    let window_sectors = budget.window_sectors(size_bytes);
    let size_sectors = size_bytes / SECTOR_SIZE;
    assert!(range.start < size_sectors, "sector {} beyond device", range.start);
    let start = range.start - range.start % window_sectors;
    let count = window_sectors.min(size_sectors - start);
    assert!(count > 0);
    SectorRange { start, count }
}

/// Faults injected so far, per class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FaultCounters {
    /// Sectors turned latent-bad (each returns EIO until rewritten).
    pub latent_read: u64,
    /// Bits flipped at rest (including `SimDisk::corrupt_sector`).
    pub corrupt_at_rest: u64,
    /// Writes that landed elsewhere.
    pub misdirected_write: u64,
    /// Writes acknowledged and dropped.
    pub lost_write: u64,
    /// Flushes that returned EIO.
    pub flush_error: u64,
    /// Flushes that returned Ok and drained nothing (including `drop_next_flush`).
    pub lying_flush: u64,
    /// Writes refused with ENOSPC.
    pub full_device: u64,
    /// Crashes that tore the newest cached write.
    pub torn_write: u64,
}

impl FaultCounters {
    /// Faults of every class.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.latent_read
            + self.corrupt_at_rest
            + self.misdirected_write
            + self.lost_write
            + self.flush_error
            + self.lying_flush
            + self.full_device
            + self.torn_write
    }
}

/// A named fault profile, as `zsim --profile` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Profile {
    /// No faults and no crashes.
    None,
    /// Crashes (unflushed sectors dropped, torn writes); no other fault. The default.
    #[default]
    Crash,
    /// Crashes plus every survivable fault class, within the budget.
    Faults,
    /// Every class including lying flushes, without budget: only detection (property 7) holds.
    Unrestricted,
    /// Crashes and a flush that never persists anything: runs must report violations.
    LyingFlush,
}

/// Every profile, in `zsim` order.
pub const PROFILES: [Profile; 5] =
    [Profile::None, Profile::Crash, Profile::Faults, Profile::Unrestricted, Profile::LyingFlush];

impl Profile {
    /// The profile's name on the command line.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Crash => "crash",
            Self::Faults => "faults",
            Self::Unrestricted => "unrestricted",
            Self::LyingFlush => "lying-flush",
        }
    }

    /// Whether runs of this profile crash the disk.
    #[must_use]
    pub fn crashes(&self) -> bool {
        !matches!(self, Self::None)
    }

    /// The disk faults of this profile.
    #[must_use]
    pub fn fault_config(&self) -> FaultConfig {
        let crash = FaultConfig { torn_write: FaultSwitch::on(250_000), ..FaultConfig::NONE };
        match self {
            Self::None => FaultConfig::NONE,
            Self::Crash => crash,
            Self::Faults => FaultConfig {
                latent_read: FaultSwitch::on(2_000),
                corrupt_at_rest: FaultSwitch::on(500),
                misdirected_write: FaultSwitch::on(1_000),
                lost_write: FaultSwitch::on(1_000),
                flush_error: FaultSwitch::on(5_000),
                full_device: FaultSwitch::on(1_000),
                ..crash
            },
            Self::Unrestricted => FaultConfig {
                latent_read: FaultSwitch::on(10_000),
                corrupt_at_rest: FaultSwitch::on(5_000),
                misdirected_write: FaultSwitch::on(10_000),
                lost_write: FaultSwitch::on(10_000),
                flush_error: FaultSwitch::on(10_000),
                lying_flush: FaultSwitch::on(10_000),
                full_device: FaultSwitch::on(5_000),
                budget: None,
                ..crash
            },
            Self::LyingFlush => FaultConfig { lying_flush: FaultSwitch::ALWAYS, ..crash },
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A profile name that is not one of the five.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown fault profile {name:?} (expected none, crash, faults, unrestricted, lying-flush)")]
pub struct ProfileParseError {
    /// The name given.
    pub name: String,
}

impl FromStr for Profile {
    type Err = ProfileParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PROFILES
            .iter()
            .find(|p| p.name() == s)
            .copied()
            .ok_or_else(|| ProfileParseError { name: s.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: u64 = 16 << 20;

    #[test]
    fn profile_names_round_trip() {
        for p in PROFILES {
            assert_eq!(p.to_string().parse::<Profile>(), Ok(p));
        }
        assert!("Crash".parse::<Profile>().is_err());
        assert!("lying_flush".parse::<Profile>().is_err());
    }

    #[test]
    fn bounded_profiles_have_a_budget_and_no_lying_flush() {
        for p in [Profile::None, Profile::Crash, Profile::Faults] {
            let c = p.fault_config();
            assert!(c.budget.is_some(), "{p}");
            assert!(!c.lying_flush.enabled, "{p}");
        }
        assert!(Profile::Unrestricted.fault_config().budget.is_none());
        assert_eq!(Profile::LyingFlush.fault_config().lying_flush, FaultSwitch::ALWAYS);
        assert!(Profile::None.fault_config().is_quiet());
        assert!(!Profile::Faults.fault_config().is_quiet());
    }

    #[test]
    fn ledger_confines_damage_to_one_window() {
        let budget = FaultBudget { damaged_sectors_max: 10, window_shift: 4 };
        let window = budget.window_sectors(SIZE);
        assert_eq!(window, (1 << 20) / SECTOR_SIZE);
        let mut ledger = BudgetLedger::default();
        let first = SectorRange { start: window + 5, count: 2 };
        assert!(ledger.admit(Some(&budget), SIZE, &[first]));
        assert_eq!(ledger.window(), Some(SectorRange { start: window, count: window }));
        let other = SectorRange { start: 3 * window, count: 1 };
        assert!(!ledger.admit(Some(&budget), SIZE, &[other]));
        let straddle = SectorRange { start: 2 * window - 1, count: 2 };
        assert!(!ledger.admit(Some(&budget), SIZE, &[straddle]));
        assert!(ledger.admit(Some(&budget), SIZE, &[first]), "re-damage costs nothing");
        let big = SectorRange { start: window + 100, count: 9 };
        assert!(!ledger.admit(Some(&budget), SIZE, &[big]), "2 + 9 > 10");
        let rest = SectorRange { start: window + 10, count: 8 };
        assert!(ledger.admit(Some(&budget), SIZE, &[rest]), "2 + 8 = 10");
        assert_eq!(ledger.damaged_sectors().len(), 10);
        assert!(ledger.admit(None, SIZE, &[other]), "no budget admits all");
    }

    #[test]
    fn switch_rates_are_respected() {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        assert!(!(0..1000).any(|_| FaultSwitch::OFF.fires(&mut rng)));
        assert!((0..1000).all(|_| FaultSwitch::ALWAYS.fires(&mut rng)));
        let half = (0..10_000).filter(|_| FaultSwitch::on(500_000).fires(&mut rng)).count();
        assert!((4_000..6_000).contains(&half), "{half}");
    }
}
