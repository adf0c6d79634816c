//! The readable trace of a simulation and its hash: every operation with the client that ran
//! it, the virtual time, the txg it went into and the txg syncing meanwhile, every sync phase,
//! every crash and recovery. Two runs of one seed must give the same hash (design.md property
//! 6); `zsim replay` prints the lines. Written by run.rs only; nothing here reads the engine.

use sha2::{Digest, Sha256};
use std::time::Duration;

/// Where an operation ran: who, when, and the txg state it saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpContext {
    /// Client task index.
    pub client: usize,
    /// Virtual time.
    pub at: Duration,
    /// The open txg the operation's changes went into.
    pub open_txg: u64,
    /// The txg syncing while it ran, if any.
    pub syncing_txg: Option<u64>,
    /// The newest committed txg.
    pub synced_txg: u64,
}

/// A running trace.
pub struct Trace {
    hasher: Sha256,
    lines: Option<Vec<String>>,
    count: u64,
}

impl Trace {
    /// A trace that keeps its lines only when `verbose`.
    #[must_use]
    pub fn new(verbose: bool) -> Self {
        Self { hasher: Sha256::new(), lines: verbose.then(Vec::new), count: 0 }
    }

    /// Record one line.
    pub fn note(&mut self, line: &str) {
        assert!(!line.contains('\n'), "trace lines are single lines: {line:?}");
        self.hasher.update(line.as_bytes());
        self.hasher.update(b"\n");
        self.count += 1;
        if let Some(l) = &mut self.lines {
            l.push(line.to_owned());
        }
    }

    /// Keep a line for the reader without hashing it (verbose-only details such as the
    /// disk's fault events, which a non-verbose run does not collect).
    pub fn detail(&mut self, line: &str) {
        if let Some(l) = &mut self.lines {
            l.push(format!("  | {line}"));
        }
    }

    /// True when lines are kept.
    #[must_use]
    pub fn is_verbose(&self) -> bool {
        self.lines.is_some()
    }

    /// Record one line stamped with virtual time.
    pub fn at(&mut self, at: Duration, line: &str) {
        self.note(&format!("{} {line}", stamp(at)));
    }

    /// Record operation `i` and its outcome (`ok`, or what the engine answered).
    pub fn op<T: std::fmt::Debug>(&mut self, i: usize, op: &T, ctx: &OpContext, outcome: &str) {
        let syncing = ctx.syncing_txg.map_or_else(|| "-".to_owned(), |t| t.to_string());
        self.note(&format!(
            "{} #{i} c{} open {} syncing {syncing} synced {}: {op:?} -> {outcome}",
            stamp(ctx.at),
            ctx.client,
            ctx.open_txg,
            ctx.synced_txg
        ));
    }

    /// Lines recorded so far (kept or not).
    #[must_use]
    pub fn len(&self) -> u64 {
        self.count
    }

    /// True before the first line.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The lines kept (verbose traces).
    #[must_use]
    pub fn lines(&self) -> &[String] {
        self.lines.as_deref().unwrap_or(&[])
    }

    /// Hex SHA-256 of everything noted.
    #[must_use]
    pub fn hash(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }
}

/// Virtual time as `t=SECONDS.MICROS`.
fn stamp(at: Duration) -> String {
    format!("t={}.{:06}", at.as_secs(), at.subsec_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_covers_every_line_and_only_verbose_keeps_them() {
        let ctx = OpContext {
            client: 1,
            at: Duration::from_millis(1500),
            open_txg: 7,
            syncing_txg: Some(6),
            synced_txg: 5,
        };
        let mut a = Trace::new(true);
        let mut b = Trace::new(false);
        for t in [&mut a, &mut b] {
            t.op(3, &"Write", &ctx, "ok");
            t.at(Duration::from_millis(2), "crash");
        }
        assert_eq!(a.hash(), b.hash());
        assert_eq!(a.len(), 2);
        assert!(b.lines().is_empty());
        assert_eq!(a.lines()[0], "t=1.500000 #3 c1 open 7 syncing 6 synced 5: \"Write\" -> ok");
        b.note("more");
        assert_ne!(a.hash(), b.hash());
    }
}
