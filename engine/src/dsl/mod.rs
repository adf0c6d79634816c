//! The DSL: datasets (filesystems) and their snapshots, names, and the pool directory that
//! the MOS persists. OpenZFS: dsl_dir.c, dsl_dataset.c, dsl_destroy.c, dsl_pool.c.

pub mod dataset;
pub mod destroy;
pub mod name;
pub mod pool;

pub use dataset::{DatasetProps, DslDataset, DslSnapshot};
pub use pool::DslPool;
