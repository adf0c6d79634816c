//! Crash-state exploration (`zsim explore SCENARIO`): replay a golden scenario on a
//! recording disk, then for every disk write and flush, crash there and import every
//! combination of the cached writes (all subsets when few, a seeded sample beyond a bound),
//! checking durability and integrity. In progress: see issue 4.

use std::process::ExitCode;

/// Explore the crash states of scenario `name`.
///
/// # Errors
/// Unknown scenario or an internal failure.
pub fn cmd_explore(name: &str, seed: u64) -> anyhow::Result<ExitCode> {
    let _ = seed;
    golden::about(name)
        .ok_or_else(|| anyhow::anyhow!("unknown scenario {name:?}; see zsim explore --list"))?;
    anyhow::bail!("zsim explore is not built yet (issue 4)")
}
