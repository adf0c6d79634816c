//! Labels: one at the front and one at the back of the device, each a config header (pool
//! name, guid, device size) followed by a ring of uberblock slots. OpenZFS: vdev_label.c.
//! The header is written once at create; uberblock N goes to slot N % ring in both labels.
//! Every header and slot carries a Fletcher-4 of its bytes with its own device offset mixed
//! in, so a torn, stale-elsewhere or misdirected copy fails verification (zio_eck_t idea).
//! Crash argument: a txg's blocks are flushed before its uberblock is written, and the
//! uberblock is flushed before the txg counts as synced; a torn uberblock fails its checksum
//! and import falls back to the previous slot, whose tree is intact (frees are deferred).

use crate::error::ImportError;
use crate::limits::{
    UBERBLOCK_RING_SLOTS, UBERBLOCK_SLOT_SIZE, VDEV_LABELS, VDEV_LABEL_HEADER_SIZE,
    VDEV_LABEL_SIZE, ZFS_MAX_DATASET_NAME_LEN,
};
use crate::vdev::{BlockDevice, VdevError};
use crate::zio::blkptr::get64;
use crate::zio::checksum::{Fletcher4, ZioCksum};

/// Magic of a label header ("ZSIMLABL").
pub const LABEL_MAGIC: u64 = u64::from_le_bytes(*b"ZSIMLABL");
/// On-disk format version.
pub const SPA_VERSION: u64 = 1;
/// Bytes of the header block inside the label header area.
pub const LABEL_HEADER_BLOCK: usize = 1024;
/// Where the embedded checksum of a header or slot starts.
const ECK_AT: usize = 1024 - 32;

/// The pool identity stored in each label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelConfig {
    /// Pool name.
    pub name: String,
    /// Pool guid.
    pub pool_guid: u64,
    /// Device size at creation.
    pub device_size: u64,
}

/// Byte offset of label `l` (0 = front, 1 = back) on a device of `size` bytes.
#[must_use]
pub fn label_offset(l: u64, size: u64) -> u64 {
    assert!(l < VDEV_LABELS);
    if l == 0 {
        0
    } else {
        size - VDEV_LABEL_SIZE
    }
}

/// Byte offset of uberblock slot for `txg` in label `l`.
#[must_use]
pub fn uberblock_offset(l: u64, size: u64, txg: u64) -> u64 {
    label_offset(l, size)
        + VDEV_LABEL_HEADER_SIZE
        + (txg % UBERBLOCK_RING_SLOTS) * UBERBLOCK_SLOT_SIZE
}

/// Checksum of a 1 KiB block's first 992 bytes with its device offset mixed in.
#[must_use]
pub fn embedded_cksum(block: &[u8], offset: u64) -> ZioCksum {
    let mut f = Fletcher4::new();
    f.update(&block[..ECK_AT]);
    f.update(&offset.to_le_bytes());
    f.finish()
}

/// Seal a 1 KiB block for `offset`: write its embedded checksum.
pub fn seal(block: &mut [u8], offset: u64) {
    assert_eq!(block.len(), 1024);
    let ck = embedded_cksum(block, offset);
    for (i, w) in ck.iter().enumerate() {
        block[ECK_AT + 8 * i..ECK_AT + 8 * i + 8].copy_from_slice(&w.to_le_bytes());
    }
}

/// True if a 1 KiB block read at `offset` carries a matching embedded checksum.
#[must_use]
pub fn verify(block: &[u8], offset: u64) -> bool {
    if block.len() != 1024 {
        return false;
    }
    let ck = embedded_cksum(block, offset);
    (0..4).all(|i| get64(block, ECK_AT + 8 * i) == ck[i])
}

impl LabelConfig {
    fn encode(&self, offset: u64) -> Vec<u8> {
        let mut b = vec![0u8; LABEL_HEADER_BLOCK];
        b[0..8].copy_from_slice(&LABEL_MAGIC.to_le_bytes());
        b[8..16].copy_from_slice(&SPA_VERSION.to_le_bytes());
        b[16..24].copy_from_slice(&self.pool_guid.to_le_bytes());
        b[24..32].copy_from_slice(&self.device_size.to_le_bytes());
        let name = self.name.as_bytes();
        assert!(name.len() <= ZFS_MAX_DATASET_NAME_LEN, "pool name too long");
        b[32..34].copy_from_slice(&u16::try_from(name.len()).expect("<= 255").to_le_bytes());
        b[34..34 + name.len()].copy_from_slice(name);
        seal(&mut b, offset);
        b
    }

    fn decode(b: &[u8], offset: u64) -> Option<Self> {
        if !verify(b, offset) || get64(b, 0) != LABEL_MAGIC || get64(b, 8) != SPA_VERSION {
            return None;
        }
        let len = usize::from(u16::from_le_bytes([b[32], b[33]]));
        if len == 0 || len > ZFS_MAX_DATASET_NAME_LEN {
            return None;
        }
        let name = std::str::from_utf8(&b[34..34 + len]).ok()?.to_owned();
        Some(Self { name, pool_guid: get64(b, 16), device_size: get64(b, 24) })
    }
}

/// Write both labels (headers and empty rings) of a new pool, then flush.
///
/// # Errors
/// Device errors.
pub fn label_init(dev: &mut dyn BlockDevice, cfg: &LabelConfig) -> Result<(), VdevError> {
    let size = dev.size_bytes();
    let empty = vec![0u8; usize::try_from(VDEV_LABEL_SIZE).expect("small")];
    for l in 0..VDEV_LABELS {
        let at = label_offset(l, size);
        dev.write(at, &empty)?;
        dev.write(at, &cfg.encode(at))?;
    }
    dev.flush()
}

/// Read the pool identity from whichever label verifies (front first).
///
/// # Errors
/// `NotAPool` if no label verifies.
pub fn label_read(dev: &mut dyn BlockDevice) -> Result<LabelConfig, ImportError> {
    let size = dev.size_bytes();
    if size < 2 * VDEV_LABEL_SIZE {
        return Err(ImportError::NotAPool);
    }
    let mut buf = vec![0u8; LABEL_HEADER_BLOCK];
    for l in 0..VDEV_LABELS {
        let at = label_offset(l, size);
        if dev.read(at, &mut buf).is_ok() {
            if let Some(cfg) = LabelConfig::decode(&buf, at) {
                if cfg.device_size == size {
                    return Ok(cfg);
                }
            }
        }
    }
    Err(ImportError::NotAPool)
}

/// Call `f(slot offset, slot bytes)` for every readable slot of both rings (one read per
/// ring, no per-slot allocation).
pub fn ring_for_each(dev: &mut dyn BlockDevice, f: &mut dyn FnMut(u64, &[u8])) {
    let size = dev.size_bytes();
    let ring_bytes = usize::try_from(UBERBLOCK_RING_SLOTS * UBERBLOCK_SLOT_SIZE).expect("small");
    let mut ring = vec![0u8; ring_bytes];
    for l in 0..VDEV_LABELS {
        let at = label_offset(l, size) + VDEV_LABEL_HEADER_SIZE;
        if dev.read(at, &mut ring).is_err() {
            continue;
        }
        for (i, slot) in ring.chunks_exact(UBERBLOCK_SLOT_SIZE as usize).enumerate() {
            f(at + i as u64 * UBERBLOCK_SLOT_SIZE, slot);
        }
    }
}
