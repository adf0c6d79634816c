//! The pool directory: every persistent dataset and snapshot, plus the deferred-free lists,
//! serialized as the MOS blob each txg. OpenZFS: dsl_pool.c, the MOS object directory.
//! Format (little endian): magic, version, pool guid, next id, datasets (id, name, guid,
//! creation txg, props, head root, snapshots), defer lists (txg, extents). Decoding checks
//! every length against the remaining bytes and named limits: the blob is checksummed on
//! disk, so a decode error means corruption and the uberblock is rejected, never a panic.

use std::collections::BTreeMap;

use crate::dsl::dataset::{DatasetProps, DslDataset, DslSnapshot};
use crate::limits::{DSL_MAX_SNAPSHOTS, SPA_MAX_DATASETS, ZFS_MAX_DATASET_NAME_LEN};
use crate::zio::blkptr::{BlkPtr, Dva, BP_BYTES};
use crate::zio::checksum::ChecksumType;
use crate::zio::compress::Compress;

/// MOS blob magic ("ZSIMMOS1").
pub const MOS_MAGIC: u64 = u64::from_le_bytes(*b"ZSIMMOS1");
/// MOS blob version.
pub const MOS_VERSION: u64 = 1;
/// Largest number of extents in the persisted defer lists.
pub const MOS_MAX_DEFER_EXTENTS: u64 = 1 << 24;

/// All datasets of a pool.
#[derive(Debug, Default)]
pub struct DslPool {
    /// Datasets by id.
    pub datasets: BTreeMap<u64, DslDataset>,
    /// Name -> id.
    pub names: BTreeMap<String, u64>,
    /// Next dataset id.
    pub next_id: u64,
}

/// A dataset as persisted (head and snapshots by root pointer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatasetRecord {
    /// Id.
    pub id: u64,
    /// Full name.
    pub name: String,
    /// Guid.
    pub guid: u64,
    /// Creation txg.
    pub creation_txg: u64,
    /// Properties.
    pub props: DatasetProps,
    /// Head objset block.
    pub head_root: BlkPtr,
    /// Snapshots oldest first.
    pub snapshots: Vec<DslSnapshot>,
}

/// The decoded MOS blob.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MosPhys {
    /// Pool guid.
    pub pool_guid: u64,
    /// Next dataset id.
    pub next_id: u64,
    /// Datasets.
    pub datasets: Vec<DatasetRecord>,
    /// Deferred frees by txg.
    pub defer: BTreeMap<u64, Vec<Dva>>,
}

impl DslPool {
    /// Add a dataset and index its name.
    pub fn insert(&mut self, ds: DslDataset) {
        assert!(!self.names.contains_key(&ds.name), "duplicate dataset {}", ds.name);
        self.names.insert(ds.name.clone(), ds.id);
        self.datasets.insert(ds.id, ds);
    }

    /// Remove a dataset.
    pub fn remove(&mut self, id: u64) -> DslDataset {
        let ds = self.datasets.remove(&id).expect("invariant: removing a known dataset");
        self.names.remove(&ds.name);
        ds
    }

    /// The id of the dataset named `name`.
    #[must_use]
    pub fn id_of(&self, name: &str) -> Option<u64> {
        self.names.get(name).copied()
    }

    /// True if some other dataset is a child of `name`.
    #[must_use]
    pub fn has_children(&self, name: &str) -> bool {
        let prefix = format!("{name}/");
        self.names.range(prefix.clone()..).next().is_some_and(|(n, _)| n.starts_with(&prefix))
    }

    /// The persistent records of every non-temporary dataset.
    #[must_use]
    pub fn records(&self) -> Vec<DatasetRecord> {
        self.datasets
            .values()
            .filter(|d| !d.temporary)
            .map(|d| DatasetRecord {
                id: d.id,
                name: d.name.clone(),
                guid: d.guid,
                creation_txg: d.creation_txg,
                props: d.props,
                head_root: d.head.root,
                snapshots: d.snapshots.clone(),
            })
            .collect()
    }
}

struct Enc(Vec<u8>);

impl Enc {
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        assert!(s.len() <= ZFS_MAX_DATASET_NAME_LEN, "name too long");
        self.u64(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn bp(&mut self, bp: &BlkPtr) {
        let mut raw = [0u8; BP_BYTES];
        bp.encode(&mut raw);
        self.0.extend_from_slice(&raw);
    }
}

/// Why a MOS blob did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MosDecodeError(pub &'static str);

struct Dec<'a> {
    b: &'a [u8],
    at: usize,
}

impl Dec<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], MosDecodeError> {
        let end =
            self.at.checked_add(n).filter(|&e| e <= self.b.len()).ok_or(MosDecodeError("short"))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u64(&mut self) -> Result<u64, MosDecodeError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn count(&mut self, max: u64) -> Result<usize, MosDecodeError> {
        let n = self.u64()?;
        if n > max {
            return Err(MosDecodeError("count over limit"));
        }
        usize::try_from(n).map_err(|_| MosDecodeError("count"))
    }
    fn str(&mut self) -> Result<String, MosDecodeError> {
        let n = self.count(ZFS_MAX_DATASET_NAME_LEN as u64)?;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| MosDecodeError("name not utf-8"))
    }
    fn bp(&mut self) -> Result<BlkPtr, MosDecodeError> {
        BlkPtr::decode(self.take(BP_BYTES)?).map_err(|_| MosDecodeError("bad block pointer"))
    }
}

impl MosPhys {
    /// Serialize.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc(Vec::new());
        e.u64(MOS_MAGIC);
        e.u64(MOS_VERSION);
        e.u64(self.pool_guid);
        e.u64(self.next_id);
        e.u64(self.datasets.len() as u64);
        for d in &self.datasets {
            e.u64(d.id);
            e.str(&d.name);
            e.u64(d.guid);
            e.u64(d.creation_txg);
            e.u64(u64::from(d.props.checksum as u8) | u64::from(d.props.compress as u8) << 8);
            e.bp(&d.head_root);
            e.u64(d.snapshots.len() as u64);
            for s in &d.snapshots {
                e.str(&s.name);
                e.u64(s.guid);
                e.u64(s.creation_txg);
                e.u64(s.creation_time);
                e.bp(&s.root);
            }
        }
        e.u64(self.defer.len() as u64);
        for (txg, dvas) in &self.defer {
            e.u64(*txg);
            e.u64(dvas.len() as u64);
            for d in dvas {
                e.u64(d.offset);
                e.u64(d.asize);
            }
        }
        e.0
    }

    /// Deserialize, checking every length.
    ///
    /// # Errors
    /// `MosDecodeError` naming what was wrong.
    pub fn decode(b: &[u8]) -> Result<Self, MosDecodeError> {
        let mut d = Dec { b, at: 0 };
        if d.u64()? != MOS_MAGIC || d.u64()? != MOS_VERSION {
            return Err(MosDecodeError("bad magic or version"));
        }
        let mut mos = Self { pool_guid: d.u64()?, next_id: d.u64()?, ..Self::default() };
        for _ in 0..d.count(SPA_MAX_DATASETS as u64)? {
            mos.datasets.push(decode_dataset(&mut d)?);
        }
        let mut total = 0;
        for _ in 0..d.count(1 << 16)? {
            let txg = d.u64()?;
            let n = d.count(MOS_MAX_DEFER_EXTENTS)?;
            total += n as u64;
            if total > MOS_MAX_DEFER_EXTENTS {
                return Err(MosDecodeError("too many deferred frees"));
            }
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(Dva { offset: d.u64()?, asize: d.u64()? });
            }
            mos.defer.insert(txg, v);
        }
        if d.at != b.len() {
            return Err(MosDecodeError("trailing bytes"));
        }
        Ok(mos)
    }
}

fn decode_dataset(d: &mut Dec<'_>) -> Result<DatasetRecord, MosDecodeError> {
    let id = d.u64()?;
    let name = d.str()?;
    let guid = d.u64()?;
    let creation_txg = d.u64()?;
    let p = d.u64()?;
    let checksum = ChecksumType::from_u8((p & 0xff) as u8).ok_or(MosDecodeError("checksum"))?;
    let compress = Compress::from_u8((p >> 8 & 0xff) as u8).ok_or(MosDecodeError("compress"))?;
    let head_root = d.bp()?;
    let mut snapshots = Vec::new();
    for _ in 0..d.count(DSL_MAX_SNAPSHOTS as u64)? {
        snapshots.push(DslSnapshot {
            name: d.str()?,
            guid: d.u64()?,
            creation_txg: d.u64()?,
            creation_time: d.u64()?,
            root: d.bp()?,
        });
    }
    if snapshots.windows(2).any(|w| w[0].creation_txg >= w[1].creation_txg) {
        return Err(MosDecodeError("snapshot txgs out of order"));
    }
    Ok(DatasetRecord {
        id,
        name,
        guid,
        creation_txg,
        props: DatasetProps { checksum, compress },
        head_root,
        snapshots,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mos_round_trips_and_rejects_truncation() {
        let mut mos = MosPhys { pool_guid: 7, next_id: 3, ..MosPhys::default() };
        mos.datasets.push(DatasetRecord {
            id: 1,
            name: "tank/a".into(),
            guid: 99,
            creation_txg: 4,
            props: DatasetProps::default(),
            head_root: BlkPtr::hole(3, 11, 0, 1024),
            snapshots: vec![DslSnapshot {
                name: "s".into(),
                guid: 5,
                creation_txg: 6,
                creation_time: 8,
                root: BlkPtr::HOLE,
            }],
        });
        mos.defer.insert(9, vec![Dva { offset: 4096, asize: 512 }]);
        let raw = mos.encode();
        assert_eq!(MosPhys::decode(&raw).expect("decode"), mos);
        for cut in [0, 7, 40, raw.len() - 1] {
            assert!(MosPhys::decode(&raw[..cut]).is_err(), "cut {cut}");
        }
        let mut garbage = raw.clone();
        garbage[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(MosPhys::decode(&garbage).is_err());
    }
}
