//! The file vdev: a regular file of fixed size; flush = `File::sync_data` (fdatasync).
//! OpenZFS: vdev_file.c. Used by `zsim` when a pool lives in a file, and by the contract
//! tests. A file shorter than the requested size is extended with zeros at creation only.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{check_range, BlockDevice, VdevError};
use crate::limits::SPA_MINBLOCKSIZE;

/// A device backed by a file.
#[derive(Debug)]
pub struct FileDevice {
    file: File,
    size: u64,
}

impl FileDevice {
    /// Create (or truncate) `path` as a zero-filled device of `size_bytes`.
    ///
    /// # Errors
    /// Any I/O error from creating or sizing the file.
    pub fn create(path: &Path, size_bytes: u64) -> io::Result<Self> {
        let size = size_bytes - size_bytes % SPA_MINBLOCKSIZE;
        let file =
            OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path)?;
        file.set_len(size)?;
        Ok(Self { file, size })
    }

    /// Open an existing file as a device; its size is the file's length rounded down.
    ///
    /// # Errors
    /// Any I/O error from opening the file.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let len = file.metadata()?.len();
        Ok(Self { file, size: len - len % SPA_MINBLOCKSIZE })
    }
}

impl BlockDevice for FileDevice {
    fn size_bytes(&self) -> u64 {
        self.size
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), VdevError> {
        check_range(offset, buf.len() as u64, self.size)?;
        self.file.read_exact_at(buf, offset).map_err(|_| VdevError::Io { offset })
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), VdevError> {
        check_range(offset, data.len() as u64, self.size)?;
        self.file.write_all_at(data, offset).map_err(|e| match e.raw_os_error() {
            Some(28) => VdevError::NoSpace { offset },
            _ => VdevError::Io { offset },
        })
    }

    fn flush(&mut self) -> Result<(), VdevError> {
        self.file.sync_data().map_err(|_| VdevError::Io { offset: 0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_device_passes_contract() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut n = 0;
        crate::vdev::contract::run(|size| {
            n += 1;
            let path = dir.path().join(format!("dev{n}"));
            Box::new(FileDevice::create(&path, size).expect("create file device"))
        });
    }

    #[test]
    fn file_device_reopens_with_same_contents() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dev");
        let mut dev = FileDevice::create(&path, 4096).expect("create");
        dev.write(512, &[7u8; 512]).expect("write");
        dev.flush().expect("flush");
        drop(dev);
        let mut dev = FileDevice::open(&path).expect("open");
        let mut buf = [0u8; 512];
        dev.read(512, &mut buf).expect("read");
        assert_eq!(buf, [7u8; 512]);
        assert_eq!(dev.size_bytes(), 4096);
    }
}
