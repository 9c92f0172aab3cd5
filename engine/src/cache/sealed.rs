//! The on-disk format of staged and cached block files ("sealed" blocks).
//!
//! ```text
//! [block bytes][zero padding][CRC-32 of each 64 KiB segment, 4 bytes each][trailer]
//! trailer (16 bytes) = magic "RFS2", CRC-32 of the segment CRCs, block length (u64)
//! ```
//!
//! The file length is a multiple of 4 KiB and sealed buffers are 4 KiB aligned, so files
//! can be written and read with O_DIRECT. The per-segment CRCs let a random read check
//! only the 64 KiB segments it reads (plus the file's last page) instead of the whole
//! block; a whole read checks every segment. A torn or damaged file fails either check.
//! Files of the first format ("RFS1": one CRC of the whole block, no segment table) are
//! still read whole.

use bytes::{Bytes, BytesMut};

const MAGIC_V1: &[u8; 4] = b"RFS1";
const MAGIC: &[u8; 4] = b"RFS2";
pub const TRAILER: usize = 16;
/// Sealed files are padded to a multiple of this (and sealed buffers start at such an
/// address) so that they can be written and read with O_DIRECT.
pub const ALIGN: usize = 4096;
/// Bytes covered by one CRC of the segment table.
pub const SEGMENT: usize = 64 << 10;

fn segments(len: usize) -> usize {
    len.div_ceil(SEGMENT)
}

/// The size of the sealed file of a block of `len` bytes.
pub fn sealed_len(len: usize) -> usize {
    (len + 4 * segments(len) + TRAILER).next_multiple_of(ALIGN)
}

/// A zeroed buffer of `len` bytes whose first byte is `ALIGN`-aligned.
pub fn aligned_zeroed(len: usize) -> BytesMut {
    let mut b = BytesMut::zeroed(len + ALIGN);
    let skip = b.as_ptr().align_offset(ALIGN);
    let mut tail = b.split_off(skip);
    tail.truncate(len);
    tail
}

fn table_bytes(crcs: &[u32]) -> Vec<u8> {
    crcs.iter().flat_map(|c| c.to_be_bytes()).collect()
}

/// Block bytes, padding, segment CRCs and trailer, in an aligned buffer ready to be
/// written to a staging or cache file.
pub fn seal(data: &[u8]) -> Bytes {
    let mut b = super::blockbuf::BlockBuf::with_room(data.len());
    b.push(data);
    b.seal().0
}

/// Writes the zero padding, segment table and trailer of a block of `len` bytes held at
/// the start of `file`, which is `sealed_len(len)` bytes long.
pub fn seal_in_place(file: &mut [u8], len: usize) {
    let total = file.len();
    debug_assert_eq!(total, sealed_len(len));
    let crcs: Vec<u32> = file[..len].chunks(SEGMENT).map(crc32fast::hash).collect();
    let table = table_bytes(&crcs);
    let t0 = total - TRAILER - table.len();
    file[len..t0].fill(0);
    file[t0..total - TRAILER].copy_from_slice(&table);
    let t = &mut file[total - TRAILER..];
    t[..4].copy_from_slice(MAGIC);
    t[4..8].copy_from_slice(&crc32fast::hash(&table).to_be_bytes());
    t[8..].copy_from_slice(&(len as u64).to_be_bytes());
}

/// What the end of a sealed file says: the block length and its segment CRCs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    pub len: usize,
    crcs: Vec<u32>,
}

/// How many bytes at the end of a sealed file [`parse_tail`] needs: the last 8 KiB (or
/// the whole file if shorter) always hold the segment table and trailer of a block up to
/// 128 MiB.
pub fn tail_span(file_len: usize) -> usize {
    file_len.min(2 * ALIGN)
}

/// Parses the segment table and trailer from `tail`, the last bytes of a sealed file of
/// `file_len` bytes (`tail_span(file_len)` of them). Files of the first format have no
/// table: an error, so the caller reads them whole.
pub fn parse_tail(tail: &[u8], file_len: usize) -> Result<Tail, String> {
    if tail.len() < TRAILER || tail.len() > file_len {
        return Err(format!("{} bytes, shorter than the trailer", tail.len()));
    }
    let t = &tail[tail.len() - TRAILER..];
    if &t[..4] != MAGIC {
        return Err("bad trailer magic".into());
    }
    let table_crc = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
    let len = u64::from_be_bytes(t[8..16].try_into().map_err(|_| "trailer")?);
    if len > file_len as u64 || sealed_len(len as usize) != file_len {
        return Err(format!("length {len} in trailer, file of {file_len} bytes"));
    }
    let len = len as usize;
    let table_len = 4 * segments(len);
    if TRAILER + table_len > tail.len() {
        return Err("segment table outside the tail".into());
    }
    let table = &tail[tail.len() - TRAILER - table_len..tail.len() - TRAILER];
    if crc32fast::hash(table) != table_crc {
        return Err("segment table checksum mismatch".into());
    }
    let crcs = table
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok(Tail { len, crcs })
}

impl Tail {
    /// Checks `data`, the block bytes from the start of segment `first` (whole segments,
    /// the last one possibly cut at the block's end).
    pub fn check(&self, first: usize, data: &[u8]) -> Result<(), String> {
        for (i, seg) in data.chunks(SEGMENT).enumerate() {
            let want = self
                .crcs
                .get(first + i)
                .ok_or("read past the last segment")?;
            let full = ((first + i + 1) * SEGMENT).min(self.len) - (first + i) * SEGMENT;
            if seg.len() != full {
                return Err("segment cut short".into());
            }
            if crc32fast::hash(seg) != *want {
                return Err(format!("segment {} checksum mismatch", first + i));
            }
        }
        Ok(())
    }
}

/// The block bytes of a sealed file, or an error if it is torn or corrupt.
pub fn unseal(file: Bytes) -> Result<Bytes, String> {
    if file.len() < TRAILER {
        return Err(format!("{} bytes, shorter than the trailer", file.len()));
    }
    if &file[file.len() - TRAILER..file.len() - TRAILER + 4] == MAGIC_V1 {
        return unseal_v1(file);
    }
    let tail = parse_tail(&file[file.len() - tail_span(file.len())..], file.len())?;
    let table_start = file.len() - TRAILER - 4 * tail.crcs.len();
    if file[tail.len..table_start].iter().any(|&b| b != 0) {
        return Err("padding is not zero".into());
    }
    let data = file.slice(..tail.len);
    tail.check(0, &data)?;
    Ok(data)
}

/// The first format: bytes, optional zero padding, trailer with one CRC of the bytes.
fn unseal_v1(file: Bytes) -> Result<Bytes, String> {
    let end = file.len() - TRAILER;
    let t = &file[end..];
    let crc = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
    let len = u64::from_be_bytes(t[8..16].try_into().map_err(|_| "trailer")?);
    if len > end as u64 || end as u64 - len >= ALIGN as u64 {
        return Err(format!("length {len} in trailer, {end} bytes present"));
    }
    let n = len as usize;
    if file[n..end].iter().any(|&b| b != 0) {
        return Err("padding is not zero".into());
    }
    let data = file.slice(..n);
    if crc32fast::hash(&data) != crc {
        return Err("checksum mismatch".into());
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn seal_round_trips_and_any_damage_is_caught(data in proptest::collection::vec(any::<u8>(), 0..140_000), cut in 0usize..150_000, flip in 0usize..150_000) {
            let sealed = seal(&data);
            prop_assert_eq!(sealed.as_ptr() as usize % ALIGN, 0, "O_DIRECT-ready address");
            prop_assert_eq!(sealed.len() % ALIGN, 0, "O_DIRECT-ready length");
            prop_assert_eq!(&unseal(sealed.clone()).unwrap()[..], &data[..]);
            if cut < sealed.len() {
                prop_assert!(unseal(sealed.slice(..cut)).is_err(), "a torn file is detected");
            }
            if flip < sealed.len() {
                let mut b = sealed.to_vec();
                b[flip] ^= 0x40;
                prop_assert!(unseal(Bytes::from(b)).is_err(), "a flipped bit is detected");
            }
        }

        /// Reading any run of segments through the tail gives the block's bytes, and a
        /// flipped bit inside them is caught.
        #[test]
        fn segment_reads_are_checked(len in 1usize..300_000, first_frac in 0.0f64..1.0, count in 1usize..4, flip in any::<usize>()) {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let sealed = seal(&data);
            let tail = parse_tail(&sealed[sealed.len() - tail_span(sealed.len())..], sealed.len()).unwrap();
            prop_assert_eq!(tail.len, len);
            let nseg = len.div_ceil(SEGMENT);
            let first = ((nseg as f64 * first_frac) as usize).min(nseg - 1);
            let end = ((first + count) * SEGMENT).min(len);
            let mut part = sealed[first * SEGMENT..end].to_vec();
            prop_assert!(tail.check(first, &part).is_ok());
            let at = flip % part.len();
            part[at] ^= 1;
            prop_assert!(tail.check(first, &part).is_err());
        }
    }

    #[test]
    fn first_format_files_still_unseal() {
        let mut old = b"hello".to_vec();
        old.extend_from_slice(MAGIC_V1);
        old.extend_from_slice(&crc32fast::hash(b"hello").to_be_bytes());
        old.extend_from_slice(&5u64.to_be_bytes());
        assert_eq!(&unseal(Bytes::from(old.clone())).unwrap()[..], b"hello");
        assert!(
            parse_tail(&old, old.len()).is_err(),
            "no segment table: read whole"
        );
    }

    #[test]
    fn a_full_block_keeps_its_table_in_the_tail() {
        let data = vec![3u8; 4 << 20];
        let sealed = seal(&data);
        assert_eq!(
            sealed.len(),
            (4 << 20) + ALIGN,
            "64 CRCs and the trailer fit one page"
        );
        let tail = parse_tail(
            &sealed[sealed.len() - tail_span(sealed.len())..],
            sealed.len(),
        );
        assert_eq!(tail.unwrap().len, 4 << 20);
    }
}
