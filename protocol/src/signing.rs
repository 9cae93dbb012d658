//! Signed reports: our extension to the 5.0.5 wire.
//!
//! Each node holds an Ed25519 key. A report carries one extra header,
//! [`crate::SIGNATURE_HEADER`]:
//!
//! ```text
//! v1 key=<base64url public key> boot=<boot id> seq=<u64> ts=<unix ms> sig=<base64url signature>
//! ```
//!
//! The signature covers [`signing_payload`]: the method, the path, the SHA-256 of the
//! exact body bytes, the sequence number, the boot id and the send time. The collector
//! verifies it before it parses the body, pins the public key to `(node_type, node_id)`
//! at first contact, and rejects a `(boot_id, seq)` it has already seen or passed.
//!
//! Signing uses ring. Verification, the collector's hottest step, goes through one
//! function, [`verify_ed25519`], which uses ed25519-dalek: with its AVX-512 IFMA backend
//! (compiled in by the packaged build, picked at run time when the CPU has it, else AVX2
//! or serial) it verified 1.75x faster than ring on an AMD EPYC host and 1.06x (within the
//! noise) on an Intel Xeon one (BENCHMARKS.md, "Instructions per report").
//! Both check RFC 8032's cofactorless equation with a canonical S and compare R by its
//! bytes, so they accept and refuse the same signatures (tested below, edge cases
//! included); ring stays selectable ([`set_verifier`]) for the benchmark's comparison.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};

/// Longest signature header accepted; anything longer is refused unparsed.
pub const MAX_HEADER_LEN: usize = 512;
const DOMAIN: &str = "status-reporter-v1";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature header is longer than {MAX_HEADER_LEN} bytes")]
    TooLong,
    #[error("signature header must start with \"v1 \"")]
    Version,
    #[error("signature header field {0:?} is malformed")]
    Field(&'static str),
    #[error("signature header field {0:?} is missing")]
    Missing(&'static str),
    #[error("signature header has an unknown or repeated field")]
    UnknownField,
    #[error("signature does not verify")]
    BadSignature,
    #[error("node key is not a valid Ed25519 PKCS#8 key")]
    BadKey,
}

/// Everything the signature header carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedEnvelope {
    pub public_key: [u8; 32],
    pub boot_id: String,
    pub seq: u64,
    pub sent_at_ms: i64,
    pub signature: [u8; 64],
}

/// The bytes that are signed. Fields are newline-separated and none may contain a
/// newline (paths and boot ids are checked), so the encoding is unambiguous.
pub fn signing_payload(
    method: &str,
    path: &str,
    body: &[u8],
    boot_id: &str,
    seq: u64,
    sent_at_ms: i64,
) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = ring::digest::digest(&ring::digest::SHA256, body);
    let mut hex = String::with_capacity(64);
    for b in digest.as_ref() {
        hex.push(HEX[usize::from(b >> 4)] as char);
        hex.push(HEX[usize::from(b & 0xf)] as char);
    }
    format!("{DOMAIN}\n{method}\n{path}\n{hex}\n{seq}\n{boot_id}\n{sent_at_ms}").into_bytes()
}

/// A boot id is 1–64 characters of `[A-Za-z0-9-]` (a UUID in practice).
pub fn valid_boot_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl SignedEnvelope {
    pub fn parse_header(value: &str) -> Result<Self, SignatureError> {
        if value.len() > MAX_HEADER_LEN {
            return Err(SignatureError::TooLong);
        }
        let rest = value.strip_prefix("v1 ").ok_or(SignatureError::Version)?;
        let (mut key, mut boot, mut seq, mut ts, mut sig) = (None, None, None, None, None);
        for part in rest.split(' ').filter(|p| !p.is_empty()) {
            let (name, val) = part.split_once('=').ok_or(SignatureError::UnknownField)?;
            let slot = match name {
                "key" => &mut key,
                "boot" => &mut boot,
                "seq" => &mut seq,
                "ts" => &mut ts,
                "sig" => &mut sig,
                _ => return Err(SignatureError::UnknownField),
            };
            if slot.replace(val).is_some() {
                return Err(SignatureError::UnknownField);
            }
        }
        let key = key.ok_or(SignatureError::Missing("key"))?;
        let boot = boot.ok_or(SignatureError::Missing("boot"))?;
        let seq = seq.ok_or(SignatureError::Missing("seq"))?;
        let ts = ts.ok_or(SignatureError::Missing("ts"))?;
        let sig = sig.ok_or(SignatureError::Missing("sig"))?;
        if !valid_boot_id(boot) {
            return Err(SignatureError::Field("boot"));
        }
        Ok(SignedEnvelope {
            public_key: decode_fixed(key).ok_or(SignatureError::Field("key"))?,
            boot_id: boot.to_string(),
            seq: parse_digits(seq).ok_or(SignatureError::Field("seq"))?,
            sent_at_ms: parse_digits(ts)
                .and_then(|v| i64::try_from(v).ok())
                .ok_or(SignatureError::Field("ts"))?,
            signature: decode_fixed(sig).ok_or(SignatureError::Field("sig"))?,
        })
    }

    pub fn to_header(&self) -> String {
        format!(
            "v1 key={} boot={} seq={} ts={} sig={}",
            B64.encode(self.public_key),
            self.boot_id,
            self.seq,
            self.sent_at_ms,
            B64.encode(self.signature)
        )
    }

    /// Checks the signature over exactly these bytes.
    pub fn verify(&self, method: &str, path: &str, body: &[u8]) -> Result<(), SignatureError> {
        let payload = signing_payload(method, path, body, &self.boot_id, self.seq, self.sent_at_ms);
        if verify_ed25519(&self.public_key, &payload, &self.signature) {
            Ok(())
        } else {
            Err(SignatureError::BadSignature)
        }
    }

    /// The public key in the text form the store and the CLI show.
    pub fn key_id(&self) -> String {
        B64.encode(self.public_key)
    }
}

/// An implementation of Ed25519 verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verifier {
    Ring,
    /// ed25519-dalek's `verify` (not `verify_strict`, which also refuses small-order keys
    /// and R values that RFC 8032 and ring accept).
    Dalek,
}

/// The verifier [`verify_ed25519`] uses: dalek unless [`set_verifier`] said otherwise.
static VERIFIER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Switches [`verify_ed25519`] for the whole process. Only the benchmark does this (to
/// compare both in one build); the product always verifies with dalek.
pub fn set_verifier(v: Verifier) {
    VERIFIER.store(v == Verifier::Ring, std::sync::atomic::Ordering::Relaxed);
}

/// The one place a signature is checked: whether `signature` is `public_key`'s Ed25519
/// signature of `message`.
pub fn verify_ed25519(public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    let v = if VERIFIER.load(std::sync::atomic::Ordering::Relaxed) {
        Verifier::Ring
    } else {
        Verifier::Dalek
    };
    verify_with(v, public_key, message, signature)
}

/// [`verify_ed25519`] with a chosen implementation.
pub fn verify_with(
    v: Verifier,
    public_key: &[u8; 32],
    message: &[u8],
    signature: &[u8; 64],
) -> bool {
    match v {
        Verifier::Ring => UnparsedPublicKey::new(&ED25519, public_key)
            .verify(message, signature)
            .is_ok(),
        Verifier::Dalek => {
            use ed25519_dalek::Verifier as _;
            ed25519_dalek::VerifyingKey::from_bytes(public_key).is_ok_and(|k| {
                k.verify(message, &ed25519_dalek::Signature::from_bytes(signature))
                    .is_ok()
            })
        }
    }
}

/// Prefix of a key fingerprint, as OpenSSH writes its own.
pub const FINGERPRINT_PREFIX: &str = "SHA256:";

/// A public key's fingerprint, `SHA256:<base64url of SHA-256(key)>`: what `configure`
/// prints for the operator to approve and `nodes forget --accept-key` takes. Short
/// enough to read aloud, and a different form from the key id so the two are not mixed up.
pub fn key_fingerprint(public_key: &[u8; 32]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, public_key);
    format!("{FINGERPRINT_PREFIX}{}", B64.encode(digest.as_ref()))
}

/// The fingerprint of a key id (the base64url public key the store and the header hold).
pub fn fingerprint_of_key_id(key_id: &str) -> Option<String> {
    decode_fixed::<32>(key_id).map(|k| key_fingerprint(&k))
}

/// What an operator typed as a key: a fingerprint (`SHA256:...`) or a whole key id,
/// as the canonical fingerprint. `None` for anything else.
pub fn parse_fingerprint(s: &str) -> Option<String> {
    let s = s.trim();
    match s.strip_prefix(FINGERPRINT_PREFIX) {
        Some(digest) => decode_fixed::<32>(digest).map(|_| s.to_string()),
        None => fingerprint_of_key_id(s),
    }
}

/// Only plain decimal digits: no sign, no spaces, no `+`.
fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn decode_fixed<const N: usize>(s: &str) -> Option<[u8; N]> {
    const {
        assert!(
            N <= 64,
            "the buffer below holds what 2N characters decode to"
        )
    };
    if s.len() > N * 2 {
        return None;
    }
    // Into a stack buffer rather than a new Vec: the collector decodes a key and a
    // signature per report (collector-bench --count). At most 2N characters decode to at
    // most 1.5N bytes, so the buffer is never too small; the decoding rules are the same.
    let mut buf = [0u8; 96];
    let n = B64.decode_slice(s, &mut buf).ok()?;
    buf.get(..n)?.try_into().ok()
}

/// A node's signing key.
pub struct NodeKey {
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeKey({})", self.key_id())
    }
}

impl NodeKey {
    /// A fresh key as PKCS#8 v2 DER, for the caller to store (mode 0600).
    pub fn generate_pkcs8() -> Result<Vec<u8>, SignatureError> {
        Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map(|doc| doc.as_ref().to_vec())
            .map_err(|_| SignatureError::BadKey)
    }

    pub fn from_pkcs8(der: &[u8]) -> Result<Self, SignatureError> {
        Ed25519KeyPair::from_pkcs8(der)
            .map(|pair| NodeKey { pair })
            .map_err(|_| SignatureError::BadKey)
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.pair
            .public_key()
            .as_ref()
            .try_into()
            .expect("Ed25519 public keys are 32 bytes")
    }

    pub fn key_id(&self) -> String {
        B64.encode(self.public_key())
    }

    pub fn fingerprint(&self) -> String {
        key_fingerprint(&self.public_key())
    }

    pub fn sign(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        boot_id: &str,
        seq: u64,
        sent_at_ms: i64,
    ) -> SignedEnvelope {
        let payload = signing_payload(method, path, body, boot_id, seq, sent_at_ms);
        let sig = self.pair.sign(&payload);
        SignedEnvelope {
            public_key: self.public_key(),
            boot_id: boot_id.to_string(),
            seq,
            sent_at_ms,
            signature: sig
                .as_ref()
                .try_into()
                .expect("Ed25519 signatures are 64 bytes"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `decode_fixed` decodes into a stack buffer: it must accept and refuse exactly what
    /// decoding into a Vec did (same engine, same length rule).
    #[test]
    fn fixed_decoding_decides_as_decoding_into_a_vec_did() {
        fn old<const N: usize>(s: &str) -> Option<[u8; N]> {
            if s.len() > N * 2 {
                return None;
            }
            B64.decode(s).ok()?.try_into().ok()
        }
        let key = B64.encode([7u8; 32]);
        let sig = B64.encode([0xffu8; 64]);
        let mut inputs: Vec<String> = vec![
            key.clone(),
            sig.clone(),
            String::new(),
            format!("{key}="),
            format!("{key}A"),
            format!("{key}AA"),
            key[..key.len() - 1].to_string(),
            format!("{}B", &key[..key.len() - 1]), // non-canonical trailing bits
            key.replace('A', "+"),
            format!("{sig}{sig}"),
            "A".repeat(128),
            "A".repeat(129),
            "é".repeat(20),
        ];
        for n in 0..=130 {
            inputs.push("_".repeat(n));
        }
        for s in &inputs {
            assert_eq!(decode_fixed::<32>(s), old::<32>(s), "{s:?}");
            assert_eq!(decode_fixed::<64>(s), old::<64>(s), "{s:?}");
        }
        assert_eq!(decode_fixed::<32>(&key), Some([7u8; 32]));
        assert_eq!(decode_fixed::<64>(&sig), Some([0xffu8; 64]));
    }

    fn key() -> NodeKey {
        NodeKey::from_pkcs8(&NodeKey::generate_pkcs8().unwrap()).unwrap()
    }

    const PATH: &str = "/api/v3.1/cluster-status/db/n1";

    #[test]
    fn fingerprints_round_trip_from_key_ids_and_refuse_junk() {
        let k = key();
        let fp = k.fingerprint();
        assert!(
            fp.starts_with(FINGERPRINT_PREFIX) && fp.len() == 7 + 43,
            "{fp}"
        );
        assert_eq!(
            fingerprint_of_key_id(&k.key_id()).as_deref(),
            Some(fp.as_str())
        );
        assert_eq!(parse_fingerprint(&fp).as_deref(), Some(fp.as_str()));
        assert_eq!(parse_fingerprint(&k.key_id()).as_deref(), Some(fp.as_str()));
        for junk in [
            "",
            "SHA256:",
            "SHA256:abc",
            "md5:xx",
            "not a key",
            &fp[..30],
        ] {
            assert_eq!(parse_fingerprint(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn header_round_trips_and_verifies() {
        let k = key();
        let env = k.sign("PUT", PATH, b"{}", "boot-1", 7, 1_700_000_000_000);
        let parsed = SignedEnvelope::parse_header(&env.to_header()).unwrap();
        assert_eq!(parsed, env);
        parsed.verify("PUT", PATH, b"{}").unwrap();
    }

    #[test]
    fn any_covered_field_change_breaks_the_signature() {
        let k = key();
        let env = k.sign("PUT", PATH, b"{}", "boot-1", 7, 1_700_000_000_000);
        assert_eq!(
            env.verify("PUT", PATH, b"{} "),
            Err(SignatureError::BadSignature)
        );
        assert_eq!(
            env.verify("POST", PATH, b"{}"),
            Err(SignatureError::BadSignature)
        );
        assert_eq!(
            env.verify("PUT", "/api/v3.1/cluster-status/broker/n1", b"{}"),
            Err(SignatureError::BadSignature)
        );
        for tampered in [
            SignedEnvelope {
                seq: 8,
                ..env.clone()
            },
            SignedEnvelope {
                boot_id: "boot-2".into(),
                ..env.clone()
            },
            SignedEnvelope {
                sent_at_ms: 1,
                ..env.clone()
            },
            SignedEnvelope {
                public_key: key().public_key(),
                ..env.clone()
            },
        ] {
            assert_eq!(
                tampered.verify("PUT", PATH, b"{}"),
                Err(SignatureError::BadSignature)
            );
        }
    }

    #[test]
    fn malformed_headers_are_refused_with_a_reason() {
        let good = key().sign("PUT", PATH, b"", "b", 1, 2).to_header();
        let cases: Vec<(String, SignatureError)> = vec![
            ("x".repeat(MAX_HEADER_LEN + 1), SignatureError::TooLong),
            (good.replacen("v1 ", "v2 ", 1), SignatureError::Version),
            (
                good.replace("seq=1", "seq=-1"),
                SignatureError::Field("seq"),
            ),
            (
                good.replace("seq=1", "seq=+1"),
                SignatureError::Field("seq"),
            ),
            (
                good.replace("seq=1", "seq=99999999999999999999"),
                SignatureError::Field("seq"),
            ),
            (
                good.replace("boot=b", "boot=../x"),
                SignatureError::Field("boot"),
            ),
            (good.replace(" ts=2", ""), SignatureError::Missing("ts")),
            (format!("{good} seq=3"), SignatureError::UnknownField),
            (format!("{good} extra=1"), SignatureError::UnknownField),
            (
                good.replace("key=", "key=AAAA"),
                SignatureError::Field("key"),
            ),
        ];
        for (header, want) in cases {
            assert_eq!(SignedEnvelope::parse_header(&header), Err(want), "{header}");
        }
    }

    #[test]
    fn non_canonical_and_flipped_signatures_are_refused() {
        let k = key();
        let env = k.sign("PUT", PATH, b"{}", "boot-1", 7, 1_700_000_000_000);
        // S + L: the same signature in a non-canonical form. RFC 8032 requires refusing it
        // (malleability), so a replayed report cannot be made to look new this way.
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut malleated = env.clone();
        let mut carry = 0u16;
        for (i, l) in L.iter().enumerate() {
            let sum = u16::from(env.signature[32 + i]) + u16::from(*l) + carry;
            malleated.signature[32 + i] = sum as u8;
            carry = sum >> 8;
        }
        assert_eq!(
            malleated.verify("PUT", PATH, b"{}"),
            Err(SignatureError::BadSignature)
        );
        for i in 0..64 {
            let mut bad = env.clone();
            bad.signature[i] ^= 1 << (i % 8);
            assert_eq!(
                bad.verify("PUT", PATH, b"{}"),
                Err(SignatureError::BadSignature),
                "byte {i}"
            );
        }
    }

    #[test]
    fn payload_hex_is_the_lowercase_sha256_of_the_body() {
        let p = String::from_utf8(signing_payload("PUT", "/p", b"abc", "b", 1, 2)).unwrap();
        assert_eq!(
            p,
            "status-reporter-v1\nPUT\n/p\nba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n1\nb\n2"
        );
    }

    #[test]
    fn garbage_keys_are_refused() {
        assert_eq!(
            NodeKey::from_pkcs8(b"not a key").unwrap_err(),
            SignatureError::BadKey
        );
    }

    /// Both verifiers' decision on one signature, asserted equal.
    fn decision(key: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
        let ring = verify_with(Verifier::Ring, key, msg, sig);
        let dalek = verify_with(Verifier::Dalek, key, msg, sig);
        assert_eq!(
            ring, dalek,
            "ring and dalek disagree: key {key:02x?} sig {sig:02x?} msg {msg:02x?}"
        );
        ring
    }

    fn hex32(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    fn sig_of(r: [u8; 32], s: [u8; 32]) -> [u8; 64] {
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&r);
        sig[32..].copy_from_slice(&s);
        sig
    }

    #[test]
    fn ring_and_dalek_decide_alike_on_genuine_and_corrupted_signatures() {
        for n in 0..4u8 {
            let k = key();
            let msg = vec![n; usize::from(n) * 7];
            let pk = k.public_key();
            let sig: [u8; 64] = k.pair.sign(&msg).as_ref().try_into().unwrap();
            assert!(decision(&pk, &msg, &sig), "a genuine signature");
            for bit in (0..512).step_by(7) {
                let mut bad = sig;
                bad[bit / 8] ^= 1 << (bit % 8);
                assert!(!decision(&pk, &msg, &bad), "signature bit {bit}");
            }
            for bit in (0..256).step_by(11) {
                let mut bad = pk;
                bad[bit / 8] ^= 1 << (bit % 8);
                decision(&bad, &msg, &sig);
            }
            let mut other = msg.clone();
            other.push(1);
            assert!(!decision(&pk, &other, &sig));
        }
    }

    /// The encodings of small-order points (canonical and not) from "Taming the many
    /// EdDSAs" (Chalkias, Garillot, Nikolaenko, 2020), table 6, and the curve's
    /// eight-torsion as curve25519-dalek computes it.
    fn small_order_encodings() -> Vec<[u8; 32]> {
        let mut v: Vec<[u8; 32]> = curve25519_dalek::constants::EIGHT_TORSION
            .iter()
            .map(|p| p.compress().to_bytes())
            .collect();
        for s in [
            "0100000000000000000000000000000000000000000000000000000000000080",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "0000000000000000000000000000000000000000000000000000000000000080",
            "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        ] {
            v.push(hex32(s));
        }
        v
    }

    #[test]
    fn ring_and_dalek_decide_alike_on_small_order_and_non_canonical_points() {
        use curve25519_dalek::{EdwardsPoint, Scalar};
        let small = small_order_encodings();
        let identity = hex32("0100000000000000000000000000000000000000000000000000000000000000");
        let zero = [0u8; 32];
        // S = L (zero, non-canonical), S = L + 1, and S with the top bits set.
        let l = hex32("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010");
        let mut l_plus_1 = l;
        l_plus_1[0] += 1;
        let mut high = zero;
        high[31] = 0xe0;
        let sb = EdwardsPoint::mul_base(&Scalar::from(7u8))
            .compress()
            .to_bytes();
        let mut seven = zero;
        seven[0] = 7;
        let (mut accepted, mut strict_refused) = (0, 0);
        for a in &small {
            for r in small.iter().chain([&sb]) {
                for s in [zero, seven, l, l_plus_1, high] {
                    for m in 0..3u8 {
                        let msg = [m; 3];
                        let sig = sig_of(*r, s);
                        if decision(a, &msg, &sig) {
                            accepted += 1;
                            let strict =
                                ed25519_dalek::VerifyingKey::from_bytes(a).is_ok_and(|k| {
                                    k.verify_strict(
                                        &msg,
                                        &ed25519_dalek::Signature::from_bytes(&sig),
                                    )
                                    .is_ok()
                                });
                            strict_refused += usize::from(!strict);
                        }
                    }
                }
            }
        }
        // The identity key accepts R = [S]B for every message under the cofactorless
        // equation both use; verify_strict would refuse every such small-order key.
        assert!(decision(&identity, b"anything", &sig_of(sb, seven)));
        assert!(decision(&identity, b"anything", &sig_of(identity, zero)));
        assert!(
            accepted > 0 && strict_refused == accepted,
            "{accepted} {strict_refused}"
        );
    }

    #[test]
    fn ring_and_dalek_decide_alike_on_a_mixed_order_key() {
        // A' = [a]B + T (T of order 8): a signature made with a verifies under the
        // cofactorless equation only when 8 divides h. Both must say the same each time.
        use curve25519_dalek::{EdwardsPoint, Scalar};
        let a = Scalar::from_bytes_mod_order([0x42; 32]);
        let t = curve25519_dalek::constants::EIGHT_TORSION[1];
        let pk = (EdwardsPoint::mul_base(&a) + t).compress().to_bytes();
        let (mut yes, mut no) = (0, 0);
        for m in 0..64u8 {
            let msg = [m; 5];
            let r = Scalar::from_bytes_mod_order([m.wrapping_add(1); 32]);
            let r_enc = EdwardsPoint::mul_base(&r).compress().to_bytes();
            let mut h_in = r_enc.to_vec();
            h_in.extend_from_slice(&pk);
            h_in.extend_from_slice(&msg);
            let digest = ring::digest::digest(&ring::digest::SHA512, &h_in);
            let h = Scalar::from_bytes_mod_order_wide(digest.as_ref().try_into().unwrap());
            let s = (r + h * a).to_bytes();
            if decision(&pk, &msg, &sig_of(r_enc, s)) {
                yes += 1;
            } else {
                no += 1;
            }
        }
        assert!(yes > 0 && no > 0, "{yes} accepted, {no} refused");
    }
}
