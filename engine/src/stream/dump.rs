//! `zstream dump`: the exact text OpenZFS 2.3 prints for a send stream, quirks included.
//! OpenZFS: cmd/zstream/zstream_dump.c (read_hdr, print_block, zstream_do_dump). Spec:
//! zfs-send-stream.md §5. Used by `zsim dump` and golden tests; reads with zstream's own loop,
//! not StreamReader, because zstream differs from the kernel: it compares stored per-record
//! checksums without byteswapping them, stops at a bad header, counts a rejected header's
//! bytes, and reads an OBJECT payload only if bonuslen > 0. It emulates a little-endian host.
//! Invariants: never panics and never buffers more than DUMP_BUF_MAX_BYTES, whatever the input.

use std::io::{self, Read, Write};

use crate::stream::nvlist;
use crate::stream::record::{
    decode_header_in, dmu_get_featureflags, dmu_get_stream_hdrtype, read_full, roundup8_u32,
    ByteOrder, DrrBegin, DrrObject, DrrSpill, DrrWrite, DrrWriteEmbedded, Record,
    DMU_BACKUP_FEATURE_RAW, DMU_BACKUP_MAGIC, DRR_BEGIN, DRR_BEGIN_PAYLOAD_MAX_BYTES,
    DRR_CHECKSUM_OFFSET, DRR_END, DRR_FREE, DRR_FREEOBJECTS, DRR_HEADER_SIZE, DRR_NUMTYPES,
    DRR_OBJECT, DRR_SPILL, DRR_WRITE, DRR_WRITE_BYREF, DRR_WRITE_EMBEDDED,
};
use crate::zio::checksum::{Fletcher4, ZioCksum};

/// Command-line options of `zstream dump`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DumpOptions {
    /// Number of `-v`: 0 = summary only, 1 = one line per record, 2 = plus checksums.
    pub verbose: u8,
    /// `-d`: hex dump of payloads; implies verbose 2.
    pub dump_payload: bool,
    /// `-C`: no checksum computation or comparison.
    pub no_checksum: bool,
}

/// zstream's payload buffer (SPA_MAXBLOCKSIZE): larger payloads are streamed through,
/// checksummed but not kept (zstream itself would overrun its buffer).
const DUMP_BUF_MAX_BYTES: u64 = 16 << 20;
/// Bytes per hex-dump line (BYTES_PER_LINE).
const BYTES_PER_LINE: usize = 16;
/// Bytes per hex-dump group (DUMP_GROUPING).
const DUMP_GROUPING: usize = 4;
/// Column where the ASCII part of a hex-dump line starts.
const ASCII_START: usize = BYTES_PER_LINE * 3 + BYTES_PER_LINE / DUMP_GROUPING + 2;
/// Chunk size for streaming oversized payloads (a multiple of 4, so Fletcher-4 is unchanged).
const DISCARD_CHUNK_BYTES: usize = 1 << 20;
/// What `perror` appends after a failed nvlist unpack (errno left by stdio setup).
const PERROR_SUFFIX: &str = "Inappropriate ioctl for device";

const _: () = assert!(ASCII_START == 54);
const _: () = assert!(DISCARD_CHUNK_BYTES.is_multiple_of(4));
const _: () = assert!(DUMP_BUF_MAX_BYTES <= DRR_BEGIN_PAYLOAD_MAX_BYTES);

/// Runs `zstream dump` over `input`, writing its stdout to `out` and stderr to `err`.
/// Returns the exit status zstream would return (0, or 1 for a bad magic or record type).
/// `Err` only if writing to `out`/`err` fails; read errors end the stream like EOF does.
pub fn dump(
    input: &mut dyn Read,
    opts: &DumpOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<i32> {
    Ok(dump_checked(input, opts, out, err)?.status)
}

/// What a dump saw besides its text: zstream's exit status, and the damage zstream prints
/// but does not count in its status (`zsim dump --strict` turns that into a failure).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DumpOutcome {
    /// The exit status zstream would return.
    pub status: i32,
    /// Record-header and END checksums that did not match (0 with `-C`).
    pub checksum_errors: u64,
    /// The input ended inside a record, or after a record other than END.
    pub truncated: bool,
}

/// `dump`, also returning the damage seen.
///
/// # Errors
/// Only if writing to `out`/`err` fails.
pub fn dump_checked(
    input: &mut dyn Read,
    opts: &DumpOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<DumpOutcome> {
    let mut d = Dumper::new(input, opts, out, err);
    let status = match d.run()? {
        Some(status) => status,
        None => {
            d.summary()?;
            0
        }
    };
    Ok(DumpOutcome {
        status,
        checksum_errors: d.checksum_errors,
        truncated: d.short_read || !d.last_was_end,
    })
}

struct Dumper<'a> {
    input: &'a mut dyn Read,
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
    verbose: bool,
    very_verbose: bool,
    dump: bool,
    do_cksum: bool,
    byteswap: bool,
    zc: Fletcher4,
    pcksum: ZioCksum,
    total_stream_len: u64,
    record_count: [u64; DRR_NUMTYPES as usize],
    byte_count: [u64; DRR_NUMTYPES as usize],
    total_records: u64,
    total_payload_size: u64,
    total_overhead_size: u64,
    buf: Vec<u8>,
    /// Checksum mismatches seen (record headers and END).
    checksum_errors: u64,
    /// A read ended part way through a header or payload.
    short_read: bool,
    /// The last record read was an END.
    last_was_end: bool,
}

impl<'a> Dumper<'a> {
    fn new(
        input: &'a mut dyn Read,
        opts: &DumpOptions,
        out: &'a mut dyn Write,
        err: &'a mut dyn Write,
    ) -> Self {
        Dumper {
            input,
            out,
            err,
            verbose: opts.verbose >= 1 || opts.dump_payload,
            very_verbose: opts.verbose >= 2 || opts.dump_payload,
            dump: opts.dump_payload,
            do_cksum: !opts.no_checksum,
            byteswap: false,
            zc: Fletcher4::new(),
            pcksum: [0; 4],
            total_stream_len: 0,
            record_count: [0; DRR_NUMTYPES as usize],
            byte_count: [0; DRR_NUMTYPES as usize],
            total_records: 0,
            total_payload_size: 0,
            total_overhead_size: 0,
            buf: Vec::new(),
            checksum_errors: 0,
            short_read: false,
            last_was_end: false,
        }
    }

    /// The stream's order as zstream sees it on a little-endian host.
    fn order(&self) -> ByteOrder {
        if self.byteswap {
            ByteOrder::Big
        } else {
            ByteOrder::Little
        }
    }

    /// `ssread` into `dst`: all or nothing; only a complete read is checksummed and counted.
    fn ssread_into(&mut self, dst: &mut [u8]) -> bool {
        let got = read_full(self.input, dst).unwrap_or(0);
        if dst.is_empty() || got < dst.len() {
            self.short_read |= got > 0;
            return false;
        }
        if self.do_cksum {
            self.order().fletcher4_update(&mut self.zc, dst);
        }
        self.total_stream_len += dst.len() as u64;
        true
    }

    /// `ssread` of a payload into the reused buffer; returns how many bytes of the buffer
    /// to show for `-d`. Payloads over `keep_max` are streamed through and not shown. The
    /// buffer grows with the data actually read, so a lying length costs no memory, and a
    /// short read leaves stale bytes behind as zstream's buffer does.
    fn ssread_payload(&mut self, len: u64, keep_max: u64) -> Option<usize> {
        if len > keep_max {
            self.discard(len);
            return None;
        }
        let n = usize::try_from(len).ok()?;
        let mut buf = std::mem::take(&mut self.buf);
        let mut got = 0;
        while got < n {
            let step = (n - got).min(DISCARD_CHUNK_BYTES);
            if buf.len() < got + step {
                buf.resize(got + step, 0);
            }
            let r = read_full(self.input, &mut buf[got..got + step]).unwrap_or(0);
            got += r;
            if r < step {
                self.short_read = true;
                break;
            }
        }
        if got == n && n > 0 {
            if self.do_cksum {
                self.order().fletcher4_update(&mut self.zc, &buf[..n]);
            }
            self.total_stream_len += len;
        }
        if got < n && len <= DUMP_BUF_MAX_BYTES {
            buf.resize(buf.len().max(n), 0);
        }
        let shown = n.min(buf.len());
        self.buf = buf;
        Some(shown)
    }

    /// Reads and checksums `len` bytes without keeping them; commits only a complete read.
    fn discard(&mut self, len: u64) {
        let mut chunk = vec![0u8; DISCARD_CHUNK_BYTES];
        let mut zc = self.zc;
        let mut left = len;
        while left > 0 {
            let n = left.min(DISCARD_CHUNK_BYTES as u64) as usize;
            if read_full(self.input, &mut chunk[..n]).unwrap_or(0) < n {
                self.short_read = true;
                return;
            }
            if self.do_cksum {
                self.order().fletcher4_update(&mut zc, &chunk[..n]);
            }
            left -= n as u64;
        }
        self.zc = zc;
        self.total_stream_len += len;
    }

    /// `read_hdr`: the header, or `None` at EOF or after a per-record checksum complaint.
    fn read_hdr(&mut self) -> io::Result<Option<[u8; DRR_HEADER_SIZE]>> {
        let mut hdr = [0u8; DRR_HEADER_SIZE];
        if !self.ssread_into(&mut hdr[..DRR_CHECKSUM_OFFSET]) {
            return Ok(None);
        }
        let saved = self.zc.finish();
        if !self.ssread_into(&mut hdr[DRR_CHECKSUM_OFFSET..]) {
            // The first part of the header was there: the rest is missing.
            self.short_read = true;
            return Ok(None);
        }
        // §2.4: compared as host words, never byteswapped (the 2.3 bug, #12854).
        let stored = stored_checksum(&hdr);
        if self.do_cksum && stored != [0; 4] && stored != saved {
            self.checksum_errors += 1;
            self.err.write_all(b"invalid checksum\n")?;
            writeln!(self.out, "Incorrect checksum in record header.")?;
            writeln!(self.out, "Expected checksum = {}", cksum_text(&saved))?;
            return Ok(None);
        }
        Ok(Some(hdr))
    }

    /// The record loop; `Some(status)` if zstream exits before its summary.
    fn run(&mut self) -> io::Result<Option<i32>> {
        let mut first = true;
        while let Some(hdr) = self.read_hdr()? {
            if first {
                let magic = u64::from_le_bytes(field8(&hdr, 8));
                if magic == DMU_BACKUP_MAGIC.swap_bytes() {
                    self.byteswap = true;
                    if self.do_cksum {
                        self.zc = Fletcher4::new();
                        self.zc.update_byteswap(&hdr);
                    }
                } else if magic != DMU_BACKUP_MAGIC {
                    self.err.write_all(b"Invalid stream (bad magic number)\n")?;
                    return Ok(Some(1));
                }
                first = false;
            }
            let order = self.order();
            let drr_type = order.u32([hdr[0], hdr[1], hdr[2], hdr[3]]);
            let Some(dec) = decode_header_in(&hdr, order) else {
                writeln!(self.out, "INVALID record found: type 0x{drr_type:x}")?;
                writeln!(self.out, "Aborting.")?;
                return Ok(Some(1));
            };
            assert!(drr_type < DRR_NUMTYPES, "decoded an invalid type {drr_type}");
            self.record_count[drr_type as usize] += 1;
            self.total_overhead_size += DRR_HEADER_SIZE as u64;
            self.total_records += 1;
            let payloadlen = order.u32([hdr[4], hdr[5], hdr[6], hdr[7]]);
            let payload_size = self.record(&hdr, &dec.record, payloadlen)?;
            self.last_was_end = matches!(dec.record, Record::End(_));
            if drr_type != DRR_BEGIN && self.very_verbose {
                writeln!(self.out, "    checksum = {}", cksum_text(&stored_checksum(&hdr)))?;
            }
            self.pcksum = self.zc.finish();
            self.byte_count[drr_type as usize] =
                self.byte_count[drr_type as usize].wrapping_add(payload_size);
            self.total_payload_size = self.total_payload_size.wrapping_add(payload_size);
        }
        Ok(None)
    }

    /// Prints one record and reads its payload; returns the payload size zstream counts.
    fn record(
        &mut self,
        hdr: &[u8; DRR_HEADER_SIZE],
        rec: &Record,
        payloadlen: u32,
    ) -> io::Result<u64> {
        match rec {
            Record::Begin { drr, .. } => self.begin(hdr, drr, payloadlen),
            Record::End(end) => {
                if self.do_cksum && end.checksum != self.pcksum {
                    self.checksum_errors += 1;
                    writeln!(self.out, "Expected checksum differs from checksum in stream.")?;
                    writeln!(self.out, "Expected checksum = {}", cksum_text(&self.pcksum))?;
                }
                writeln!(self.out, "END checksum = {}", cksum_text(&end.checksum))?;
                self.zc = Fletcher4::new();
                Ok(0)
            }
            Record::Object { drr, .. } => self.object(hdr, drr),
            Record::Write { drr, .. } => self.write(drr),
            Record::Spill { drr, .. } => self.spill(drr),
            Record::WriteEmbedded { drr, .. } => self.write_embedded(drr),
            other => {
                if self.verbose {
                    self.out.write_all(header_only_line(other).as_bytes())?;
                }
                Ok(0)
            }
        }
    }

    fn begin(
        &mut self,
        hdr: &[u8; DRR_HEADER_SIZE],
        drr: &DrrBegin,
        payloadlen: u32,
    ) -> io::Result<u64> {
        let vi = drr.versioninfo;
        let mut text = format!(
            "BEGIN record\n\thdrtype = {}\n\tfeatures = {:x}\n\tmagic = {:x}\n\
             \tcreation_time = {:x}\n\ttype = {}\n\tflags = 0x{:x}\n\ttoguid = {:x}\n\
             \tfromguid = {:x}\n\ttoname = ",
            dmu_get_stream_hdrtype(vi),
            dmu_get_featureflags(vi),
            drr.magic,
            drr.creation_time,
            drr.objset_type,
            drr.flags,
            drr.toguid,
            drr.fromguid,
        )
        .into_bytes();
        // `%s` of toname: raw bytes up to the first NUL.
        let name = &hdr[56..];
        text.extend_from_slice(&name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())]);
        text.extend_from_slice(format!("\n\tpayloadlen = {payloadlen}\n").as_bytes());
        if self.verbose {
            text.push(b'\n');
        }
        self.out.write_all(&text)?;
        if payloadlen == 0 {
            return Ok(0);
        }
        // `int sz = drr_payloadlen`: a length of 2^31 or more is negative in zstream.
        let Ok(sz) = i32::try_from(payloadlen) else {
            self.discard(u64::MAX);
            return Ok(i64::from(payloadlen as i32) as u64);
        };
        self.begin_payload(sz as usize)?;
        Ok(u64::from(payloadlen))
    }

    /// Reads BEGIN's packed nvlist and prints it, or perror's complaint on stderr.
    fn begin_payload(&mut self, sz: usize) -> io::Result<()> {
        // zstream mallocs a buffer of `sz` for a large nvlist, so no DUMP_BUF_MAX here.
        let Some(n) = self.ssread_payload(sz as u64, i32::MAX as u64) else {
            return Ok(());
        };
        let packed = &self.buf[..n];
        // This host is little-endian: libnvpair refuses a big-endian NATIVE list (#12854).
        let foreign =
            matches!(nvlist::packed_header(packed), Some((nvlist::NV_ENCODE_NATIVE, e)) if e != 1);
        let res = if foreign {
            Err(nvlist::NvError::Unsupported { reason: "foreign-endian NATIVE nvlist" })
        } else {
            nvlist::unpack(packed)
        };
        match res {
            Ok(nvl) => self.out.write_all(nvlist::print(&nvl).as_bytes()),
            Err(e) => writeln!(self.err, "{}: {PERROR_SUFFIX}", e.strerror()),
        }
    }

    fn object(&mut self, hdr: &[u8; DRR_HEADER_SIZE], drr: &DrrObject) -> io::Result<u64> {
        // §5.5 quirk 5: the raw-bonus test reads "features" from the current record.
        let features = dmu_get_featureflags(u64::from_le_bytes(field8(hdr, 16)));
        if features & DMU_BACKUP_FEATURE_RAW != 0 && drr.bonuslen > drr.raw_bonuslen {
            writeln!(
                self.err,
                "Warning: Object {} has bonuslen = {} > raw_bonuslen = {}\n",
                drr.object, drr.bonuslen, drr.raw_bonuslen
            )?;
        }
        let payload_size = drr.payload_len();
        if self.verbose {
            writeln!(
                self.out,
                "OBJECT object = {} type = {} bonustype = {} blksz = {} bonuslen = {} \
                 dn_slots = {} raw_bonuslen = {} flags = {} maxblkid = {} indblkshift = {} \
                 nlevels = {} nblkptr = {}",
                drr.object,
                drr.object_type,
                drr.bonustype,
                drr.blksz,
                drr.bonuslen,
                drr.dn_slots,
                drr.raw_bonuslen,
                drr.flags,
                drr.maxblkid,
                drr.indblkshift,
                drr.nlevels,
                drr.nblkptr
            )?;
        }
        // §5.1: zstream reads the bonus only if bonuslen > 0, but counts it regardless.
        if drr.bonuslen > 0 {
            self.payload(payload_size)?;
        }
        Ok(payload_size)
    }

    fn write(&mut self, drr: &DrrWrite) -> io::Result<u64> {
        let payload_size = drr.payload_len();
        if self.verbose {
            writeln!(
                self.out,
                "WRITE object = {} type = {} checksum type = {} compression type = {} \
                 flags = {} offset = {} logical_size = {} compressed_size = {} \
                 payload_size = {} props = {:x} salt = {} iv = {} mac = {}",
                drr.object,
                drr.object_type,
                drr.checksumtype,
                drr.compressiontype,
                drr.flags,
                drr.offset,
                drr.logical_size,
                drr.compressed_size,
                payload_size,
                drr.key.prop,
                hex_bytes(&drr.salt),
                hex_bytes(&drr.iv),
                hex_bytes(&drr.mac)
            )?;
        }
        self.payload(payload_size)?;
        Ok(payload_size)
    }

    fn spill(&mut self, drr: &DrrSpill) -> io::Result<u64> {
        let payload_size = drr.payload_len();
        if self.verbose {
            writeln!(
                self.out,
                "SPILL block for object = {} length = {} flags = {} compression type = {} \
                 compressed_size = {} payload_size = {} salt = {} iv = {} mac = {}",
                drr.object,
                drr.length,
                drr.flags,
                drr.compressiontype,
                drr.compressed_size,
                payload_size,
                hex_bytes(&drr.salt),
                hex_bytes(&drr.iv),
                hex_bytes(&drr.mac)
            )?;
        }
        self.payload(payload_size)?;
        Ok(payload_size)
    }

    fn write_embedded(&mut self, drr: &DrrWriteEmbedded) -> io::Result<u64> {
        if self.verbose {
            writeln!(
                self.out,
                "WRITE_EMBEDDED object = {} offset = {} length = {} toguid = {:x} comp = {} \
                 etype = {} lsize = {} psize = {}",
                drr.object,
                drr.offset,
                drr.length,
                drr.toguid,
                drr.compression,
                drr.etype,
                drr.lsize,
                drr.psize
            )?;
        }
        let payload_size = roundup8_u32(drr.psize);
        self.payload(payload_size)?;
        Ok(payload_size)
    }

    /// Reads a payload and, with `-d`, hex-dumps the buffer as zstream does.
    fn payload(&mut self, len: u64) -> io::Result<()> {
        if let Some(n) = self.ssread_payload(len, DUMP_BUF_MAX_BYTES) {
            if self.dump {
                self.out.write_all(print_block(&self.buf[..n]).as_bytes())?;
            }
        }
        Ok(())
    }

    fn summary(&mut self) -> io::Result<()> {
        let c = &self.record_count;
        let b = &self.byte_count;
        let mut s = String::from("SUMMARY:\n");
        for (name, t) in [
            ("BEGIN", DRR_BEGIN),
            ("END", DRR_END),
            ("OBJECT", DRR_OBJECT),
            ("FREEOBJECTS", DRR_FREEOBJECTS),
            ("WRITE", DRR_WRITE),
            ("WRITE_BYREF", DRR_WRITE_BYREF),
            ("WRITE_EMBEDDED", DRR_WRITE_EMBEDDED),
            ("FREE", DRR_FREE),
            ("SPILL", DRR_SPILL),
        ] {
            let t = t as usize;
            // `%lld (%llu bytes)`
            let count = c[t] as i64;
            s.push_str(&format!("\tTotal DRR_{name} records = {count} ({} bytes)\n", b[t]));
        }
        s.push_str(&format!("\tTotal records = {}\n", self.total_records as i64));
        let p = self.total_payload_size;
        s.push_str(&format!("\tTotal payload size = {} (0x{p:x})\n", p as i64));
        let h = self.total_overhead_size;
        s.push_str(&format!("\tTotal header overhead = {} (0x{h:x})\n", h as i64));
        let l = self.total_stream_len;
        s.push_str(&format!("\tTotal stream length = {} (0x{l:x})\n", l as i64));
        self.out.write_all(s.as_bytes())
    }
}

fn field8(hdr: &[u8; DRR_HEADER_SIZE], off: usize) -> [u8; 8] {
    let mut b = [0u8; 8];
    b.copy_from_slice(&hdr[off..off + 8]);
    b
}

/// The stored per-record checksum as zstream reads it: host (little-endian) words.
fn stored_checksum(hdr: &[u8; DRR_HEADER_SIZE]) -> ZioCksum {
    std::array::from_fn(|i| u64::from_le_bytes(field8(hdr, DRR_CHECKSUM_OFFSET + 8 * i)))
}

/// `%llx/%llx/%llx/%llx`.
fn cksum_text(c: &ZioCksum) -> String {
    format!("{:x}/{:x}/{:x}/{:x}", c[0], c[1], c[2], c[3])
}

/// `sprintf_bytes`: lowercase hex, two digits per byte.
fn hex_bytes(b: &[u8]) -> String {
    hex::encode(b)
}

/// The -v line of a record without payload (FREEOBJECTS, FREE, WRITE_BYREF, OBJECT_RANGE,
/// REDACT), §5.2.
fn header_only_line(rec: &Record) -> String {
    match rec {
        Record::FreeObjects(f) => {
            format!("FREEOBJECTS firstobj = {} numobjs = {}\n", f.firstobj, f.numobjs)
        }
        Record::Free(f) => {
            format!(
                "FREE object = {} offset = {} length = {}\n",
                f.object, f.offset, f.length as i64
            )
        }
        Record::WriteByref(w) => format!(
            "WRITE_BYREF object = {} checksum type = {} props = {:x} offset = {} length = {} \
             toguid = {:x} refguid = {:x} refobject = {} refoffset = {}\n",
            w.object,
            w.checksumtype,
            w.key.prop,
            w.offset,
            w.length,
            w.toguid,
            w.refguid,
            w.refobject,
            w.refoffset
        ),
        Record::ObjectRange(r) => format!(
            "OBJECT_RANGE firstobj = {} numslots = {} flags = {} salt = {} iv = {} mac = {}\n",
            r.firstobj,
            r.numslots,
            r.flags,
            hex_bytes(&r.salt),
            hex_bytes(&r.iv),
            hex_bytes(&r.mac)
        ),
        Record::Redact(r) => {
            format!("REDACT object = {} offset = {} length = {}\n", r.object, r.offset, r.length)
        }
        other => unreachable!("{} has a payload", other.drr_type()),
    }
}

/// `print_block` (§5.2): 16 bytes a line; a space before each group of 4, each byte as
/// `%02x `, padding to column 54 (at least one space), then the bytes as ASCII
/// (non-printables as '.') with a space every 4 characters.
#[must_use]
pub fn print_block(buf: &[u8]) -> String {
    let mut s = String::new();
    for (line_no, line) in buf.chunks(BYTES_PER_LINE).enumerate() {
        let start = s.len();
        for (j, b) in line.iter().enumerate() {
            if (line_no * BYTES_PER_LINE + j).is_multiple_of(DUMP_GROUPING) {
                s.push(' ');
            }
            s.push_str(&format!("{b:02x} "));
        }
        let width = ASCII_START.saturating_sub(s.len() - start).max(1);
        s.extend(std::iter::repeat_n(' ', width));
        for (i, &b) in line.iter().enumerate() {
            if i != 0 && i.is_multiple_of(DUMP_GROUPING) {
                s.push(' ');
            }
            s.push(if (0x20..0x7f).contains(&b) { b as char } else { '.' });
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::record::{
        DrrEnd, DrrFree, DrrFreeObjects, DrrObject, DrrWrite, StreamWriter, DMU_OBJECT_END,
    };

    const TOGUID: u64 = 0x1111_2222_3333_4444;

    /// The §2.6 example stream (20016 bytes).
    fn spec_stream(order: ByteOrder) -> Vec<u8> {
        let mut begin = DrrBegin {
            versioninfo: 1,
            creation_time: 0x6600_0000,
            objset_type: 3,
            flags: 0xc,
            toguid: TOGUID,
            ..DrrBegin::default()
        };
        begin.set_toname("pool/vol@a");
        let obj = |object, object_type, blksz| Record::Object {
            drr: DrrObject {
                object,
                object_type,
                blksz,
                dn_slots: 1,
                toguid: TOGUID,
                ..DrrObject::default()
            },
            bonus: Vec::new(),
        };
        let free = |object, offset, length| {
            Record::Free(DrrFree { object, offset, length, toguid: TOGUID })
        };
        let write = |object, object_type, data: Vec<u8>| Record::Write {
            drr: DrrWrite {
                object,
                object_type,
                logical_size: data.len() as u64,
                toguid: TOGUID,
                checksumtype: 2,
                ..DrrWrite::default()
            },
            data,
        };
        let mut mzap = vec![0u8; 512];
        mzap[..8].copy_from_slice(&0x8000_0000_0000_0003u64.to_le_bytes());
        mzap[8..16].copy_from_slice(&0x1234u64.to_le_bytes());
        mzap[64..72].copy_from_slice(&65536u64.to_le_bytes());
        mzap[78..82].copy_from_slice(b"size");
        let recs = vec![
            Record::Begin { drr: begin, payload: Vec::new() },
            obj(1, 23, 16384),
            free(1, 16384, DMU_OBJECT_END),
            write(1, 23, (0..16384u32).map(|i| (i * 7) as u8).collect()),
            obj(2, 24, 512),
            free(2, 512, DMU_OBJECT_END),
            write(2, 24, mzap),
            free(2, 512, 1024),
            Record::FreeObjects(DrrFreeObjects { firstobj: 3, numobjs: 29, toguid: TOGUID }),
            Record::End(DrrEnd { checksum: [0; 4], toguid: TOGUID }),
        ];
        let mut w = StreamWriter::new(Vec::new(), order);
        for r in &recs {
            w.write_record(r).expect("vec");
        }
        w.into_inner().expect("vec")
    }

    fn run(stream: &[u8], opts: DumpOptions) -> (String, String, i32) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let status = dump(&mut &stream[..], &opts, &mut out, &mut err).expect("vec writes");
        (
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
            status,
        )
    }

    const VV: DumpOptions = DumpOptions { verbose: 2, dump_payload: false, no_checksum: false };

    #[test]
    fn vv_output_matches_spec_3_10() {
        let (out, err, status) = run(&spec_stream(ByteOrder::Little), VV);
        assert_eq!((err.as_str(), status), ("", 0));
        let want_start = "BEGIN record\n\thdrtype = 1\n\tfeatures = 0\n\tmagic = 2f5bacbac\n\
            \tcreation_time = 66000000\n\ttype = 3\n\tflags = 0xc\n\ttoguid = 1111222233334444\n\
            \tfromguid = 0\n\ttoname = pool/vol@a\n\tpayloadlen = 0\n\n\
            OBJECT object = 1 type = 23 bonustype = 0 blksz = 16384 bonuslen = 0 dn_slots = 1 \
            raw_bonuslen = 0 flags = 0 maxblkid = 0 indblkshift = 0 nlevels = 0 nblkptr = 0\n\
            \x20   checksum = 2bd241f82/16a7c0a0715/61980f25bc97/11ec16d5dce7a9\n\
            FREE object = 1 offset = 16384 length = -1\n\
            \x20   checksum = 71fabdfdc/36e94b5e440/11aab4af327ae/480b33c858189c\n\
            WRITE object = 1 type = 23 checksum type = 2 compression type = 0 flags = 0 \
            offset = 0 logical_size = 16384 compressed_size = 0 payload_size = 16384 props = 0 \
            salt = 0000000000000000 iv = 000000000000000000000000 \
            mac = 00000000000000000000000000000000\n\
            \x20   checksum = 92be6b418/62e0dd593f7/29155a07d8c4c/d2799bee6de73c\n";
        assert!(out.starts_with(want_start), "{out}");
        let want_end = "FREEOBJECTS firstobj = 3 numobjs = 29\n\
            \x20   checksum = 8147c53a1a6/507891c08e50bc/ea1c8d776af662e2/3be803c808c7ac86\n\
            END checksum = 8175348b554/50b942c25773a6/eca1751237dd2885/98212e130c6e6b57\n\
            \x20   checksum = 81a768c3d13/52f06b3b38f4ec/302c0ff139c4298/633caa4c2ed0ad24\n\
            SUMMARY:\n\
            \tTotal DRR_BEGIN records = 1 (0 bytes)\n\
            \tTotal DRR_END records = 1 (0 bytes)\n\
            \tTotal DRR_OBJECT records = 2 (0 bytes)\n\
            \tTotal DRR_FREEOBJECTS records = 1 (0 bytes)\n\
            \tTotal DRR_WRITE records = 2 (16896 bytes)\n\
            \tTotal DRR_WRITE_BYREF records = 0 (0 bytes)\n\
            \tTotal DRR_WRITE_EMBEDDED records = 0 (0 bytes)\n\
            \tTotal DRR_FREE records = 3 (0 bytes)\n\
            \tTotal DRR_SPILL records = 0 (0 bytes)\n\
            \tTotal records = 10\n\
            \tTotal payload size = 16896 (0x4200)\n\
            \tTotal header overhead = 3120 (0xc30)\n\
            \tTotal stream length = 20016 (0x4e30)\n";
        assert!(out.ends_with(want_end), "{out}");
    }

    #[test]
    fn flipped_bit_in_record_2_stops_with_expected_checksum() {
        // Bit 6 of OBJECT header byte 100 (a pad word): the spec's §5.3 example.
        let mut s = spec_stream(ByteOrder::Little);
        s[312 + 100] ^= 0x40;
        let (out, err, status) = run(&s, DumpOptions::default());
        assert_eq!((err.as_str(), status), ("invalid checksum\n", 0));
        let tail = "Incorrect checksum in record header.\n\
            Expected checksum = 2bd241fc2/16a7c0a1255/61980f26bf57/11ec16d5ecbd69\n\
            SUMMARY:\n\tTotal DRR_BEGIN records = 1 (0 bytes)\n";
        assert!(out.contains(tail), "{out}");
        assert!(out.contains("\tTotal records = 1\n"), "{out}");
        assert!(out.ends_with("\tTotal stream length = 624 (0x270)\n"), "{out}");
        // -C does not look at checksums at all.
        let (out, err, _) = run(&s, DumpOptions { no_checksum: true, ..VV });
        assert!(err.is_empty() && out.contains("\tTotal records = 10\n"), "{out}");
        assert!(!out.contains("Expected"), "{out}");
    }

    #[test]
    fn bad_magic_invalid_type_and_truncation() {
        let mut s = spec_stream(ByteOrder::Little);
        s[9] ^= 1;
        assert_eq!(run(&s, VV), (String::new(), "Invalid stream (bad magic number)\n".into(), 1));
        let mut s = spec_stream(ByteOrder::Little);
        s[312] = 0x20;
        s[312 + DRR_CHECKSUM_OFFSET..624].fill(0);
        let (out, _, status) = run(&s, VV);
        assert_eq!(status, 1);
        assert!(out.ends_with("INVALID record found: type 0x20\nAborting.\n"), "{out}");
        // Cut inside WRITE 1's payload: the record is counted, its bytes are not.
        let s = spec_stream(ByteOrder::Little);
        let (out, err, status) = run(&s[..4 * 312 + 1000], DumpOptions::default());
        assert_eq!((err.as_str(), status), ("", 0));
        assert!(out.contains("\tTotal DRR_WRITE records = 1 (16384 bytes)\n"), "{out}");
        assert!(out.contains("\tTotal records = 4\n"), "{out}");
        assert!(out.ends_with("\tTotal stream length = 1248 (0x4e0)\n"), "{out}");
        // Cut inside a header's checksum: the first 280 bytes still count.
        let (out, _, _) = run(&s[..312 + 290], DumpOptions::default());
        assert!(out.ends_with("\tTotal stream length = 592 (0x250)\n"), "{out}");
        assert!(out.contains("\tTotal records = 1\n"), "{out}");
    }

    #[test]
    fn outcome_reports_checksum_errors_and_truncation() {
        let outcome = |s: &[u8], opts: DumpOptions| {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            dump_checked(&mut &s[..], &opts, &mut out, &mut err).expect("writes to memory")
        };
        let s = spec_stream(ByteOrder::Little);
        let clean = DumpOutcome { status: 0, checksum_errors: 0, truncated: false };
        assert_eq!(outcome(&s, VV), clean);
        // Cut inside a payload, inside a header, and exactly between records.
        for cut in [4 * 312 + 1000, 312 + 290, 4 * 312] {
            let o = outcome(&s[..cut], VV);
            assert_eq!((o.status, o.checksum_errors, o.truncated), (0, 0, true), "cut {cut}");
        }
        let mut bad = s.clone();
        bad[312 + 100] ^= 0x40;
        assert_eq!(outcome(&bad, VV).checksum_errors, 1);
        // -C compares nothing, so it sees no checksum error.
        assert_eq!(outcome(&bad, DumpOptions { no_checksum: true, ..VV }).checksum_errors, 0);
    }

    #[test]
    fn big_endian_stream_fails_at_record_2_like_zstream_2_3() {
        let (out, err, status) = run(&spec_stream(ByteOrder::Big), DumpOptions::default());
        assert_eq!((err.as_str(), status), ("invalid checksum\n", 0));
        assert!(out.starts_with("BEGIN record\n\thdrtype = 1\n\tfeatures = 0\n"), "{out}");
        assert!(out.contains("Incorrect checksum in record header."), "{out}");
        assert!(out.contains("\tTotal records = 1\n"), "{out}");
    }

    #[test]
    fn dash_d_prints_payload_hex_and_ascii() {
        let s = spec_stream(ByteOrder::Little);
        let (out, _, _) = run(&s, DumpOptions { dump_payload: true, ..DumpOptions::default() });
        let line = " 00 07 0e 15  1c 23 2a 31  38 3f 46 4d  54 5b 62 69   \
                    .... .#*1 8?FM T[bi\n";
        assert!(out.contains(line), "{}", &out[..2000.min(out.len())]);
        let mzap = " 00 00 01 00  00 00 00 00  00 00 00 00  00 00 73 69   \
                    .... .... .... ..si\n";
        assert!(out.contains(mzap), "{out}");
    }

    #[test]
    fn print_block_pads_short_lines_to_column_54() {
        assert_eq!(
            print_block(b"123\n\0\0"),
            " 31 32 33 0a  00 00                                   123. ..\n"
        );
        let full = print_block(b"0123456789abcdef");
        assert!(full.starts_with(" 30 31 32 33  34 35 36 37  38 39 61 62  63 64 65 66   0"));
        assert_eq!(&full[54..], "0123 4567 89ab cdef\n");
        assert_eq!(print_block(&[]), "");
    }

    #[test]
    fn begin_nvlist_is_printed_after_the_blank_line() {
        use crate::stream::nvlist::{pack_native, pack_xdr, NvList, NvValue};
        use crate::stream::record::rechecksum;
        let mut nvl = NvList::new();
        nvl.add("redact_snaps", NvValue::Uint64Array(vec![0x9649_50de_82b7_d299]));
        for (packed, ok) in [
            (pack_xdr(&nvl), true),
            (pack_native(&nvl, ByteOrder::Little), true),
            (pack_native(&nvl, ByteOrder::Big), false),
        ] {
            let mut s = spec_stream(ByteOrder::Little);
            let len = packed.len() as u32;
            s[4..8].copy_from_slice(&len.to_le_bytes());
            s.splice(312..312, packed);
            let s = rechecksum(&s).expect("framing");
            let (out, err, _) = run(&s, DumpOptions { verbose: 1, ..DumpOptions::default() });
            let nv = format!(
                "\tpayloadlen = {len}\n\nnvlist version: 0\n\tredact_snaps = 0x964950de82b7d299\n"
            );
            if ok {
                assert!(out.contains(&nv), "{out}");
                assert_eq!(err, "");
            } else {
                assert_eq!(err, "Operation not supported: Inappropriate ioctl for device\n");
            }
            assert!(out.contains(&format!("\tTotal DRR_BEGIN records = 1 ({len} bytes)\n")));
        }
    }

    #[test]
    fn dump_never_panics_on_garbage() {
        let good = spec_stream(ByteOrder::Little);
        let mut x = 0x853c_49e6_748f_ea9bu64;
        for round in 0..500u32 {
            let mut s = good.clone();
            for _ in 0..1 + round % 5 {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let i = (x >> 33) as usize % s.len();
                s[i] = (x >> 13) as u8;
            }
            let cut = (x >> 21) as usize % (s.len() + 1);
            let opts = DumpOptions {
                verbose: (round % 3) as u8,
                dump_payload: round.is_multiple_of(7),
                no_checksum: round.is_multiple_of(2),
            };
            let _ = run(&s[..cut], opts);
        }
    }
}
