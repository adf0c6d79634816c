//! Streams of records: `StreamWriter` (the running Fletcher-4, END checksums, compound
//! streams), `StreamReader` (the kernel's checksum and length rules), `rechecksum` for
//! fuzzers, and `StreamError`. Input: records to write, or untrusted bytes to read. Must hold:
//! every non-BEGIN header carries the running checksum of its substream (§2.2-2.3); the reader
//! checks every length against its limit before allocating, names the failing record, and
//! never panics.

use std::io::{self, Read, Write};

use crate::zio::checksum::{Fletcher4, ZioCksum};

use super::drr::{DrrEnd, Record};
use super::header::{decode_header_in, encode_header, header_checksum, header_drr_type};
use super::{
    drr_type_name, field, ByteOrder, DMU_BACKUP_MAGIC, DRR_BEGIN, DRR_BEGIN_PAYLOAD_MAX_BYTES,
    DRR_CHECKSUM_OFFSET, DRR_END, DRR_HEADER_SIZE, DRR_PAYLOAD_MAX_BYTES,
};

/// Errors of reading a stream, each with the index of the record (BEGIN = 0) and the ZFS
/// meaning: the kernel's EINVAL, ECKSUM, ZFS_ERR_STREAM_TRUNCATED, ERANGE/E2BIG.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// A BEGIN whose magic is neither order of DMU_BACKUP_MAGIC, or a first record that is
    /// not a BEGIN ("invalid stream (bad magic number)", EINVAL).
    #[error("invalid stream (bad magic number) at record {record}")]
    BadMagic {
        /// Record index.
        record: u64,
    },
    /// A non-zero per-record checksum differs from the running Fletcher-4 (ECKSUM).
    #[error("checksum mismatch in the header of record {record}")]
    Checksum {
        /// Record index.
        record: u64,
    },
    /// An END's `drr_checksum` differs from the checksum of its substream (ECKSUM).
    #[error("END record {record}: substream checksum mismatch")]
    EndChecksum {
        /// Record index.
        record: u64,
    },
    /// The stream ends inside a header or payload (ZFS_ERR_STREAM_TRUNCATED).
    #[error("stream truncated in record {record}")]
    Truncated {
        /// Record index.
        record: u64,
    },
    /// `drr_type` ≥ DRR_NUMTYPES (EINVAL).
    #[error("record {record}: invalid record type {drr_type}")]
    InvalidType {
        /// Record index.
        record: u64,
        /// The type found.
        drr_type: u32,
    },
    /// A payload longer than its limit (ERANGE; E2BIG for BEGIN).
    #[error("record {record}: payload of {len} bytes exceeds the limit")]
    TooLarge {
        /// Record index.
        record: u64,
        /// The claimed length.
        len: u64,
    },
    /// The underlying reader failed.
    #[error("record {record}: I/O error: {reason}")]
    Io {
        /// Record index.
        record: u64,
        /// The I/O error text.
        reason: String,
    },
}

impl StreamError {
    /// Index of the record the error is about.
    #[must_use]
    pub fn record(&self) -> u64 {
        match self {
            StreamError::BadMagic { record }
            | StreamError::Checksum { record }
            | StreamError::EndChecksum { record }
            | StreamError::Truncated { record }
            | StreamError::InvalidType { record, .. }
            | StreamError::TooLarge { record, .. }
            | StreamError::Io { record, .. } => *record,
        }
    }
}

/// The payload limit of a record type (§1.4, §4.3).
#[must_use]
pub fn payload_limit(drr_type: u32) -> u64 {
    if drr_type == DRR_BEGIN {
        DRR_BEGIN_PAYLOAD_MAX_BYTES
    } else {
        DRR_PAYLOAD_MAX_BYTES
    }
}

/// Writes records with the running checksum of §2.2-2.3.
/// The state resets at every BEGIN and after every END, so compound streams (§1.6) come
/// out right, including the trailing all-zero END.
pub struct StreamWriter<W: Write> {
    w: W,
    order: ByteOrder,
    cksum: Fletcher4,
    bytes_written: u64,
    records_written: u64,
}

impl<W: Write> StreamWriter<W> {
    /// A writer emitting integers and checksum words in `order`.
    pub fn new(w: W, order: ByteOrder) -> Self {
        StreamWriter { w, order, cksum: Fletcher4::new(), bytes_written: 0, records_written: 0 }
    }

    /// Writes one record: zero-filled header, END's `drr_checksum` filled in (the value
    /// given is ignored), per-record checksum, payload zero-padded to the length the header
    /// calls for (§1.4). Asserts the payload is at most that long and short of it by < 8.
    pub fn write_record(&mut self, rec: &Record) -> io::Result<()> {
        let mut hdr = encode_header(rec, self.order);
        let is_begin = matches!(rec, Record::Begin { .. });
        if is_begin {
            self.cksum = Fletcher4::new();
        }
        if let Record::End(_) = rec {
            // §2.3: the END checksum covers everything of the substream before END.
            hdr[8..40].copy_from_slice(&self.order.cksum_bytes(&self.cksum.finish()));
        }
        let payload = padded_payload(rec);
        self.order.fletcher4_update(&mut self.cksum, &hdr[..DRR_CHECKSUM_OFFSET]);
        if !is_begin {
            let c = self.order.cksum_bytes(&self.cksum.finish());
            hdr[DRR_CHECKSUM_OFFSET..].copy_from_slice(&c);
        }
        self.order.fletcher4_update(&mut self.cksum, &hdr[DRR_CHECKSUM_OFFSET..]);
        self.order.fletcher4_update(&mut self.cksum, &payload);
        self.w.write_all(&hdr)?;
        self.w.write_all(&payload)?;
        self.bytes_written += (DRR_HEADER_SIZE + payload.len()) as u64;
        self.records_written += 1;
        if let Record::End(_) = rec {
            self.cksum = Fletcher4::new();
        }
        Ok(())
    }

    /// Writes an END the way libzfs writes the compound-header END and the final package END
    /// (§1.6): `drr_checksum` = the running state (zero right after another END), toguid 0,
    /// and a zero per-record checksum ("not checked" for every reader).
    pub fn write_compound_end(&mut self) -> io::Result<()> {
        let end = DrrEnd { checksum: self.cksum.finish(), toguid: 0 };
        let hdr = encode_header(&Record::End(end), self.order);
        assert!(hdr[DRR_CHECKSUM_OFFSET..].iter().all(|&b| b == 0), "overlay left zero");
        self.w.write_all(&hdr)?;
        self.bytes_written += DRR_HEADER_SIZE as u64;
        self.records_written += 1;
        self.cksum = Fletcher4::new();
        Ok(())
    }

    /// Bytes written so far.
    #[must_use]
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// Records written so far.
    #[must_use]
    pub fn records_written(&self) -> u64 {
        self.records_written
    }

    /// The running checksum of the current substream.
    #[must_use]
    pub fn running_checksum(&self) -> ZioCksum {
        self.cksum.finish()
    }

    /// Flushes and returns the inner writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.w.flush()?;
        Ok(self.w)
    }
}

/// The payload of `rec` zero-padded to the length its header calls for.
fn padded_payload(rec: &Record) -> std::borrow::Cow<'_, [u8]> {
    let data = rec.payload();
    let need = rec.payload_len_from_header();
    let have = data.len() as u64;
    assert!(have <= need, "{} payload {have} > {need}", drr_type_name(rec.drr_type()));
    assert!(need - have < 8, "{} payload {have} short of {need}", drr_type_name(rec.drr_type()));
    if have == need {
        std::borrow::Cow::Borrowed(data)
    } else {
        let mut v = data.to_vec();
        v.resize(need as usize, 0);
        std::borrow::Cow::Owned(v)
    }
}

/// Reads records, verifying checksums by the kernel's rules (§2.3): byte order from the
/// first BEGIN's magic, every integer field swapped for opposite-endian streams, payloads
/// left as on the wire (see `is_byteswapped`). Continues after END (compound streams): the
/// running checksum restarts at each BEGIN. After an error, every call returns that error.
pub struct StreamReader<R: Read> {
    r: R,
    order: Option<ByteOrder>,
    cksum: Fletcher4,
    records_read: u64,
    bytes_read: u64,
    failed: Option<StreamError>,
}

impl<R: Read> StreamReader<R> {
    /// A reader over `r`; the byte order is learned from the first record.
    pub fn new(r: R) -> Self {
        StreamReader {
            r,
            order: None,
            cksum: Fletcher4::new(),
            records_read: 0,
            bytes_read: 0,
            failed: None,
        }
    }

    /// True if the stream is in the opposite byte order of this host (known after the first
    /// record): the receiver must byteswap non-raw payloads by object type (§3.9).
    #[must_use]
    pub fn is_byteswapped(&self) -> bool {
        self.order.is_some_and(|o| o != ByteOrder::HOST)
    }

    /// The stream's byte order, once known.
    #[must_use]
    pub fn byte_order(&self) -> Option<ByteOrder> {
        self.order
    }

    /// Records returned so far.
    #[must_use]
    pub fn records_read(&self) -> u64 {
        self.records_read
    }

    /// Bytes consumed so far.
    #[must_use]
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// The next record; `Ok(None)` at a clean end of input (on a record boundary).
    pub fn next_record(&mut self) -> Result<Option<Record>, StreamError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let r = self.read_record();
        if let Err(e) = &r {
            self.failed = Some(e.clone());
        }
        r
    }

    fn read_record(&mut self) -> Result<Option<Record>, StreamError> {
        let record = self.records_read;
        let mut hdr = [0u8; DRR_HEADER_SIZE];
        let got = read_full(&mut self.r, &mut hdr).map_err(|e| io_err(record, &e))?;
        self.bytes_read += got as u64;
        if got == 0 {
            return Ok(None);
        }
        if got < DRR_HEADER_SIZE {
            return Err(StreamError::Truncated { record });
        }
        let order = self.header_order(&hdr, record)?;
        let drr_type = header_drr_type(&hdr, order);
        let before = self.check_header_checksum(&hdr, order, drr_type, record)?;
        let Some(dec) = decode_header_in(&hdr, order) else {
            return Err(StreamError::InvalidType { record, drr_type });
        };
        if let Record::End(end) = &dec.record {
            if end.checksum != before {
                return Err(StreamError::EndChecksum { record });
            }
        }
        let mut rec = dec.record;
        self.read_payload(&mut rec, dec.payload_len, order, record)?;
        if drr_type == DRR_END {
            self.cksum = Fletcher4::new();
        }
        self.records_read += 1;
        Ok(Some(rec))
    }

    /// The byte order, learned from the first record; every BEGIN's magic is checked.
    fn header_order(
        &mut self,
        hdr: &[u8; DRR_HEADER_SIZE],
        record: u64,
    ) -> Result<ByteOrder, StreamError> {
        let order = match self.order {
            Some(o) => o,
            None => {
                let o = ByteOrder::from_magic(hdr).ok_or(StreamError::BadMagic { record })?;
                if header_drr_type(hdr, o) != DRR_BEGIN {
                    return Err(StreamError::BadMagic { record });
                }
                self.order = Some(o);
                o
            }
        };
        let is_begin = header_drr_type(hdr, order) == DRR_BEGIN;
        if is_begin && order.u64(field(hdr, 8)) != DMU_BACKUP_MAGIC {
            return Err(StreamError::BadMagic { record });
        }
        Ok(order)
    }

    /// Folds the header into the running checksum, verifying the per-record checksum of
    /// non-BEGIN records (§2.3). Returns the state before the header (END's reference).
    fn check_header_checksum(
        &mut self,
        hdr: &[u8; DRR_HEADER_SIZE],
        order: ByteOrder,
        drr_type: u32,
        record: u64,
    ) -> Result<ZioCksum, StreamError> {
        if drr_type == DRR_BEGIN {
            self.cksum = Fletcher4::new();
            order.fletcher4_update(&mut self.cksum, hdr);
            return Ok([0; 4]);
        }
        let before = self.cksum.finish();
        order.fletcher4_update(&mut self.cksum, &hdr[..DRR_CHECKSUM_OFFSET]);
        let stored = header_checksum(hdr, order);
        if stored != [0; 4] && stored != self.cksum.finish() {
            return Err(StreamError::Checksum { record });
        }
        order.fletcher4_update(&mut self.cksum, &hdr[DRR_CHECKSUM_OFFSET..]);
        Ok(before)
    }

    fn read_payload(
        &mut self,
        rec: &mut Record,
        len: u64,
        order: ByteOrder,
        record: u64,
    ) -> Result<(), StreamError> {
        if len > payload_limit(rec.drr_type()) {
            return Err(StreamError::TooLarge { record, len });
        }
        let Some(buf) = rec.payload_mut() else {
            assert_eq!(len, 0, "header-only record with a payload");
            return Ok(());
        };
        let len = usize::try_from(len).map_err(|_| StreamError::TooLarge { record, len })?;
        // Grow the buffer as the bytes arrive: a truncated record claiming a large payload
        // costs what the stream holds, not what it claims.
        buf.clear();
        while buf.len() < len {
            let at = buf.len();
            buf.resize(at + (len - at).min(PAYLOAD_READ_CHUNK), 0);
            let got = read_full(&mut self.r, &mut buf[at..]).map_err(|e| io_err(record, &e))?;
            self.bytes_read += got as u64;
            if at + got < buf.len() {
                return Err(StreamError::Truncated { record });
            }
        }
        order.fletcher4_update(&mut self.cksum, buf);
        Ok(())
    }
}

/// Payload bytes read (and allocated) at a time.
const PAYLOAD_READ_CHUNK: usize = 128 * 1024;

fn io_err(record: u64, e: &io::Error) -> StreamError {
    StreamError::Io { record, reason: e.to_string() }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
pub(crate) fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Recomputes every per-record checksum and END checksum of `stream` in place of the stored
/// ones (§2.2-2.3), keeping every other byte. For fuzzers: mutate, then re-checksum, so the
/// mutation reaches the record validators. The state resets at BEGIN and after END, as in
/// StreamWriter. Fails on framing errors (bad magic, bad type, oversize or cut payload).
pub fn rechecksum(stream: &[u8]) -> Result<Vec<u8>, StreamError> {
    let mut out = stream.to_vec();
    let mut pos = 0usize;
    let mut record = 0u64;
    let mut cksum = Fletcher4::new();
    let mut order = None;
    while pos < out.len() {
        let Some(hdr_bytes) = out.get(pos..pos + DRR_HEADER_SIZE) else {
            return Err(StreamError::Truncated { record });
        };
        let mut hdr = [0u8; DRR_HEADER_SIZE];
        hdr.copy_from_slice(hdr_bytes);
        let o = match order {
            Some(o) => o,
            None => ByteOrder::from_magic(&hdr).ok_or(StreamError::BadMagic { record })?,
        };
        order = Some(o);
        let drr_type = header_drr_type(&hdr, o);
        let dec = decode_header_in(&hdr, o).ok_or(StreamError::InvalidType { record, drr_type })?;
        if dec.payload_len > payload_limit(drr_type) {
            return Err(StreamError::TooLarge { record, len: dec.payload_len });
        }
        let plen = dec.payload_len as usize;
        let end = pos + DRR_HEADER_SIZE + plen;
        if end > out.len() {
            return Err(StreamError::Truncated { record });
        }
        rechecksum_header(&mut hdr, o, drr_type, &mut cksum);
        out[pos..pos + DRR_HEADER_SIZE].copy_from_slice(&hdr);
        o.fletcher4_update(&mut cksum, &out[pos + DRR_HEADER_SIZE..end]);
        if drr_type == DRR_END {
            cksum = Fletcher4::new();
        }
        pos = end;
        record += 1;
    }
    Ok(out)
}

/// Sets the checksums of one header from the running state and folds the header in.
fn rechecksum_header(
    hdr: &mut [u8; DRR_HEADER_SIZE],
    order: ByteOrder,
    drr_type: u32,
    cksum: &mut Fletcher4,
) {
    if drr_type == DRR_BEGIN {
        *cksum = Fletcher4::new();
        order.fletcher4_update(cksum, hdr);
        return;
    }
    if drr_type == DRR_END {
        hdr[8..40].copy_from_slice(&order.cksum_bytes(&cksum.finish()));
    }
    order.fletcher4_update(cksum, &hdr[..DRR_CHECKSUM_OFFSET]);
    hdr[DRR_CHECKSUM_OFFSET..].copy_from_slice(&order.cksum_bytes(&cksum.finish()));
    order.fletcher4_update(cksum, &hdr[DRR_CHECKSUM_OFFSET..]);
}
