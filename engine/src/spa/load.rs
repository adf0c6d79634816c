//! Pool import: find the newest uberblock whose tree verifies, rebuild the allocator from
//! every reachable block plus the persisted deferred frees, and open the datasets.
//! OpenZFS: spa_load(), vdev_uberblock_load(), spa_load_verify(). Every metadata block of
//! every dataset and snapshot is read and checksummed while claiming space, so a candidate
//! with a torn, lost or misdirected metadata block is rejected and the previous one tried.
//! Data blocks are not read: damage there is reported as an error when read (ZFS does the
//! same by default). Nothing is written unless intent logs are replayed or the pool was
//! rewound (then one txg is synced at once, so that the newer, abandoned uberblocks can never
//! win a later import; a rewound import discards the logs instead of replaying them).

use std::collections::BTreeMap;

use crate::dmu::Objset;
use crate::dsl::dataset::DslDataset;
use crate::dsl::destroy::blocks_after;
use crate::dsl::pool::{DslPool, MosPhys};
use crate::error::{ImportError, ZioError};
use crate::limits::{SPA_MAXBLOCKSIZE, TXG_DEFER_SIZE, VDEV_LABEL_SIZE};
use crate::spa::metaslab::Metaslab;
use crate::spa::uberblock::UberblockPhys;
use crate::spa::{Spa, SpaConfig};
use crate::txg::TxgState;
use crate::vdev::label::{label_read, ring_for_each, LabelConfig};
use crate::vdev::BlockDevice;
use crate::zio::blkptr::{BlkPtr, BP_BYTES};
use crate::zio::Zio;

/// Why one candidate uberblock was rejected.
#[derive(Debug)]
enum LoadError {
    Zio(ZioError),
    Corrupt(&'static str),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Zio(e) => write!(f, "{e}"),
            Self::Corrupt(why) => f.write_str(why),
        }
    }
}

impl From<ZioError> for LoadError {
    fn from(e: ZioError) -> Self {
        Self::Zio(e)
    }
}

struct Loaded {
    dsl: DslPool,
    mos_blocks: Vec<BlkPtr>,
    /// Intent-log operations to replay, by dataset name.
    replay: Vec<(String, Vec<crate::zil::LoggedOp>)>,
}

/// Uberblocks of the ring that verify and belong to `pool_guid`, newest first, deduplicated.
fn candidates(dev: &mut dyn BlockDevice, pool_guid: u64) -> Vec<UberblockPhys> {
    let mut by_txg: BTreeMap<u64, UberblockPhys> = BTreeMap::new();
    ring_for_each(dev, &mut |offset, raw| {
        if let Some(ub) = UberblockPhys::decode(raw, offset) {
            if ub.pool_guid == pool_guid {
                by_txg.entry(ub.txg).or_insert(ub);
            }
        }
    });
    by_txg.into_values().rev().collect()
}

impl Spa {
    /// Replay intent-log operations (import), then sync them with the logs' new state in
    /// one txg, so a crash during replay replays again from the same state.
    fn zil_replay(
        &mut self,
        replay: Vec<(String, Vec<crate::zil::LoggedOp>)>,
    ) -> Result<(), ImportError> {
        // Every head starts a fresh chain (new guid): blocks of the old chain's earlier life
        // may sit at locations the allocator hands out again, and must never be walked into.
        // The old chain stays allocated until the txg that writes the new header commits.
        let ids: Vec<u64> = self.dsl.datasets.keys().copied().collect();
        let open = self.txg.open;
        for id in ids {
            let zil = self.new_zil().map_err(|e| ImportError::Replay(e.to_string()))?;
            let head = &mut self.dsl.datasets.get_mut(&id).expect("listed").head;
            if let Some(old) = head.zil.replace(zil) {
                old.discard(&mut self.zio, open);
            }
        }
        if replay.is_empty() {
            return Ok(());
        }
        self.replaying = true;
        for (fs, ops) in &replay {
            let mut done = 0;
            for op in ops {
                if let Err(e) = self.replay_op(fs, op) {
                    let why = format!("op {} of {}: {e}", done + 1, ops.len());
                    self.import_report.replay_errors.insert(fs.clone(), why);
                    break;
                }
                done += 1;
            }
            self.import_report.replayed.insert(fs.clone(), done);
        }
        self.replaying = false;
        self.force_sync = true;
        self.txg_sync().map(|_| ()).map_err(|e| ImportError::Replay(e.to_string()))
    }

    /// Import the pool on `dev`. `rewind_to` picks the newest uberblock at or before that
    /// txg (ZFS's `zpool import -T`).
    ///
    /// # Errors
    /// `NotAPool` for a device without a valid label (zeroed, garbage, too small);
    /// `NoValidUberblock` when no candidate's tree verifies; `RewindUnavailable`.
    pub fn import(
        mut dev: Box<dyn BlockDevice>,
        cfg: SpaConfig,
        rewind_to: Option<u64>,
    ) -> Result<Self, ImportError> {
        let label = label_read(dev.as_mut())?;
        let all = candidates(dev.as_mut(), label.pool_guid);
        let newest_seen = all.first().map_or(0, |u| u.txg);
        let size = dev.size_bytes();
        let mut zio = Zio::new(dev, Metaslab::new(VDEV_LABEL_SIZE, size - VDEV_LABEL_SIZE));
        let mut rejected: Vec<(u64, String)> = Vec::new();
        for ub in all.iter().filter(|u| rewind_to.is_none_or(|r| u.txg <= r)) {
            zio.ms = Metaslab::new(VDEV_LABEL_SIZE, size - VDEV_LABEL_SIZE);
            match load_candidate(&mut zio, ub, &label) {
                Ok(mut loaded) => {
                    let rewound = ub.txg < newest_seen;
                    let mut replay = std::mem::take(&mut loaded.replay);
                    let mut spa = Self::assemble(zio, label, loaded, ub, newest_seen, rewound, cfg);
                    spa.import_report.rejected = rejected;
                    if rewound {
                        // The logs were trimmed against a newer commit: the changes of its
                        // txgs that were never fsynced are in no log, so a replay on top of
                        // this older txg would give a state that never existed. Discarded,
                        // as a rewind (zpool import -F/-T) discards the intent log.
                        spa.import_report.log_discarded =
                            replay.drain(..).map(|(fs, ops)| (fs, ops.len())).collect();
                    }
                    spa.zil_replay(replay)?;
                    return Ok(spa);
                }
                Err(e) => rejected.push((ub.txg, e.to_string())),
            }
        }
        match rewind_to {
            Some(t) => Err(ImportError::RewindUnavailable(t)),
            None => Err(ImportError::NoValidUberblock {
                reason: rejected.first().map_or_else(
                    || "no uberblock in the ring".into(),
                    |(txg, e)| format!("txg {txg}: {e}"),
                ),
            }),
        }
    }

    fn assemble(
        zio: Zio,
        label: LabelConfig,
        loaded: Loaded,
        ub: &UberblockPhys,
        newest_seen: u64,
        rewound: bool,
        cfg: SpaConfig,
    ) -> Self {
        let mut guid_state = cfg.guid_seed ^ ub.txg.rotate_left(17);
        let _ = super::splitmix64(&mut guid_state);
        Self {
            zio,
            label,
            dsl: loaded.dsl,
            txg: TxgState { open: newest_seen.max(ub.txg) + 1, syncing: None, synced: ub.txg },
            job: None,
            tasks: Vec::new(),
            mos_blocks: loaded.mos_blocks,
            dirty: BTreeMap::new(),
            cfg,
            now_secs: cfg.now_secs,
            last_sync_secs: cfg.now_secs,
            guid_state,
            suspended: None,
            force_sync: rewound,
            replaying: false,
            import_report: super::ImportReport {
                loaded_txg: ub.txg,
                ..super::ImportReport::default()
            },
        }
    }

    /// The txgs of every uberblock in the ring that verifies, newest first (for rewind).
    ///
    /// # Errors
    /// `NotAPool`.
    pub fn uberblock_txgs(dev: &mut dyn BlockDevice) -> Result<Vec<u64>, ImportError> {
        let label = label_read(dev)?;
        Ok(candidates(dev, label.pool_guid).iter().map(|u| u.txg).collect())
    }
}

fn read_mos(zio: &mut Zio, ub: &UberblockPhys) -> Result<(MosPhys, Vec<BlkPtr>), LoadError> {
    let root = zio.read(&ub.rootbp)?;
    if root.len() < 16 {
        return Err(LoadError::Corrupt("MOS root too short"));
    }
    let len = u64::from_le_bytes(root[..8].try_into().expect("8 bytes"));
    if len != ub.mos_len || len > SPA_MAXBLOCKSIZE * (SPA_MAXBLOCKSIZE / BP_BYTES as u64) {
        return Err(LoadError::Corrupt("MOS length mismatch"));
    }
    let nchunks =
        usize::try_from(len.div_ceil(SPA_MAXBLOCKSIZE)).map_err(|_| LoadError::Corrupt("len"))?;
    if root.len() < 16 + nchunks * BP_BYTES {
        return Err(LoadError::Corrupt("MOS root lists too few chunks"));
    }
    let mut blob = Vec::new();
    let mut blocks = Vec::new();
    for i in 0..nchunks {
        let at = 16 + i * BP_BYTES;
        let bp = BlkPtr::decode(&root[at..at + BP_BYTES])?;
        blob.extend_from_slice(&zio.read(&bp)?);
        blocks.push(bp);
    }
    blob.truncate(usize::try_from(len).map_err(|_| LoadError::Corrupt("len"))?);
    blocks.push(ub.rootbp);
    let mos = MosPhys::decode(&blob).map_err(|e| LoadError::Corrupt(e.0))?;
    Ok((mos, blocks))
}

fn claim_bp(zio: &mut Zio, bp: &BlkPtr) -> Result<(), LoadError> {
    for d in bp.dvas() {
        if !zio.ms.claim(*d) {
            return Err(LoadError::Corrupt("block referenced twice or off the device"));
        }
    }
    Ok(())
}

fn load_candidate(
    zio: &mut Zio,
    ub: &UberblockPhys,
    label: &LabelConfig,
) -> Result<Loaded, LoadError> {
    let (mos, mos_blocks) = read_mos(zio, ub)?;
    if mos.pool_guid != label.pool_guid {
        return Err(LoadError::Corrupt("MOS of another pool"));
    }
    for bp in &mos_blocks {
        claim_bp(zio, bp)?;
    }
    let mut dsl = DslPool { next_id: mos.next_id, ..DslPool::default() };
    let mut replay = Vec::new();
    for rec in mos.datasets {
        let mut prev = 0;
        for s in &rec.snapshots {
            if s.creation_txg > ub.txg {
                return Err(LoadError::Corrupt("snapshot from the future"));
            }
            for bp in blocks_after(zio, &s.root, prev)? {
                claim_bp(zio, &bp)?;
            }
            prev = s.creation_txg;
        }
        for bp in blocks_after(zio, &rec.head_root, prev)? {
            claim_bp(zio, &bp)?;
        }
        let mut head = Objset::open(zio, &rec.head_root, false)?;
        let log = crate::zil::load(zio, &head.zil_header, ub.txg);
        for d in &log.extents {
            if !zio.ms.claim(*d) {
                return Err(LoadError::Corrupt("intent log block overlaps a live block"));
            }
        }
        if head.zil_header.guid != 0 {
            head.zil = Some(crate::zil::Zilog::resume(&head.zil_header, &log, ub.txg));
        }
        if !log.ops.is_empty() {
            replay.push((rec.name.clone(), log.ops));
        }
        if dsl.names.contains_key(&rec.name) || rec.id >= dsl.next_id {
            return Err(LoadError::Corrupt("duplicate dataset"));
        }
        dsl.insert(DslDataset {
            id: rec.id,
            name: rec.name,
            guid: rec.guid,
            creation_txg: rec.creation_txg,
            props: rec.props,
            head,
            snapshots: rec.snapshots,
            temporary: false,
            origin_txg: 0,
            snap_views: BTreeMap::new(),
        });
    }
    // The MOS of txg T is written before T commits, so it still lists the frees that T's
    // commit releases (`Metaslab::sync_done`): those extents are free in T's state, and blocks
    // allocated after T (an intent-log block written while T + 1 synced) may lie there.
    let released_below = ub.txg.saturating_sub(TXG_DEFER_SIZE - 1);
    for (txg, dvas) in mos.defer.iter().filter(|(t, _)| **t >= released_below) {
        for d in dvas {
            if *txg > ub.txg || !zio.ms.claim_deferred(*txg, *d) {
                return Err(LoadError::Corrupt("deferred free overlaps a live block"));
            }
        }
    }
    Ok(Loaded { dsl, mos_blocks, replay })
}
