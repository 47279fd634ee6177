//! Region arithmetic and nonce schemes of CSE v2: where region i starts in the ciphertext, how
//! long a ciphertext is, and which per-region nonce each SDK writes.
//!
//! Owns: pure functions over offsets and the three nonce encodings. Must not: hold keys or bytes.

use super::format::{NONCE_LEN, REGION_OVERHEAD};

/// How an SDK encodes region i's counter into the 12-byte nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NonceScheme {
    /// Python: `BE96(i)`. Ferry writes this one.
    Python,
    /// Java: `BE64(i) || 0x00000000`.
    Java,
    /// .NET: `0x00000000 || LE64(i + 1)`.
    DotNet,
}

impl NonceScheme {
    /// All schemes a reader accepts.
    pub const ALL: [NonceScheme; 3] = [NonceScheme::Python, NonceScheme::Java, NonceScheme::DotNet];

    /// The nonce of region `index` in this scheme (`None` only for the .NET counter overflowing).
    pub fn nonce(self, index: u64) -> Option<[u8; NONCE_LEN]> {
        let mut nonce = [0u8; NONCE_LEN];
        match self {
            NonceScheme::Python => nonce[4..].copy_from_slice(&index.to_be_bytes()),
            NonceScheme::Java => nonce[..8].copy_from_slice(&index.to_be_bytes()),
            NonceScheme::DotNet => nonce[4..].copy_from_slice(&index.checked_add(1)?.to_le_bytes()),
        }
        Some(nonce)
    }

    fn bit(self) -> u8 {
        match self {
            NonceScheme::Python => 1,
            NonceScheme::Java => 2,
            NonceScheme::DotNet => 4,
        }
    }
}

/// The schemes still consistent with every region seen so far. Region 0 cannot tell Python from
/// Java (both all-zero); region 1 can. Once a scheme is the only one left it must hold throughout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonceSchemes(u8);

impl NonceSchemes {
    /// Any of the three.
    pub fn any() -> Self {
        NonceSchemes(7)
    }

    /// Exactly one (e.g. learnt before a download was resumed).
    pub fn only(scheme: NonceScheme) -> Self {
        NonceSchemes(scheme.bit())
    }

    /// Keeps the schemes under which `nonce` is region `index`'s; false when none is left.
    pub fn narrow(&mut self, index: u64, nonce: &[u8]) -> bool {
        let mut left = 0;
        for scheme in NonceScheme::ALL {
            if self.0 & scheme.bit() != 0
                && scheme.nonce(index).is_some_and(|n| n.as_slice() == nonce)
            {
                left |= scheme.bit();
            }
        }
        self.0 = left;
        left != 0
    }

    /// The scheme, once it is unambiguous.
    pub fn resolved(self) -> Option<NonceScheme> {
        NonceScheme::ALL.into_iter().find(|s| s.bit() == self.0)
    }
}

/// Ciphertext length of `plain_len` plaintext bytes: `P + ceil(P / DataLength) * 28`
/// (`None` for a zero `data_length` or on overflow).
pub fn ciphertext_len(plain_len: u64, data_length: u64) -> Option<u64> {
    let regions = plain_len.checked_add(data_length.checked_sub(1)?)? / data_length;
    plain_len.checked_add(regions.checked_mul(REGION_OVERHEAD)?)
}

/// Plaintext length of a well-formed ciphertext of `cipher_len` bytes; `None` when no plaintext
/// has that ciphertext length (a partial region) or `data_length` is zero.
pub fn plaintext_len(cipher_len: u64, data_length: u64) -> Option<u64> {
    let region = data_length.checked_add(REGION_OVERHEAD)?;
    let full = cipher_len / region;
    let rest = cipher_len % region;
    let last = match rest {
        0 => 0,
        r if r > REGION_OVERHEAD => r - REGION_OVERHEAD,
        _ => return None,
    };
    full.checked_mul(data_length)?.checked_add(last)
}

/// Where to start a region-aligned read for plaintext offset `plain_start`:
/// `(ciphertext offset, region index)`. Skip `plain_start % data_length` plaintext bytes of the
/// first region decrypted. `None` for a zero `data_length` or on overflow.
pub fn region_aligned_range(plain_start: u64, data_length: u64) -> Option<(u64, u64)> {
    let index = plain_start.checked_div(data_length)?;
    let offset = index.checked_mul(data_length.checked_add(REGION_OVERHEAD)?)?;
    Some((offset, index))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_encodings() {
        assert_eq!(NonceScheme::Python.nonce(0), Some([0; 12]));
        assert_eq!(NonceScheme::Java.nonce(0), Some([0; 12]));
        assert_eq!(
            NonceScheme::DotNet.nonce(0),
            Some([0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0])
        );
        assert_eq!(
            NonceScheme::Python.nonce(0x0102),
            Some([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2])
        );
        assert_eq!(
            NonceScheme::Java.nonce(0x0102),
            Some([0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0])
        );
        assert_eq!(
            NonceScheme::DotNet.nonce(0x0102),
            Some([0, 0, 0, 0, 3, 1, 0, 0, 0, 0, 0, 0])
        );
        assert_eq!(NonceScheme::DotNet.nonce(u64::MAX), None);
    }

    #[test]
    fn schemes_narrow_and_stick() {
        let mut s = NonceSchemes::any();
        assert!(s.narrow(0, &[0; 12]));
        assert_eq!(s.resolved(), None, "region 0 is python or java");
        let java1 = NonceScheme::Java.nonce(1).unwrap_or_default();
        assert!(s.narrow(1, &java1));
        assert_eq!(s.resolved(), Some(NonceScheme::Java));
        let python2 = NonceScheme::Python.nonce(2).unwrap_or_default();
        assert!(
            !s.narrow(2, &python2),
            "switching scheme mid-blob is refused"
        );
    }

    #[test]
    fn dotnet_resolves_at_region_zero() {
        let mut s = NonceSchemes::any();
        let n = NonceScheme::DotNet.nonce(0).unwrap_or_default();
        assert!(s.narrow(0, &n));
        assert_eq!(s.resolved(), Some(NonceScheme::DotNet));
    }

    #[test]
    fn lengths() {
        let dl = 4 * 1024 * 1024;
        assert_eq!(ciphertext_len(0, dl), Some(0));
        assert_eq!(ciphertext_len(1, dl), Some(29));
        assert_eq!(ciphertext_len(dl, dl), Some(dl + 28));
        assert_eq!(ciphertext_len(dl + 1, dl), Some(dl + 1 + 56));
        assert_eq!(ciphertext_len(5, 0), None);
        assert_eq!(ciphertext_len(u64::MAX, 16), None);
        for p in [0, 1, 15, 16, 17, 31, 32, 33, 1000] {
            let c = ciphertext_len(p, 16).unwrap_or_default();
            assert_eq!(plaintext_len(c, 16), Some(p), "p={p}");
        }
        for partial in 1..=28 {
            assert_eq!(plaintext_len(44 + partial, 16), None);
        }
        assert_eq!(plaintext_len(10, 0), None);
    }

    #[test]
    fn aligned_range() {
        assert_eq!(region_aligned_range(0, 16), Some((0, 0)));
        assert_eq!(region_aligned_range(15, 16), Some((0, 0)));
        assert_eq!(region_aligned_range(16, 16), Some((44, 1)));
        assert_eq!(region_aligned_range(40, 16), Some((88, 2)));
        assert_eq!(region_aligned_range(1, 0), None);
        assert_eq!(region_aligned_range(u64::MAX, 16), None);
    }
}
