//! The bloom filter Hudi writes into every base file's footer (`org.apache.hudi.bloomfilter`, type code
//! `DYNAMIC_V0`): a `HoodieDynamicBoundedBloomFilter`, i.e. Hadoop's dynamic bloom filter with 32-bit
//! MurmurHash, serialized with Java's `DataOutput` (big-endian) and base64-encoded. Hudi's BLOOM index
//! (and any JVM upsert with `hoodie.index.type=BLOOM`) reads it to skip files that cannot hold a key.
//!
//! Defaults as Hudi's (`hoodie.index.bloom.num_entries` 60,000, `hoodie.index.bloom.fpp` 1e-9,
//! `hoodie.bloom.index.filter.dynamic.max.entries` 100,000).

use base64::Engine;

/// Footer key of the serialized filter.
pub const BLOOM_FILTER_KEY: &str = "org.apache.hudi.bloomfilter";
/// Footer key of the filter's type code.
pub const BLOOM_TYPE_CODE_KEY: &str = "hoodie_bloom_filter_type_code";
/// The type code of [`DynamicBloomFilter`].
pub const DYNAMIC_V0: &str = "DYNAMIC_V0";

const DEFAULT_ENTRIES: u32 = 60_000;
const DEFAULT_FPP: f64 = 0.000_000_001;
const DEFAULT_MAX_ENTRIES: u32 = 100_000;
/// Hadoop's `Filter.VERSION`.
const FILTER_VERSION: i32 = -1;
/// Hadoop's `Hash.MURMUR_HASH`.
const MURMUR_HASH: u8 = 1;

/// One standard bloom filter row.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    bits: Vec<u8>,
}

/// Hudi's `HoodieDynamicBoundedBloomFilter`: rows of `vector_size` bits, a new row every `per_row` keys,
/// at most `max_entries / per_row` rows (then keys go round-robin into the existing rows).
#[derive(Debug, Clone, PartialEq)]
pub struct DynamicBloomFilter {
    vector_size: u32,
    hashes: u32,
    per_row: u32,
    max_entries: u32,
    in_current_row: u32,
    reached_max: bool,
    next_round_robin: usize,
    rows: Vec<Row>,
}

impl DynamicBloomFilter {
    /// A filter with Hudi's default parameters.
    pub fn with_defaults() -> Self {
        Self::new(DEFAULT_ENTRIES, DEFAULT_FPP, DEFAULT_MAX_ENTRIES)
    }

    /// A filter sized as Hudi sizes it: `ceil(n * -ln(p) / ln(2)^2)` bits and `ceil(ln 2 * bits / n)` hashes.
    pub fn new(entries: u32, fpp: f64, max_entries: u32) -> Self {
        let ln2 = std::f64::consts::LN_2;
        let vector_size = (entries as f64 * (-fpp.ln() / (ln2 * ln2))).ceil() as u32;
        let hashes = (ln2 * vector_size as f64 / entries as f64).ceil() as u32;
        DynamicBloomFilter {
            vector_size,
            hashes,
            per_row: entries,
            max_entries,
            in_current_row: 0,
            reached_max: false,
            next_round_robin: 0,
            rows: vec![Row::new(vector_size)],
        }
    }

    /// Adds a record key (its UTF-8 bytes).
    pub fn add(&mut self, key: &str) {
        let row = self.active_row();
        let positions = hash_positions(key.as_bytes(), self.hashes, self.vector_size);
        let bits = &mut self.rows[row].bits;
        for p in positions {
            bits[(p / 8) as usize] |= 1 << (p % 8);
        }
        self.in_current_row += 1;
    }

    /// True when `key` may be in the filter (false: certainly not).
    pub fn might_contain(&self, key: &str) -> bool {
        let positions = hash_positions(key.as_bytes(), self.hashes, self.vector_size);
        self.rows.iter().any(|r| {
            positions
                .iter()
                .all(|p| r.bits[(p / 8) as usize] & (1 << (p % 8)) != 0)
        })
    }

    fn active_row(&mut self) -> usize {
        if self.reached_max {
            let i = self.next_round_robin % self.rows.len();
            self.next_round_robin += 1;
            return i;
        }
        if self.in_current_row >= self.per_row {
            if (self.rows.len() as u64) * (self.per_row as u64) < self.max_entries as u64 {
                self.rows.push(Row::new(self.vector_size));
                self.in_current_row = 0;
            } else {
                // As Hadoop's filter: row 0 now, then round-robin from row 0 again.
                self.reached_max = true;
                return 0;
            }
        }
        self.rows.len() - 1
    }

    /// The Java serialization (`InternalDynamicBloomFilter.write`).
    pub fn to_bytes(&self) -> Vec<u8> {
        let row_bytes = self.vector_size.div_ceil(8) as usize;
        let mut out = Vec::with_capacity(30 + self.rows.len() * (13 + row_bytes));
        self.write_header(&mut out);
        out.extend_from_slice(&(self.per_row as i32).to_be_bytes());
        out.extend_from_slice(&(self.in_current_row as i32).to_be_bytes());
        out.extend_from_slice(&(self.rows.len() as i32).to_be_bytes());
        for row in &self.rows {
            self.write_header(&mut out);
            out.extend_from_slice(&row.bits);
        }
        out
    }

    fn write_header(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&FILTER_VERSION.to_be_bytes());
        out.extend_from_slice(&(self.hashes as i32).to_be_bytes());
        out.push(MURMUR_HASH);
        out.extend_from_slice(&(self.vector_size as i32).to_be_bytes());
    }

    /// The footer value: base64 of [`Self::to_bytes`].
    pub fn serialize(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.to_bytes())
    }

    /// Parses a footer value written by Hudi (or by [`Self::serialize`]).
    pub fn deserialize(text: &str) -> Result<Self, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| format!("bloom filter is not base64: {e}"))?;
        let mut r = Reader {
            bytes: &bytes,
            at: 0,
        };
        let (hashes, vector_size) = r.header()?;
        let per_row = r.int()? as u32;
        let in_current_row = r.int()? as u32;
        let count = r.int()?;
        if !(1..=10_000).contains(&count) {
            return Err(format!("bloom filter has {count} rows"));
        }
        let mut rows = Vec::with_capacity(count as usize);
        for _ in 0..count {
            if r.header()? != (hashes, vector_size) {
                return Err("bloom filter rows disagree on their parameters".into());
            }
            rows.push(Row {
                bits: r.take(vector_size.div_ceil(8) as usize)?.to_vec(),
            });
        }
        Ok(DynamicBloomFilter {
            vector_size,
            hashes,
            per_row,
            max_entries: DEFAULT_MAX_ENTRIES.max(per_row * count as u32),
            in_current_row,
            reached_max: false,
            next_round_robin: 0,
            rows,
        })
    }
}

impl Row {
    fn new(vector_size: u32) -> Row {
        Row {
            bits: vec![0; vector_size.div_ceil(8) as usize],
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.at + n;
        let slice = self
            .bytes
            .get(self.at..end)
            .ok_or_else(|| format!("bloom filter ends at byte {}", self.bytes.len()))?;
        self.at = end;
        Ok(slice)
    }

    fn int(&mut self) -> Result<i32, String> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// (hashes, vector size) of an `InternalFilter` header.
    fn header(&mut self) -> Result<(u32, u32), String> {
        let version = self.int()?;
        let hashes = self.int()?;
        let hash_type = self.take(1)?[0];
        let vector_size = self.int()?;
        if version != FILTER_VERSION || hash_type != MURMUR_HASH || hashes <= 0 || vector_size <= 0
        {
            return Err(format!(
                "unsupported bloom filter (version {version}, hash type {hash_type})"
            ));
        }
        Ok((hashes as u32, vector_size as u32))
    }
}

/// Hadoop's `HashFunction.hash`: `hashes` chained MurmurHash values, each `abs(h % vector_size)`.
fn hash_positions(key: &[u8], hashes: u32, vector_size: u32) -> Vec<u32> {
    let mut seed = 0i32;
    (0..hashes)
        .map(|_| {
            seed = murmur_hash(key, seed);
            (seed % vector_size as i32).unsigned_abs()
        })
        .collect()
}

/// Hadoop's 32-bit `MurmurHash.hash(data, length, seed)` (MurmurHash2 with Java's signed bytes).
pub fn murmur_hash(data: &[u8], seed: i32) -> i32 {
    const M: i32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h = seed ^ len as i32;
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k =
            (c[3] as i8 as i32) << 24 | (c[2] as i32) << 16 | (c[1] as i32) << 8 | (c[0] as i32);
        k = k.wrapping_mul(M);
        k ^= ((k as u32) >> R) as i32;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    // Hadoop reads the tail from the end: `data[len - 3] << 16`, `data[len - 2] << 8`, `data[len - 1]`,
    // each a sign-extended Java byte.
    let n = tail.len();
    if n > 0 {
        if n >= 3 {
            h ^= (tail[n - 3] as i8 as i32) << 16;
        }
        if n >= 2 {
            h ^= (tail[n - 2] as i8 as i32) << 8;
        }
        h ^= tail[n - 1] as i8 as i32;
        h = h.wrapping_mul(M);
    }
    h ^= ((h as u32) >> 13) as i32;
    h = h.wrapping_mul(M);
    h ^= ((h as u32) >> 15) as i32;
    h
}
