//! A miniature of the ZFS storage stack, as the 2005 `dmu.c` describes it, with the OpenZFS
//! send-stream wire format.
//!
//! ```text
//!   dsl   datasets, snapshots, rollback, destroy        (dsl/)
//!   dmu   objsets, objects, read/write/free, send/recv  (dmu/, dnode/)
//!   txg   open / quiescing / syncing                    (txg.rs)
//!   spa   pool: labels, uberblocks, import, sync        (spa/)
//!   zio   COW block I/O, block pointers, checksums      (zio/)
//!   vdev  BlockDevice: read, write, flush (DKIOCFLUSH)  (vdev/)
//! ```
//!
//! Everything outside input can cause is a typed error (`error.rs`); panics mean a broken
//! invariant. No wall clock, no threads, no unseeded randomness: the host passes time and a
//! guid seed in, so a simulator can replay any run.

pub mod dbuf;
pub mod dmu;
pub mod dnode;
pub mod dsl;
pub mod error;
pub mod limits;
pub mod spa;
pub mod stream;
pub mod txg;
pub mod vdev;
pub mod zil;
pub mod zio;

pub use dmu::object::ObjectSpec;
pub use dmu::ObjectInfo;
pub use dsl::DatasetProps;
pub use error::{DmuError, DslError, ImportError, RecvError, SpaError, ZioError};
pub use spa::{DatasetTrees, SnapshotInfo, Spa, SpaConfig, SpaceStats};
pub use vdev::{BlockDevice, FileDevice, MemoryDevice, VdevError};
pub use zio::checksum::ChecksumType;
pub use zio::compress::Compress;
