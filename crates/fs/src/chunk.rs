//! Content-defined chunking: file content cut where the content says, so that an edit moves
//! only the cuts near it and equal runs of bytes give equal chunks wherever they are.
//!
//! The cut points follow FastCDC (Xia et al., USENIX ATC 2016): a gear hash
//! `h = (h << 1) + GEAR[byte]` over the bytes of the chunk so far, skipping the first
//! [`ChunkParams::min`] bytes; a cut after the byte where `h & mask == 0`, with a mask of
//! `log2(avg) + 2` bits before the average size and `log2(avg) - 2` bits after it (normalized
//! chunking: sizes cluster around the average); and a forced cut at [`ChunkParams::max`]. The
//! masks take the top bits of `h`, which depend on the last 64 bytes; the low bits depend on
//! fewer. `GEAR` is 256 values of splitmix64 from seed 0, so the cuts are part of the format
//! (`docs/fs.md`): the same bytes are cut the same on every node and in every version.
//!
//! [`Chunker`] is streaming and sans-io: bytes come in pieces of any size, complete chunks go
//! out, and it holds at most one chunk's worth of bytes (below `max`) between calls.

/// Sizes of the chunks, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkParams {
    /// No cut before this many bytes (the last chunk of a file may be shorter).
    pub min: usize,
    /// The size chunks cluster around; a power of two.
    pub avg: usize,
    /// A cut at this many bytes whatever the content.
    pub max: usize,
}

impl ChunkParams {
    /// The file system's chunks: 256 KiB to 4 MiB, around 1 MiB. Large enough that a 2 GiB
    /// file has about 2,000 chunk entries in its metadata; small enough that an edit rewrites
    /// about a megabyte.
    pub const FILES: ChunkParams = ChunkParams {
        min: 256 * 1024,
        avg: 1024 * 1024,
        max: 4 * 1024 * 1024,
    };

    /// Whether the sizes make sense: `0 < min <= avg <= max`, `avg` a power of two of at
    /// least 64 (so both masks have bits).
    pub fn is_valid(&self) -> bool {
        self.min > 0
            && self.min <= self.avg
            && self.avg <= self.max
            && self.avg.is_power_of_two()
            && self.avg >= 64
    }
}

/// 256 values of splitmix64 from seed 0.
const GEAR: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut state: u64 = 0;
    let mut i = 0;
    while i < 256 {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        table[i] = z ^ (z >> 31);
        i += 1;
    }
    table
};

/// A mask of the top `bits` bits.
fn top_bits(bits: u32) -> u64 {
    if bits == 0 {
        0
    } else {
        !0u64 << (64 - bits.min(64))
    }
}

/// Cuts a stream of bytes into chunks ([`ChunkParams`]).
#[derive(Clone, Debug)]
pub struct Chunker {
    params: ChunkParams,
    /// The mask before the average size (harder to hit) and after it (easier).
    mask_small: u64,
    mask_large: u64,
    /// Bytes of the chunk being cut.
    pending: Vec<u8>,
    /// How far into `pending` the hash has been computed.
    scanned: usize,
    hash: u64,
}

impl Chunker {
    /// A chunker for `params`, which must be valid ([`ChunkParams::is_valid`]); invalid
    /// sizes are replaced by [`ChunkParams::FILES`].
    pub fn new(params: ChunkParams) -> Chunker {
        let params = if params.is_valid() {
            params
        } else {
            ChunkParams::FILES
        };
        let bits = params.avg.trailing_zeros();
        Chunker {
            params,
            mask_small: top_bits(bits + 2),
            mask_large: top_bits(bits.saturating_sub(2)),
            pending: Vec::new(),
            scanned: 0,
            hash: 0,
        }
    }

    /// The sizes it cuts to.
    pub fn params(&self) -> ChunkParams {
        self.params
    }

    /// Takes `data` and gives each chunk it completes to `emit`, in order.
    pub fn push(&mut self, mut data: &[u8], emit: &mut impl FnMut(&[u8])) {
        while !data.is_empty() {
            // Never more than one chunk pending: take at most what completes `max`.
            let room = self.params.max - self.pending.len();
            let (now, later) = data.split_at(room.min(data.len()));
            self.pending.extend_from_slice(now);
            data = later;
            while let Some(cut) = self.next_cut() {
                emit(&self.pending[..cut]);
                self.pending.drain(..cut);
                self.scanned = 0;
                self.hash = 0;
            }
        }
    }

    /// Gives what is left, if anything, as the last chunk.
    pub fn finish(mut self, emit: &mut impl FnMut(&[u8])) {
        if !self.pending.is_empty() {
            emit(&self.pending);
            self.pending.clear();
        }
    }

    /// Where the pending chunk ends, if its end is among the pending bytes.
    fn next_cut(&mut self) -> Option<usize> {
        let ChunkParams { min, avg, max } = self.params;
        let end = self.pending.len().min(max);
        let mut i = self.scanned.max(min);
        let mut hash = self.hash;
        while i < end {
            hash = (hash << 1).wrapping_add(GEAR[usize::from(self.pending[i])]);
            let mask = if i < avg {
                self.mask_small
            } else {
                self.mask_large
            };
            i += 1;
            if hash & mask == 0 {
                return Some(i);
            }
        }
        if self.pending.len() >= max {
            return Some(max);
        }
        self.scanned = i;
        self.hash = hash;
        None
    }
}

/// A chunk as a file's metadata names it: the BLAKE3 hash of its bytes and their count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChunkRef {
    /// BLAKE3 of the bytes.
    pub hash: [u8; 32],
    /// How many bytes.
    pub len: u32,
}

impl ChunkRef {
    /// The reference of `bytes` (at most 4 GiB).
    pub fn of(bytes: &[u8]) -> ChunkRef {
        ChunkRef {
            hash: *blake3::hash(bytes).as_bytes(),
            len: u32::try_from(bytes.len()).unwrap_or(u32::MAX),
        }
    }

    /// Whether `bytes` are this chunk's (the length and the hash match).
    pub fn matches(&self, bytes: &[u8]) -> bool {
        bytes.len() == self.len as usize && blake3::hash(bytes).as_bytes() == &self.hash
    }

    /// The hash in lowercase hex: the chunk's file name in a node's chunk store.
    pub fn hex(&self) -> String {
        blake3::Hash::from_bytes(self.hash).to_hex().to_string()
    }
}

/// A hash from 64 hex digits (either case), as [`ChunkRef::hex`] writes it.
pub fn hash_from_hex(hex: &str) -> Option<[u8; 32]> {
    blake3::Hash::from_hex(hex).ok().map(|h| *h.as_bytes())
}

/// The chunks of `data`, cut as [`Chunker`] cuts a stream of it.
pub fn chunk_refs(data: &[u8], params: ChunkParams) -> Vec<ChunkRef> {
    let mut refs = Vec::new();
    let mut chunker = Chunker::new(params);
    chunker.push(data, &mut |c| refs.push(ChunkRef::of(c)));
    chunker.finish(&mut |c| refs.push(ChunkRef::of(c)));
    refs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gear_table_is_splitmix64_from_zero() {
        // The first values of splitmix64 seeded with 0, as its reference implementation gives.
        assert_eq!(GEAR[0], 0xE220_A839_7B1D_CDAF);
        assert_eq!(GEAR[1], 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(GEAR[2], 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn masks_take_top_bits() {
        assert_eq!(top_bits(0), 0);
        assert_eq!(top_bits(2), 0xC000_0000_0000_0000);
        assert_eq!(top_bits(64), !0);
        let c = Chunker::new(ChunkParams::FILES);
        assert_eq!(c.mask_small.count_ones(), 22);
        assert_eq!(c.mask_large.count_ones(), 18);
    }

    #[test]
    fn invalid_sizes_fall_back_to_the_files_sizes() {
        let odd = ChunkParams {
            min: 10,
            avg: 100,
            max: 1000,
        };
        assert!(!odd.is_valid());
        assert_eq!(Chunker::new(odd).params(), ChunkParams::FILES);
    }

    #[test]
    fn a_chunk_knows_its_bytes() {
        let r = ChunkRef::of(b"hello");
        assert!(r.matches(b"hello") && !r.matches(b"hellO") && !r.matches(b"hell"));
        assert_eq!(r.hex(), blake3::hash(b"hello").to_hex().as_str());
    }
}
