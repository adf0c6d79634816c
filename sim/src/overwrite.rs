//! Which sectors a disk has written since a point in its history: a serial per write and,
//! per sector, the serial of the newest write that landed there. The unrestricted profile
//! uses it to tell the integrity walk which copies of an older tree a rewind import may
//! legitimately find overwritten (the engine reused their space after the txg it rewound
//! to committed). Part of `disk`; nothing else writes it.

use std::collections::BTreeSet;

use crate::fault::SectorRange;

/// Per-sector write serials.
#[derive(Clone, Debug)]
pub struct WriteSerials {
    /// Serial of the newest write accepted (0: none yet).
    now: u64,
    /// Serial of the newest write to each sector (0: never written in this run).
    last: Vec<u64>,
}

impl WriteSerials {
    /// No writes yet on a disk of `sectors` sectors.
    #[must_use]
    pub fn new(sectors: usize) -> Self {
        Self { now: 0, last: vec![0; sectors] }
    }

    /// A write landed on `range` (where it really landed, for a misdirected write).
    pub fn note(&mut self, range: SectorRange) {
        self.now += 1;
        let (start, end) = (usize::try_from(range.start), usize::try_from(range.end()));
        let (Ok(start), Ok(end)) = (start, end) else { panic!("sector index fits usize") };
        assert!(end <= self.last.len(), "write past the disk: {end} > {}", self.last.len());
        self.last[start..end].fill(self.now);
    }

    /// The serial of the newest write so far.
    #[must_use]
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Sectors written after the write with serial `serial`.
    #[must_use]
    pub fn since(&self, serial: u64) -> BTreeSet<u64> {
        (0u64..).zip(&self.last).filter(|(_, &s)| s > serial).map(|(i, _)| i).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sectors_written_after_the_serial_are_listed() {
        let mut w = WriteSerials::new(16);
        w.note(SectorRange { start: 0, count: 4 });
        let mark = w.now();
        w.note(SectorRange { start: 2, count: 3 });
        w.note(SectorRange { start: 10, count: 1 });
        assert_eq!(w.since(mark), [2, 3, 4, 10].into_iter().collect());
        assert_eq!(w.since(0).len(), 6);
        assert!(w.since(w.now()).is_empty());
    }
}
