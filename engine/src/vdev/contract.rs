//! BlockDevice conformance suite: the behaviour every vdev must show with faults off.
//! Run against MemoryDevice and FileDevice here and against the simulator's disk in sim's
//! tests, so the simulated disk is checked against the real ones (turmoil-style).

use super::{BlockDevice, VdevError};

/// Size of the devices the suite asks for.
pub const CONTRACT_DEVICE_SIZE: u64 = 64 * 1024;

/// Run every contract check on fresh devices from `make(size_bytes)`. Panics on a violation.
pub fn run(mut make: impl FnMut(u64) -> Box<dyn BlockDevice>) {
    fresh_device_reads_zero(make(CONTRACT_DEVICE_SIZE).as_mut());
    write_then_read_returns_data(make(CONTRACT_DEVICE_SIZE).as_mut());
    rejects_misaligned_and_out_of_range(make(CONTRACT_DEVICE_SIZE).as_mut());
    overwrite_replaces_only_its_sectors(make(CONTRACT_DEVICE_SIZE).as_mut());
}

fn fresh_device_reads_zero(dev: &mut dyn BlockDevice) {
    assert_eq!(dev.size_bytes(), CONTRACT_DEVICE_SIZE);
    let mut buf = vec![0xaa; 4096];
    dev.read(0, &mut buf).expect("read fresh device");
    assert!(buf.iter().all(|&b| b == 0), "fresh device is not zero");
}

fn write_then_read_returns_data(dev: &mut dyn BlockDevice) {
    let data: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 251) as u8).collect();
    dev.write(4096, &data).expect("write");
    let mut buf = vec![0; 8192];
    dev.read(4096, &mut buf).expect("read before flush");
    assert_eq!(buf, data, "read after write (before flush) differs");
    dev.flush().expect("flush");
    dev.read(4096, &mut buf).expect("read after flush");
    assert_eq!(buf, data, "read after flush differs");
    let last = CONTRACT_DEVICE_SIZE - 512;
    dev.write(last, &[1; 512]).expect("write last sector");
    let mut one = [0; 512];
    dev.read(last, &mut one).expect("read last sector");
    assert_eq!(one, [1; 512]);
}

fn rejects_misaligned_and_out_of_range(dev: &mut dyn BlockDevice) {
    let size = dev.size_bytes();
    let mut buf = vec![0; 512];
    assert!(matches!(dev.read(1, &mut buf), Err(VdevError::Range { .. })));
    assert!(matches!(dev.read(size, &mut buf), Err(VdevError::Range { .. })));
    assert!(matches!(dev.write(size - 256, &buf[..256]), Err(VdevError::Range { .. })));
    assert!(matches!(dev.write(u64::MAX - 511, &buf), Err(VdevError::Range { .. })));
    let mut odd = vec![0; 100];
    assert!(matches!(dev.read(0, &mut odd), Err(VdevError::Range { .. })));
}

fn overwrite_replaces_only_its_sectors(dev: &mut dyn BlockDevice) {
    dev.write(0, &[1; 2048]).expect("write");
    dev.write(512, &[2; 512]).expect("overwrite");
    dev.flush().expect("flush");
    let mut buf = vec![0; 2048];
    dev.read(0, &mut buf).expect("read");
    assert!(buf[..512].iter().all(|&b| b == 1));
    assert!(buf[512..1024].iter().all(|&b| b == 2));
    assert!(buf[1024..].iter().all(|&b| b == 1));
}
