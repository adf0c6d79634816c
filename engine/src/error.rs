//! Typed errors at each boundary of the engine, with ZFS's errno meaning in the docs.
//! Every error outside input can cause is one of these; panics are for broken invariants.
//! `ZioError` (block I/O) is wrapped by the higher layers' enums through `From`.

use crate::vdev::VdevError;

/// Errors of block I/O (zio): reading a block pointer back from the device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZioError {
    /// The block's contents do not match its checksum (ECKSUM). No copy was good.
    #[error("checksum error in block at offset {offset:#x} (birth txg {birth_txg})")]
    Checksum {
        /// Byte offset of the (first) copy on the device.
        offset: u64,
        /// Birth txg of the block pointer.
        birth_txg: u64,
    },
    /// The device failed the read (EIO) on every copy.
    #[error("I/O error: {0}")]
    Io(#[from] VdevError),
    /// A block pointer read from disk is malformed (bad size, location off the device).
    #[error("corrupt block pointer: {reason}")]
    BadBlkPtr {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Decompression of a block that passed its checksum failed.
    #[error("decompression failed for block at offset {offset:#x}")]
    Decompress {
        /// Byte offset of the block.
        offset: u64,
    },
}

/// Errors of the DMU: objects and their contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DmuError {
    /// The dataset or snapshot named does not exist (ENOENT).
    #[error("no such dataset: {0}")]
    NoSuchDataset(String),
    /// The object does not exist (ENOENT).
    #[error("no such object {object}")]
    NoSuchObject {
        /// Object number.
        object: u64,
    },
    /// The object number is already allocated (EEXIST).
    #[error("object {object} already exists")]
    ObjectExists {
        /// Object number.
        object: u64,
    },
    /// Object number 0 (the meta-dnode) or beyond DN_MAX_OBJECT (EINVAL).
    #[error("invalid object number {object}")]
    InvalidObject {
        /// Object number.
        object: u64,
    },
    /// Block size not a power of two in 512..=128 KiB, or not changeable now (EINVAL).
    #[error("invalid block size {blocksize}")]
    InvalidBlockSize {
        /// The requested block size.
        blocksize: u64,
    },
    /// Indirect block shift outside the supported range (EINVAL).
    #[error("invalid indirect block shift {indblkshift}")]
    InvalidIndBlkShift {
        /// The requested shift.
        indblkshift: u32,
    },
    /// Object type unknown or not allowed here (EINVAL).
    #[error("invalid object type {ot}")]
    InvalidType {
        /// The DMU object type number.
        ot: u8,
    },
    /// Bonus buffer longer than the dnode can hold (EINVAL / EOVERFLOW).
    #[error("bonus length {len} exceeds the limit {max}")]
    BonusTooLong {
        /// Requested length.
        len: usize,
        /// What this dnode holds.
        max: usize,
    },
    /// offset + length overflows the largest object size (EFBIG).
    #[error("offset {offset:#x} + length {len:#x} overflows the object size limit")]
    OffsetOverflow {
        /// Start offset.
        offset: u64,
        /// Length.
        len: u64,
    },
    /// The dataset is a snapshot and cannot be changed (EROFS).
    #[error("dataset {0} is read-only (a snapshot)")]
    ReadOnly(String),
    /// The pool is out of space (ENOSPC); nothing was changed.
    #[error("out of space")]
    NoSpace,
    /// A block could not be read back (ECKSUM, EIO).
    #[error(transparent)]
    Zio(#[from] ZioError),
    /// The pool is suspended after a write or flush failure (EIO); export and re-import.
    #[error("pool is suspended after an I/O failure")]
    Suspended,
}

/// Errors of the DSL: dataset and snapshot management.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DslError {
    /// The name is not a valid dataset/snapshot name for this pool (EINVAL).
    #[error("invalid name {0:?}")]
    InvalidName(String),
    /// The dataset or snapshot does not exist (ENOENT).
    #[error("no such dataset: {0}")]
    NoSuchDataset(String),
    /// The name is taken (EEXIST).
    #[error("dataset already exists: {0}")]
    Exists(String),
    /// The operation needs a snapshot and there is none (ENOENT for rollback).
    #[error("dataset {0} has no snapshot")]
    NoSnapshot(String),
    /// The dataset is busy: the pool root, or a dataset with a receive in progress (EBUSY).
    #[error("dataset is busy: {0}")]
    Busy(String),
    /// Too many datasets or snapshots (EDQUOT-like named limit).
    #[error("limit reached: {0}")]
    Limit(&'static str),
    /// Out of space (ENOSPC).
    #[error("out of space")]
    NoSpace,
    /// A block could not be read.
    #[error(transparent)]
    Zio(#[from] ZioError),
    /// The pool is suspended.
    #[error("pool is suspended after an I/O failure")]
    Suspended,
}

/// Errors of txg sync and pool-wide operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpaError {
    /// A write or flush failed during sync: the txg did not commit and the pool is
    /// suspended (no later uberblock is written). Export fails; re-import recovers the last
    /// committed txg.
    #[error("pool suspended: {0}")]
    Suspended(VdevError),
    /// A block needed for sync could not be read.
    #[error(transparent)]
    Zio(#[from] ZioError),
    /// The device is too small or too large for a pool, or the name is invalid.
    #[error("cannot create pool: {0}")]
    Create(String),
}

/// Errors of pool import.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// No valid label: the device does not hold a pool (zeroed or garbage).
    #[error("not a pool: no valid label found")]
    NotAPool,
    /// Labels exist but no uberblock has a verifiable tree.
    #[error("no valid uberblock: every candidate failed verification (newest: {reason})")]
    NoValidUberblock {
        /// Why the newest candidate was rejected.
        reason: String,
    },
    /// The requested rewind txg is not available in the uberblock ring.
    #[error("cannot rewind to txg {0}: not in the uberblock ring or its tree does not verify")]
    RewindUnavailable(u64),
    /// The device could not be read at all.
    #[error(transparent)]
    Io(#[from] VdevError),
    /// Intent-log replay could not be committed.
    #[error("intent log replay failed: {0}")]
    Replay(String),
}

/// Errors of stream receive, with ZFS's errno meaning.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    /// A record failed validation (EINVAL).
    #[error("invalid stream at record {record} ({drr_type}): {reason}")]
    Invalid {
        /// Index of the record in the stream (BEGIN = 0).
        record: u64,
        /// Record type name.
        drr_type: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// A record or END checksum mismatch (ECKSUM).
    #[error("checksum mismatch at record {record}")]
    Checksum {
        /// Index of the record.
        record: u64,
    },
    /// The stream ended early (ZFS_ERR_STREAM_TRUNCATED).
    #[error("stream truncated at record {record}")]
    Truncated {
        /// Index of the record being read.
        record: u64,
    },
    /// Bad magic (EINVAL "invalid stream (bad magic number)").
    #[error("invalid stream (bad magic number)")]
    BadMagic,
    /// Feature flags the receiver does not support (ZFS_ERR_UNKNOWN_SEND_STREAM_FEATURE /
    /// ENOTSUP).
    #[error("stream has unsupported feature, feature flags = {features:#x} (unknown flags = {unknown:#x})")]
    UnsupportedFeature {
        /// All feature flags.
        features: u64,
        /// The ones not supported.
        unknown: u64,
    },
    /// Incremental source snapshot not found on the target (ENODEV).
    #[error("most recent snapshot of {0} does not match incremental source")]
    NoSuchFromSnap(String),
    /// The target was modified since its most recent snapshot (ETXTBSY).
    #[error("destination {0} has been modified since most recent snapshot")]
    TargetModified(String),
    /// Target or snapshot exists (EEXIST).
    #[error("destination {0} exists")]
    Exists(String),
    /// Target missing for an incremental (ENOENT).
    #[error("destination {0} does not exist")]
    NoTarget(String),
    /// Payload larger than allowed (ERANGE / E2BIG).
    #[error("record {record}: payload of {len} bytes exceeds the limit")]
    TooLarge {
        /// Index of the record.
        record: u64,
        /// The claimed length.
        len: u64,
    },
    /// Out of space while receiving (ENOSPC); the target is unchanged.
    #[error("out of space")]
    NoSpace,
    /// An I/O or checksum error on the pool while receiving; the target is unchanged.
    #[error("pool error during receive: {0}")]
    Pool(String),
}
