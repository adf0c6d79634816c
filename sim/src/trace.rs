//! The readable trace of a simulation and its hash: every operation with its outcome and the
//! committed txg, every crash and recovery. Two runs of one seed must give the same hash
//! (design.md property 6); `zsim replay` prints the lines.

use sha2::{Digest, Sha256};
use std::fmt::Write as _;

/// A running trace.
pub struct Trace {
    hasher: Sha256,
    lines: Option<Vec<String>>,
}

impl Trace {
    /// A trace that keeps its lines only when `verbose`.
    #[must_use]
    pub fn new(verbose: bool) -> Self {
        Self { hasher: Sha256::new(), lines: verbose.then(Vec::new) }
    }

    /// Record one line.
    pub fn note(&mut self, line: &str) {
        self.hasher.update(line.as_bytes());
        self.hasher.update(b"\n");
        if let Some(l) = &mut self.lines {
            l.push(line.to_owned());
        }
    }

    /// Record an operation and its outcome.
    pub fn op<T: std::fmt::Debug, E: std::fmt::Display>(
        &mut self,
        i: usize,
        op: &T,
        outcome: &Result<(), E>,
        txg: u64,
    ) {
        let result = match outcome {
            Ok(()) => "ok".to_owned(),
            Err(e) => format!("err {e}"),
        };
        self.note(&format!("#{i} {op:?} -> {result} (synced txg {txg})"));
    }

    /// The lines kept (verbose traces).
    #[must_use]
    pub fn lines(&self) -> &[String] {
        self.lines.as_deref().unwrap_or(&[])
    }

    /// Hex SHA-256 of everything noted.
    #[must_use]
    pub fn hash(&self) -> String {
        let d = self.hasher.clone().finalize();
        d.iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }
}
