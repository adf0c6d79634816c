//! The simulator: a faulty virtual disk with a volatile write cache, seeded workloads run
//! against the engine and the reference model, crashes, crash-state exploration, shrinking,
//! and the `zsim` command line. Depends on engine, oracle and golden; nothing depends on it
//! but `fuzz/`.

pub mod backup;
pub mod disk;
pub mod explore;
pub mod fault;
pub mod fuzz;
pub mod intent;
pub mod lenient;
pub mod main_job;
pub mod overwrite;
pub mod run;
pub mod sched;
pub mod schedule;
pub mod shrink;
pub mod trace;
