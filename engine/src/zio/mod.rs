//! zio: copy-on-write block I/O. OpenZFS: zio.c, zio_checksum.c, zio_compress.c.
//! Writes a block to newly allocated space and returns its block pointer; reads a block pointer
//! and verifies its checksum, returning `ZioError::Checksum` rather than bad data.

pub mod blkptr;
pub mod checksum;
pub mod compress;
