//! Named limits of the engine and the compile-time facts that tie them together.
//! OpenZFS: include/sys/spa.h, dnode.h, txg.h. Every other module takes its numbers from here.

/// log2 of the sector size: the unit of allocation and of device I/O.
pub const SPA_MINBLOCKSHIFT: u32 = 9;
/// The sector size, 512 bytes.
pub const SPA_MINBLOCKSIZE: u64 = 1 << SPA_MINBLOCKSHIFT;
/// log2 of the largest data block size.
pub const SPA_MAXBLOCKSHIFT: u32 = 17;
/// The largest data block size, 128 KiB (SPA_OLD_MAXBLOCKSIZE).
pub const SPA_MAXBLOCKSIZE: u64 = 1 << SPA_MAXBLOCKSHIFT;

/// Bytes of one dnode slot (DNODE_SIZE).
pub const DNODE_SIZE: u64 = 512;
/// log2 of a dnode block (DNODE_BLOCK_SHIFT): 16 KiB, 32 dnodes.
pub const DNODE_BLOCK_SHIFT: u32 = 14;
/// Bytes of a dnode block.
pub const DNODE_BLOCK_SIZE: u64 = 1 << DNODE_BLOCK_SHIFT;
/// Dnodes per dnode block (DNODES_PER_BLOCK).
pub const DNODES_PER_BLOCK: u64 = DNODE_BLOCK_SIZE / DNODE_SIZE;
/// Largest object number + 1 (DN_MAX_OBJECT).
pub const DN_MAX_OBJECT: u64 = 1 << 48;
/// Block pointers a dnode can hold (DN_MAX_NBLKPTR).
pub const DN_MAX_NBLKPTR: usize = 3;
/// Bytes of an on-disk block pointer (blkptr_t).
pub const BLKPTR_SIZE: u64 = 128;
/// Bonus bytes of a one-slot dnode with one block pointer (DN_MAX_BONUSLEN for 512 B dnodes).
pub const DN_MAX_BONUSLEN: usize = 320;
/// Fixed header of a dnode before its block pointers (DNODE_CORE_SIZE).
pub const DNODE_CORE_SIZE: usize = 64;
/// Deepest block tree (DN_MAX_LEVELS).
pub const DN_MAX_LEVELS: u8 = 12;
/// Default log2 of indirect block size: 16 KiB = 128 block pointers.
pub const DN_DFL_INDBLKSHIFT: u32 = 14;
/// Smallest and largest indirect block shifts an object may use.
pub const DN_MIN_INDBLKSHIFT: u32 = 12;
/// Largest indirect block shift.
pub const DN_MAX_INDBLKSHIFT: u32 = 17;
/// Length meaning "to the end of the object" (a truncation) in free_range and FREE records.
pub const DMU_OBJECT_END: u64 = u64::MAX;
/// Largest byte offset + length the engine accepts for reads and writes: 2^62 bytes.
pub const DMU_MAX_OFFSET: u64 = 1 << 62;
/// Largest single read that allocates its result (`Spa::read`; `read_into` has no limit):
/// a bigger request gets `OffsetOverflow` instead of an allocation failure (DMU_MAX_ACCESS).
pub const DMU_MAX_ACCESS: u64 = 256 << 20;
/// Largest payload an embedded block pointer holds (BPE_PAYLOAD_SIZE).
pub const BPE_PAYLOAD_SIZE: usize = 112;

/// Concurrent txg states (open, quiescing, syncing) rounded up to a power of two.
pub const TXG_SIZE: usize = 4;
/// Mask for per-txg slots.
pub const TXG_MASK: u64 = TXG_SIZE as u64 - 1;
/// Txgs a freed block waits before it may be reused (TXG_DEFER_SIZE), so that the uberblocks
/// of the last `TXG_DEFER_SIZE` txgs keep intact trees (rewind, fallback after a bad write).
pub const TXG_DEFER_SIZE: u64 = 3;
/// First txg of a new pool (TXG_INITIAL).
pub const TXG_INITIAL: u64 = 4;

/// Bytes of one label (front and back of the device each hold one).
pub const VDEV_LABEL_SIZE: u64 = 128 * 1024;
/// Bytes of the label header (pool config) at the start of each label.
pub const VDEV_LABEL_HEADER_SIZE: u64 = 8 * 1024;
/// Bytes of one uberblock slot.
pub const UBERBLOCK_SLOT_SIZE: u64 = 1024;
/// Uberblock slots per label (the ring).
pub const UBERBLOCK_RING_SLOTS: u64 =
    (VDEV_LABEL_SIZE - VDEV_LABEL_HEADER_SIZE) / UBERBLOCK_SLOT_SIZE;
/// Labels per device (one at the front, one at the back).
pub const VDEV_LABELS: u64 = 2;
/// Smallest device a pool can live on: labels plus 1 MiB of allocatable space.
pub const SPA_MINDEVSIZE: u64 = VDEV_LABELS * VDEV_LABEL_SIZE + (1 << 20);
/// Largest device: 2^48 sectors.
pub const SPA_MAXDEVSIZE: u64 = 1 << 57;
/// Bytes kept free for syncing (metadata COW, MOS rewrite) so a txg sync never runs out.
/// User writes get ENOSPC once free space would drop below this (spa_slop_shift in spirit).
pub const SPA_SLOP_MIN_BYTES: u64 = 512 * 1024;
/// Share of the pool (as a shift) kept as slop: 1/32.
pub const SPA_SLOP_SHIFT: u32 = 5;

/// Longest dataset or snapshot name, including the pool name (ZFS_MAX_DATASET_NAME_LEN - 1).
pub const ZFS_MAX_DATASET_NAME_LEN: usize = 255;
/// Largest number of datasets (filesystems) in one pool.
pub const SPA_MAX_DATASETS: usize = 4096;
/// Largest number of snapshots of one dataset.
pub const DSL_MAX_SNAPSHOTS: usize = 4096;

const _: () = assert!(TXG_SIZE.is_power_of_two());
const _: () = assert!(TXG_SIZE >= 3);
const _: () = assert!(DNODES_PER_BLOCK == 32);
const _: () =
    assert!(DNODE_CORE_SIZE as u64 + DN_MAX_NBLKPTR as u64 * BLKPTR_SIZE + 64 == DNODE_SIZE);
const _: () =
    assert!(DNODE_CORE_SIZE + BLKPTR_SIZE as usize + DN_MAX_BONUSLEN == DNODE_SIZE as usize);
const _: () = assert!(UBERBLOCK_RING_SLOTS >= 2 * TXG_DEFER_SIZE + 2);
const _: () = assert!(VDEV_LABEL_SIZE.is_multiple_of(SPA_MINBLOCKSIZE));
const _: () = assert!(SPA_MAXBLOCKSIZE.is_power_of_two());
