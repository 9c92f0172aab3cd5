//! Key encoding for one volume's metadata in etcd.
//!
//! Every key starts with the volume prefix `<prefix>/<volume>/` followed by a one-byte
//! table tag and big-endian numbers, so that related keys sort together and a directory,
//! an inode's chunks or its xattrs are one contiguous range (one range scan, one
//! `DeleteRange`, one range `Compare`). The table is documented in docs/DESIGN.md.

/// Inode number. 1 is the root directory.
pub type Ino = u64;

pub const ROOT_INO: Ino = 1;

/// Table tags, one byte after the volume prefix.
pub mod tag {
    pub const VOLUME: u8 = b'V';
    pub const ATTR: u8 = b'A';
    pub const DENTRY: u8 = b'D';
    pub const CHUNK: u8 = b'C';
    pub const SYMLINK: u8 = b'S';
    pub const XATTR: u8 = b'X';
    pub const PARENT: u8 = b'P';
    pub const COUNTER: u8 = b'N';
    pub const SESSION: u8 = b'E';
    pub const SUSTAINED: u8 = b'O';
    pub const DELFILE: u8 = b'G';
    pub const LOCK: u8 = b'K';
    pub const RENAME_GEN: u8 = b'R';
    pub const SLICE_WRITER: u8 = b'W';
    pub const TRASH: u8 = b'T';
}

/// Builds the keys of one volume. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: Vec<u8>,
}

impl Keys {
    /// `prefix` is the config's `etcd.prefix`, `volume` the volume name.
    pub fn new(prefix: &str, volume: &str) -> Self {
        let mut p = Vec::with_capacity(prefix.len() + volume.len() + 2);
        p.extend_from_slice(prefix.as_bytes());
        p.push(b'/');
        p.extend_from_slice(volume.as_bytes());
        p.push(b'/');
        Keys { prefix: p }
    }

    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    fn with(&self, tag: u8, extra: usize) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + 1 + extra);
        k.extend_from_slice(&self.prefix);
        k.push(tag);
        k
    }

    /// The whole volume: `[start, end)`.
    pub fn volume_range(&self) -> (Vec<u8>, Vec<u8>) {
        let start = self.prefix.clone();
        let end = prefix_end(&start);
        (start, end)
    }

    pub fn volume(&self) -> Vec<u8> {
        self.with(tag::VOLUME, 0)
    }

    pub fn attr(&self, ino: Ino) -> Vec<u8> {
        let mut k = self.with(tag::ATTR, 8);
        k.extend_from_slice(&ino.to_be_bytes());
        k
    }

    pub fn dentry(&self, parent: Ino, name: &[u8]) -> Vec<u8> {
        let mut k = self.with(tag::DENTRY, 8 + name.len());
        k.extend_from_slice(&parent.to_be_bytes());
        k.extend_from_slice(name);
        k
    }

    /// All entries of directory `parent`: `[start, end)`.
    pub fn dentry_range(&self, parent: Ino) -> (Vec<u8>, Vec<u8>) {
        let start = self.dentry(parent, b"");
        let end = prefix_end(&start);
        (start, end)
    }

    /// Recovers the entry name from a dentry key of directory `parent`.
    pub fn dentry_name<'a>(&self, parent: Ino, key: &'a [u8]) -> Option<&'a [u8]> {
        let head = self.prefix.len() + 1 + 8;
        if key.len() < head || key[..self.prefix.len()] != self.prefix[..] {
            return None;
        }
        if key[self.prefix.len()] != tag::DENTRY
            || key[self.prefix.len() + 1..head] != parent.to_be_bytes()
        {
            return None;
        }
        Some(&key[head..])
    }

    pub fn chunk(&self, ino: Ino, index: u32) -> Vec<u8> {
        let mut k = self.with(tag::CHUNK, 12);
        k.extend_from_slice(&ino.to_be_bytes());
        k.extend_from_slice(&index.to_be_bytes());
        k
    }

    /// Chunks `from..` of inode `ino` (all of them with `from = 0`).
    pub fn chunk_range_from(&self, ino: Ino, from: u32) -> (Vec<u8>, Vec<u8>) {
        let start = self.chunk(ino, from);
        let mut end = self.with(tag::CHUNK, 8);
        end.extend_from_slice(&ino.to_be_bytes());
        let end = prefix_end(&end);
        (start, end)
    }

    pub fn chunk_index(&self, key: &[u8]) -> Option<u32> {
        let head = self.prefix.len() + 1 + 8;
        if key.len() != head + 4 {
            return None;
        }
        Some(u32::from_be_bytes(key[head..].try_into().ok()?))
    }

    pub fn symlink(&self, ino: Ino) -> Vec<u8> {
        let mut k = self.with(tag::SYMLINK, 8);
        k.extend_from_slice(&ino.to_be_bytes());
        k
    }

    pub fn xattr(&self, ino: Ino, name: &[u8]) -> Vec<u8> {
        let mut k = self.with(tag::XATTR, 8 + name.len());
        k.extend_from_slice(&ino.to_be_bytes());
        k.extend_from_slice(name);
        k
    }

    pub fn xattr_range(&self, ino: Ino) -> (Vec<u8>, Vec<u8>) {
        let start = self.xattr(ino, b"");
        let end = prefix_end(&start);
        (start, end)
    }

    pub fn xattr_name<'a>(&self, ino: Ino, key: &'a [u8]) -> Option<&'a [u8]> {
        let head = self.prefix.len() + 1 + 8;
        let (start, _) = self.xattr_range(ino);
        if key.len() < head || !key.starts_with(&start) {
            return None;
        }
        Some(&key[head..])
    }

    /// Hard-link parent record: (inode, parent) → number of links from that parent.
    pub fn parent(&self, ino: Ino, parent: Ino) -> Vec<u8> {
        let mut k = self.with(tag::PARENT, 16);
        k.extend_from_slice(&ino.to_be_bytes());
        k.extend_from_slice(&parent.to_be_bytes());
        k
    }

    /// All hard-link parent records of one inode: `[start, end)`.
    pub fn parent_range(&self, ino: Ino) -> (Vec<u8>, Vec<u8>) {
        let start = self.with(tag::PARENT, 8);
        let mut start = start;
        start.extend_from_slice(&ino.to_be_bytes());
        let end = prefix_end(&start);
        (start, end)
    }

    /// The parent directory named by a key of [`Keys::parent_range`]`(ino)`.
    pub fn parent_of_key(&self, ino: Ino, key: &[u8]) -> Option<Ino> {
        let (start, _) = self.parent_range(ino);
        let rest = key.strip_prefix(&start[..])?;
        Some(u64::from_be_bytes(rest.try_into().ok()?))
    }

    pub fn counter(&self, name: &str) -> Vec<u8> {
        let mut k = self.with(tag::COUNTER, name.len());
        k.extend_from_slice(name.as_bytes());
        k
    }

    pub fn session(&self, sid: u64) -> Vec<u8> {
        let mut k = self.with(tag::SESSION, 8);
        k.extend_from_slice(&sid.to_be_bytes());
        k
    }

    pub fn session_range(&self) -> (Vec<u8>, Vec<u8>) {
        let start = self.with(tag::SESSION, 0);
        let end = prefix_end(&start);
        (start, end)
    }

    /// Who allocated the slice ids `[first, end)` (see `Meta::slice_writer`). Keyed by
    /// `end`, so that the record covering id `x` is the first key after
    /// `slice_writer(x)`: one ascending range read with limit 1.
    pub fn slice_writer(&self, end: u64) -> Vec<u8> {
        let mut k = self.with(tag::SLICE_WRITER, 8);
        k.extend_from_slice(&end.to_be_bytes());
        k
    }

    pub fn slice_writer_range(&self) -> (Vec<u8>, Vec<u8>) {
        let start = self.with(tag::SLICE_WRITER, 0);
        let end = prefix_end(&start);
        (start, end)
    }

    /// Slices a compaction replaced, whose objects are deleted once `deadline` (seconds
    /// since the epoch) has passed: until then a client may still read through a chunk
    /// list it read before. Keyed by deadline first, so the due ones are one range.
    /// `first` (the smallest replaced slice id) makes the key unique: a slice is replaced
    /// once.
    pub fn trash(&self, deadline: u64, first: u64) -> Vec<u8> {
        let mut k = self.with(tag::TRASH, 16);
        k.extend_from_slice(&deadline.to_be_bytes());
        k.extend_from_slice(&first.to_be_bytes());
        k
    }

    /// The trash records due at `now`: deadline <= now.
    pub fn trash_due(&self, now: u64) -> (Vec<u8>, Vec<u8>) {
        let start = self.with(tag::TRASH, 0);
        let end = self.trash(now.saturating_add(1), 0);
        (start, end)
    }

    /// Open-but-unlinked inode, kept alive by session `sid`.
    pub fn sustained(&self, ino: Ino) -> Vec<u8> {
        let mut k = self.with(tag::SUSTAINED, 8);
        k.extend_from_slice(&ino.to_be_bytes());
        k
    }

    pub fn sustained_range(&self) -> (Vec<u8>, Vec<u8>) {
        let start = self.with(tag::SUSTAINED, 0);
        let end = prefix_end(&start);
        (start, end)
    }

    /// A deleted inode whose chunks and objects still have to be removed.
    pub fn delfile(&self, ino: Ino) -> Vec<u8> {
        let mut k = self.with(tag::DELFILE, 8);
        k.extend_from_slice(&ino.to_be_bytes());
        k
    }

    pub fn delfile_range(&self) -> (Vec<u8>, Vec<u8>) {
        let start = self.with(tag::DELFILE, 0);
        let end = prefix_end(&start);
        (start, end)
    }

    /// Lock records of an inode (flock / POSIX), one per owner.
    pub fn lock(&self, ino: Ino, owner: u64) -> Vec<u8> {
        let mut k = self.with(tag::LOCK, 16);
        k.extend_from_slice(&ino.to_be_bytes());
        k.extend_from_slice(&owner.to_be_bytes());
        k
    }

    /// Bumped by every directory rename that changes the parent, so that the ancestry
    /// check of another such rename (no directory moved under its own descendant) is
    /// validated by one compare instead of one per ancestor.
    pub fn rename_gen(&self) -> Vec<u8> {
        self.with(tag::RENAME_GEN, 0)
    }

    /// Inode number encoded at the end of a fixed-layout key such as `attr`/`delfile`.
    pub fn trailing_ino(&self, key: &[u8]) -> Option<Ino> {
        let head = self.prefix.len() + 1;
        if key.len() < head + 8 {
            return None;
        }
        Some(u64::from_be_bytes(key[head..head + 8].try_into().ok()?))
    }
}

/// The smallest key greater than every key starting with `prefix` (etcd's "range end").
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.last_mut() {
        if *last < 0xff {
            *last += 1;
            return end;
        }
        end.pop();
    }
    // All 0xff (or empty): etcd's "to the end of the keyspace".
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn dentry_name_round_trips() {
        let k = Keys::new("ringfs", "vol");
        let key = k.dentry(42, b"hello");
        assert_eq!(k.dentry_name(42, &key), Some(&b"hello"[..]));
        assert_eq!(k.dentry_name(43, &key), None);
    }

    #[test]
    fn prefix_end_carries() {
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"ab"), b"ac".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }

    proptest! {
        #[test]
        fn dentries_of_a_directory_stay_in_its_range(parent in any::<u64>(), name in proptest::collection::vec(1u8..=255, 0..255), other in any::<u64>()) {
            let k = Keys::new("p", "v");
            let key = k.dentry(parent, &name);
            let (s, e) = k.dentry_range(parent);
            prop_assert!(key >= s && key < e);
            if other != parent {
                let (s2, e2) = k.dentry_range(other);
                prop_assert!(!(key >= s2 && key < e2));
            }
        }

        #[test]
        fn chunks_sort_by_index(ino in any::<u64>(), a in any::<u32>(), b in any::<u32>()) {
            let k = Keys::new("p", "v");
            prop_assert_eq!(a.cmp(&b), k.chunk(ino, a).cmp(&k.chunk(ino, b)));
            let (s, e) = k.chunk_range_from(ino, a.min(b));
            let key = k.chunk(ino, a.max(b));
            prop_assert!(key >= s && key < e);
            prop_assert_eq!(k.chunk_index(&key), Some(a.max(b)));
        }

        #[test]
        fn volumes_do_not_overlap(a in "[a-z]{1,8}", b in "[a-z]{1,8}", ino in any::<u64>()) {
            prop_assume!(a != b);
            let ka = Keys::new("ringfs", &a);
            let kb = Keys::new("ringfs", &b);
            let (s, e) = kb.volume_range();
            let key = ka.attr(ino);
            prop_assert!(!(key >= s && key < e));
        }
    }
}
