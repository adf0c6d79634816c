//! Datasets and snapshots in memory. OpenZFS: dsl_dataset.c. A dataset owns a head objset
//! (read-write) and a list of snapshots ordered by creation txg, each naming a frozen objset
//! block. Temporary datasets (receives in progress) live only in memory and are never
//! written to the MOS, so a crash discards them. Invariants: snapshot txgs strictly
//! increase; blocks born after `prev_snap_txg()` belong to the head alone.

use std::collections::BTreeMap;

use crate::dmu::Objset;
use crate::zio::blkptr::BlkPtr;
use crate::zio::checksum::ChecksumType;
use crate::zio::compress::Compress;

/// Dataset properties that shape its blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DatasetProps {
    /// Checksum of data blocks (fletcher4 or sha256).
    pub checksum: ChecksumType,
    /// Compression of data blocks (off or lz4; lz4 also embeds tiny blocks).
    pub compress: Compress,
}

impl Default for DatasetProps {
    fn default() -> Self {
        Self { checksum: ChecksumType::Fletcher4, compress: Compress::Off }
    }
}

/// A snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DslSnapshot {
    /// Short name (after the `@`).
    pub name: String,
    /// Snapshot guid (kept by send/receive).
    pub guid: u64,
    /// Txg whose state it captures: every block born at or before it.
    pub creation_txg: u64,
    /// Host time of creation, seconds.
    pub creation_time: u64,
    /// The frozen objset block.
    pub root: BlkPtr,
}

/// A filesystem dataset.
#[derive(Debug)]
pub struct DslDataset {
    /// Internal id.
    pub id: u64,
    /// Full name, `pool/fs`.
    pub name: String,
    /// Dataset guid.
    pub guid: u64,
    /// Txg of creation.
    pub creation_txg: u64,
    /// Block properties.
    pub props: DatasetProps,
    /// The live objset.
    pub head: Objset,
    /// Snapshots, oldest first.
    pub snapshots: Vec<DslSnapshot>,
    /// In memory only (a receive in progress).
    pub temporary: bool,
    /// For a receive clone: the txg of the snapshot it started from.
    pub origin_txg: u64,
    /// Opened snapshot objsets, by creation txg.
    pub(crate) snap_views: BTreeMap<u64, Objset>,
}

impl DslDataset {
    /// Blocks born after this txg belong to the head alone.
    #[must_use]
    pub fn prev_snap_txg(&self) -> u64 {
        self.snapshots.last().map_or(self.origin_txg, |s| s.creation_txg)
    }

    /// True if the head differs from the newest snapshot (receive's ETXTBSY check, OpenZFS
    /// dsl_dataset_modified_since_snap): it has unsynced changes, or its root was written
    /// after the snapshot and its meta-dnode (every object, not the intent-log header that
    /// a rollback or a log reset rewrites) differs from the snapshot's, read by `zio`. An
    /// unreadable snapshot counts as modified.
    pub fn modified_since_snapshot(&self, zio: &mut crate::zio::Zio) -> bool {
        let Some(snap) = self.snapshots.last() else { return true };
        if self.head.is_dirty() {
            return true;
        }
        if self.head.root == snap.root || self.head.root.birth_txg <= snap.creation_txg {
            return false;
        }
        let size = crate::limits::DNODE_SIZE as usize;
        match zio.read(&snap.root) {
            Ok(raw) if raw.len() >= size => crate::dnode::DnodePhys::decode(&raw[..size])
                .map_or(true, |meta| meta != self.head.meta),
            _ => true,
        }
    }

    /// The snapshot named `snap`.
    #[must_use]
    pub fn snapshot(&self, snap: &str) -> Option<&DslSnapshot> {
        self.snapshots.iter().find(|s| s.name == snap)
    }

    /// Index of the snapshot named `snap`.
    #[must_use]
    pub fn snapshot_index(&self, snap: &str) -> Option<usize> {
        self.snapshots.iter().position(|s| s.name == snap)
    }
}
