//! Block devices (vdevs): the only way the engine touches storage. OpenZFS: vdev.c, vdev_disk.c.
//! Called by zio (block reads/writes) and spa (labels, uberblocks, flushes). Implementations:
//! `MemoryDevice` (RAM), `FileDevice` (a file; flush = fdatasync) and, outside this crate, the
//! simulator's faulty disk. Invariants: every offset and length is a multiple of the 512-byte
//! sector and lies inside the device; a write is durable only after a later `flush` returns Ok.

pub mod file;
pub mod label;
pub mod memory;

#[cfg(any(test, feature = "testing"))]
pub mod contract;

pub use file::FileDevice;
pub use memory::MemoryDevice;

use crate::limits::SPA_MINBLOCKSIZE;

/// Errors a block device reports. Each carries the byte offset it concerns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VdevError {
    /// The device failed the I/O (EIO): a latent sector error, a failed write or flush.
    #[error("I/O error at offset {offset:#x}")]
    Io {
        /// Byte offset of the failed request (0 for a flush).
        offset: u64,
    },
    /// The device has no room for the write (a thin-provisioned or full device: ENOSPC).
    #[error("device full at offset {offset:#x}")]
    NoSpace {
        /// Byte offset of the refused write.
        offset: u64,
    },
    /// The request lies outside the device or is not sector aligned: a caller bug or a
    /// corrupt block pointer read from disk.
    #[error("bad request: offset {offset:#x} length {len:#x} on a device of {size:#x} bytes")]
    Range {
        /// Byte offset of the request.
        offset: u64,
        /// Length of the request.
        len: u64,
        /// Device size.
        size: u64,
    },
}

/// A fixed-size device of 512-byte sectors with a volatile write cache.
///
/// `write` may complete into a cache; only `flush` (DKIOCFLUSH) makes every previously
/// completed write durable. Implementations must not reorder a write after a flush that
/// followed it.
pub trait BlockDevice: Send {
    /// Size in bytes, a multiple of 512, fixed at creation.
    fn size_bytes(&self) -> u64;
    /// Read `buf.len()` bytes at `offset` (both sector multiples).
    ///
    /// # Errors
    /// `VdevError::Io` on a failed read, `VdevError::Range` on a bad request.
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), VdevError>;
    /// Write `data` at `offset` (both sector multiples).
    ///
    /// # Errors
    /// `VdevError::Io` or `VdevError::NoSpace` on a failed write, `Range` on a bad request.
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), VdevError>;
    /// Make every completed write durable (DKIOCFLUSH / fdatasync).
    ///
    /// # Errors
    /// `VdevError::Io` when the flush failed: nothing since the previous good flush is
    /// known to be durable.
    fn flush(&mut self) -> Result<(), VdevError>;
}

/// Check that a request is sector aligned and inside a device of `size` bytes.
///
/// # Errors
/// `VdevError::Range` describing the request.
pub fn check_range(offset: u64, len: u64, size: u64) -> Result<(), VdevError> {
    let bad = VdevError::Range { offset, len, size };
    if !offset.is_multiple_of(SPA_MINBLOCKSIZE) || !len.is_multiple_of(SPA_MINBLOCKSIZE) {
        return Err(bad);
    }
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(bad),
    }
}

impl<T: BlockDevice + ?Sized> BlockDevice for Box<T> {
    fn size_bytes(&self) -> u64 {
        (**self).size_bytes()
    }
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), VdevError> {
        (**self).read(offset, buf)
    }
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), VdevError> {
        (**self).write(offset, data)
    }
    fn flush(&mut self) -> Result<(), VdevError> {
        (**self).flush()
    }
}
