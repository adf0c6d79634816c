//! The RAM vdev: a `Vec<u8>` behind the `BlockDevice` trait. OpenZFS: no counterpart (ztest
//! uses files). Used by tests, benchmarks and `zsim` on the built-in in-memory disk. It has no
//! volatile cache: every write is durable at once, and flush only counts.

use super::{check_range, BlockDevice, VdevError};
use crate::limits::SPA_MINBLOCKSIZE;

/// An in-memory device whose writes are durable immediately.
#[derive(Debug, Clone)]
pub struct MemoryDevice {
    data: Vec<u8>,
    /// Number of flushes issued, for tests and benchmarks that count disk commands.
    pub flushes: u64,
    /// Number of writes issued.
    pub writes: u64,
}

impl MemoryDevice {
    /// A zero-filled device of `size_bytes` (rounded down to a sector multiple).
    #[must_use]
    pub fn new(size_bytes: u64) -> Self {
        let size = size_bytes - size_bytes % SPA_MINBLOCKSIZE;
        let len = usize::try_from(size).expect("invariant: device size fits in memory");
        Self { data: vec![0; len], flushes: 0, writes: 0 }
    }

    /// A device holding a copy of `image` (its length must be a sector multiple).
    #[must_use]
    pub fn from_image(image: Vec<u8>) -> Self {
        assert_eq!(image.len() as u64 % SPA_MINBLOCKSIZE, 0, "image not sector aligned");
        Self { data: image, flushes: 0, writes: 0 }
    }

    /// The bytes of the device.
    #[must_use]
    pub fn image(&self) -> &[u8] {
        &self.data
    }

    /// Mutable bytes of the device, to damage it behind the engine's back in tests.
    pub fn image_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }
}

fn span(offset: u64, len: usize) -> std::ops::Range<usize> {
    let start = usize::try_from(offset).expect("invariant: checked offset fits usize");
    start..start + len
}

impl BlockDevice for MemoryDevice {
    fn size_bytes(&self) -> u64 {
        self.data.len() as u64
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), VdevError> {
        check_range(offset, buf.len() as u64, self.size_bytes())?;
        buf.copy_from_slice(&self.data[span(offset, buf.len())]);
        Ok(())
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), VdevError> {
        check_range(offset, data.len() as u64, self.size_bytes())?;
        self.data[span(offset, data.len())].copy_from_slice(data);
        self.writes += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), VdevError> {
        self.flushes += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_device_passes_contract() {
        crate::vdev::contract::run(|size| Box::new(MemoryDevice::new(size)));
    }
}
