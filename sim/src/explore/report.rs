//! What `explore` reports: each violation (the crash point, the cached writes kept, what
//! broke) and the summary of a scenario, as text for `zsim explore`.

use super::*;

/// One crash state that broke a property.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Ordinal of the crash point among all crash points (0-based).
    pub crash_point: u64,
    /// Index of the event the crash follows.
    pub event: usize,
    /// That event, described.
    pub event_desc: String,
    /// Which cached writes (or sectors) the state kept.
    pub subset: String,
    /// Newest committed txg (None: none yet).
    pub lower: Option<u64>,
    /// Newest txg that started syncing.
    pub upper: u64,
    /// The steps the state was judged against (when `replay_window()`).
    pub steps: StepBounds,
    /// Txg the pool imported at (loaded, before any replay), if it imported.
    pub imported_txg: Option<u64>,
    /// Which properties broke.
    pub kinds: Vec<ViolationKind>,
    /// What was wrong.
    pub what: String,
}

/// The property a crash state broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ViolationKind {
    /// Import failed although a txg had been committed (its uberblock flushed).
    ImportFailed,
    /// The pool imported at a txg outside [lower, upper].
    OutOfRange,
    /// A newer uberblock verifies but its tree did not: blocks were not durable before it.
    Rewound,
    /// `oracle::integrity::check` failed.
    Integrity,
    /// The fingerprint could not be read (a manifest read failed).
    Unreadable,
    /// The pool's fingerprint equals no txg's in [lower, upper] (no fsync since the last
    /// commit) or no acceptable step's (module doc).
    Mismatch,
    /// The pool's fingerprint is a step's from before an fsync that had returned: fsynced
    /// operations were lost.
    FsyncLost,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lower = self.lower.map_or("none".to_owned(), |t| t.to_string());
        let imported = self.imported_txg.map_or("no import".to_owned(), |t| format!("txg {t}"));
        let sb = &self.steps;
        let steps = if sb.replay_window() {
            let fsync = sb.fsynced.map_or("none returned".to_owned(), |s| format!("#{s} returned"));
            format!(" and the state of a step in #{}..=#{} (fsync {fsync})", sb.first(), sb.current)
        } else {
            String::new()
        };
        write!(
            f,
            "crash point #{} (after event {}: {}), {}; expected txg in [{lower}, {}]{steps}; \
             {imported}: {}",
            self.crash_point, self.event, self.event_desc, self.subset, self.upper, self.what
        )
    }
}

/// What an exploration checked and found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExploreReport {
    /// Scenario name.
    pub scenario: String,
    /// Device size.
    pub device_bytes: u64,
    /// Events in the log.
    pub events: usize,
    /// Committed txgs of the recording.
    pub txgs: Vec<u64>,
    /// Crash points (one after every write and flush).
    pub crash_points: u64,
    /// Crash states imported and checked.
    pub states: u64,
    /// States whose import failed before any txg was committed (acceptable).
    pub no_pool_yet: u64,
    /// States per imported txg (the txg loaded, before any replay).
    pub imported: BTreeMap<u64, u64>,
    /// States whose import replayed intent-log operations.
    pub replayed_states: u64,
    /// Manifests computed by reading a pool (the rest came from the root-pointer cache).
    pub manifests_computed: u64,
    /// Violating states.
    pub violations: u64,
    /// Violations per broken property (a state may break several).
    pub kinds: BTreeMap<ViolationKind, u64>,
    /// The first `EXPLORE_VIOLATIONS_KEPT` violations.
    pub first: Vec<Violation>,
}

impl fmt::Display for ExploreReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (first, last) = (self.txgs.first().unwrap_or(&0), self.txgs.last().unwrap_or(&0));
        writeln!(
            f,
            "explore {}: {} MiB device, {} disk events, txgs {first}..={last}",
            self.scenario,
            self.device_bytes >> 20,
            self.events
        )?;
        writeln!(
            f,
            "crash points: {}  states checked: {}  failed imports before the first commit \
             (accepted): {}",
            self.crash_points, self.states, self.no_pool_yet
        )?;
        let per_txg: Vec<String> = self.imported.iter().map(|(t, n)| format!("{t}:{n}")).collect();
        writeln!(f, "states per imported txg: {}", per_txg.join(" "))?;
        writeln!(f, "states that replayed intent-log operations: {}", self.replayed_states)?;
        writeln!(f, "manifests computed: {}", self.manifests_computed)?;
        write!(f, "violations: {}", self.violations)?;
        if !self.kinds.is_empty() {
            let kinds: Vec<String> = self.kinds.iter().map(|(k, n)| format!("{k:?}:{n}")).collect();
            write!(f, " ({})", kinds.join(" "))?;
        }
        for v in self.first.iter().take(EXPLORE_VIOLATIONS_SHOWN) {
            write!(f, "\n  {v}")?;
        }
        Ok(())
    }
}
