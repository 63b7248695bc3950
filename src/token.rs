//! The token format: minting, parsing and verifying the 35-character link
//! tokens, and the MAC keys that sign them. This module owns the wire format
//! only (layout, alphabet, day marker, key ids, MAC) and does no I/O beyond
//! asking the OS for random bytes in [`generate`]; storage, caching and HTTP
//! live elsewhere. See `docs/token.md` for the layout and the reasoning.
//!
//! A token is `payload[..p] - marker - payload[p..]` with
//! `payload = random22 ‖ kid1 ‖ mac6`, `marker = ver1 ‖ day3` and a random
//! split `p` in `1..=28`, all in base62 (`0-9A-Za-z`) plus the two dashes.
//!
//! Version `1` carries 128 random bits, which the store finds through a
//! unique index. Version `2` (minted now) carries one AES-128 block that
//! hides the link's id and 80 secret bits ([`Sealed`]): the store finds it by
//! primary key and compares the secret, so no random index is written.

use std::fmt;

use aes::Aes128;
use aes::cipher::{Array, BlockCipherDecrypt, BlockCipherEncrypt};
use hmac::{Hmac, KeyInit, Mac};
use rand::TryRng;
use rand::rngs::SysRng;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::day::Day;

/// Format version 1, the first character of the marker: 128 random bits.
pub const VERSION: u8 = b'1';
/// Format version 2: an AES block hiding the link id and a secret ([`Sealed`]). What [`generate_v2`] mints.
pub const VERSION_2: u8 = b'2';
/// Largest link id a v2 token can carry (48 bits).
pub const MAX_LINK_ID: u64 = (1 << 48) - 1;
/// Bytes of the secret a v2 token hides, stored with the link.
pub const SECRET_LEN: usize = 10;
/// Length of every token, in bytes (all ASCII).
pub const TOKEN_LEN: usize = 35;
/// Largest key id: a key id is one base62 character.
pub const MAX_KEY_ID: u8 = 61;

/// Shortest accepted key secret, in bytes.
pub const MIN_SECRET_LEN: usize = 16;
/// Longest accepted key secret, in bytes (one SHA-256 block, so HMAC never re-hashes it).
pub const MAX_SECRET_LEN: usize = 64;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Byte → base62 digit value, or [`NOT_DIGIT`].
const DIGIT: [u8; 256] = digit_table();
const NOT_DIGIT: u8 = 0xff;
const DASH: u8 = b'-';

const RANDOM_LEN: usize = 22;
const KID_POS: usize = RANDOM_LEN;
const MAC_POS: usize = KID_POS + 1;
const MAC_LEN: usize = 6;
const PAYLOAD_LEN: usize = MAC_POS + MAC_LEN;
const DAY_LEN: usize = 3;
const MARKER_LEN: usize = 1 + DAY_LEN;
const MIN_SPLIT: u8 = 1;
const MAX_SPLIT: u8 = (PAYLOAD_LEN - 1) as u8;
/// 62^6: the MAC is reduced modulo this, so it fits six base62 characters.
const MAC_MODULUS: u64 = 62 * 62 * 62 * 62 * 62 * 62;
/// Bytes of OS randomness per generated token: 16 random + 1 split.
const RANDOM_BYTES_PER_TOKEN: usize = 17;
/// Upper bound on one [`generate`] buffer, in tokens (68 KiB of randomness).
const MAX_TOKENS_PER_FILL: usize = 4096;

const _: () = assert!(PAYLOAD_LEN + MARKER_LEN + 2 == TOKEN_LEN);
const _: () = assert!(MAX_KEY_ID as usize == ALPHABET.len() - 1);

const fn digit_table() -> [u8; 256] {
    let mut table = [NOT_DIGIT; 256];
    let mut i = 0;
    while i < ALPHABET.len() {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
}

/// Why a key or a key spec was rejected. Messages never contain secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("no token keys configured")]
    Empty,
    #[error("key item {item} is not of the form ID:HEXSECRET")]
    Malformed { item: usize },
    #[error("key item {item} has an id that is not a number in 0..=61")]
    BadId { item: usize },
    #[error("key id {0} is out of range 0..=61")]
    IdOutOfRange(u8),
    #[error("key id {0} is configured twice")]
    DuplicateId(u8),
    #[error("key {id} has a secret that is not valid hex")]
    BadHex { id: u8 },
    #[error("key {id} has a {len}-byte secret, at least 16 bytes are required")]
    SecretTooShort { id: u8, len: usize },
    #[error("key {id} has a {len}-byte secret, at most 64 bytes are allowed")]
    SecretTooLong { id: u8, len: usize },
}

/// One MAC key: id `0..=61` and a secret of `16..=64` bytes.
///
/// The keyed HMAC-SHA256 state is computed once here and cloned per token.
/// `Debug` redacts the secret.
#[derive(Clone)]
pub struct TokenKey {
    id: u8,
    secret: Vec<u8>,
    mac: Hmac<Sha256>,
    /// v2's block cipher, keyed with HMAC-SHA256(secret, [`BLOCK_KEY_LABEL`])[..16].
    block: Aes128,
}

/// What the v2 block key is derived from, with the key's secret.
const BLOCK_KEY_LABEL: &[u8] = b"linktrack token v2 block key";

impl TokenKey {
    pub fn new(id: u8, secret: &[u8]) -> Result<TokenKey, KeyError> {
        let len = secret.len();
        if id > MAX_KEY_ID {
            return Err(KeyError::IdOutOfRange(id));
        }
        if len < MIN_SECRET_LEN {
            return Err(KeyError::SecretTooShort { id, len });
        }
        if len > MAX_SECRET_LEN {
            return Err(KeyError::SecretTooLong { id, len });
        }
        // HMAC takes keys of any length; the error arm cannot happen.
        let mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| KeyError::SecretTooLong { id, len })?;
        let mut derive = mac.clone();
        derive.update(BLOCK_KEY_LABEL);
        let mut block_key = [0u8; 16];
        block_key.copy_from_slice(&derive.finalize().into_bytes()[..16]);
        let block = <Aes128 as aes::cipher::KeyInit>::new(&Array::from(block_key));
        Ok(TokenKey { id, secret: secret.to_vec(), mac, block })
    }

    pub fn id(&self) -> u8 {
        self.id
    }

    pub fn secret(&self) -> &[u8] {
        &self.secret
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKey").field("id", &self.id).field("secret", &format_args!("<redacted>")).finish_non_exhaustive()
    }
}

/// The configured keys. The first key mints; every key verifies. Ids are unique.
/// `Debug` redacts the secrets.
#[derive(Clone)]
pub struct KeyRing {
    keys: Vec<TokenKey>,
    /// Key id → index into `keys`, or `u8::MAX` when the id is not configured.
    by_id: [u8; MAX_KEY_ID as usize + 1],
}

impl KeyRing {
    /// A ring of `keys` (non-empty, unique ids); `keys[0]` mints.
    pub fn new(keys: Vec<TokenKey>) -> Result<KeyRing, KeyError> {
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        let mut by_id = [u8::MAX; MAX_KEY_ID as usize + 1];
        // At most 62 unique ids fit, so every index fits a u8 below u8::MAX.
        for (index, key) in keys.iter().enumerate() {
            let slot = &mut by_id[usize::from(key.id)];
            if *slot != u8::MAX {
                return Err(KeyError::DuplicateId(key.id));
            }
            *slot = index as u8;
        }
        Ok(KeyRing { keys, by_id })
    }

    /// Parse config text `ID:HEXSECRET[,ID:HEXSECRET...]`, e.g. `"2:9f..,1:ab.."`.
    /// Whitespace around items and around the `:` is ignored; the first item mints.
    /// Items are numbered from 1 in errors.
    pub fn parse(spec: &str) -> Result<KeyRing, KeyError> {
        if spec.trim().is_empty() {
            return Err(KeyError::Empty);
        }
        let mut keys = Vec::new();
        for (index, item) in spec.split(',').enumerate() {
            let item_no = index + 1;
            let (id, hex) = item.trim().split_once(':').ok_or(KeyError::Malformed { item: item_no })?;
            let id: u8 = id.trim().parse().map_err(|_| KeyError::BadId { item: item_no })?;
            let secret = hex::decode(hex.trim()).map_err(|_| KeyError::BadHex { id })?;
            keys.push(TokenKey::new(id, &secret)?);
        }
        KeyRing::new(keys)
    }

    /// The key new tokens are minted with: the first configured key.
    pub fn minting(&self) -> &TokenKey {
        &self.keys[0]
    }

    /// The ids of the ring, minting key first, in configured order.
    pub fn ids(&self) -> impl Iterator<Item = u8> + '_ {
        self.keys.iter().map(|k| k.id)
    }

    /// The spec `parse` reads back (`ID:HEX,...`, minting first). It holds
    /// the secrets: for printing the new `LINKTRACK_TOKEN_KEYS` value to an
    /// operator, never for a log.
    pub fn to_spec(&self) -> String {
        self.keys.iter().map(|k| format!("{}:{}", k.id, hex::encode(&k.secret))).collect::<Vec<_>>().join(",")
    }

    /// The key with this id, if configured.
    pub fn get(&self, id: u8) -> Option<&TokenKey> {
        let index = *self.by_id.get(usize::from(id))?;
        self.keys.get(usize::from(index))
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing").field("minting", &self.minting().id).field("keys", &self.keys).finish_non_exhaustive()
    }
}

/// A link's 16-byte identity, as events and caches name it (`BINARY(16)`):
/// for a v1 token its 128 random bits; for a v2 token the decrypted block,
/// [`Sealed::to_block`] (id, then secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Random(pub [u8; 16]);

/// The token format a link was minted with, which decides where its row
/// lives (v1: found by its random bits; v2: by its id). Stored as its integer
/// value (`events.link_id` NULL or not on MySQL, `link_ver` in spool
/// records); never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Version {
    V1 = 1,
    V2 = 2,
}

impl Version {
    pub fn from_u8(v: u8) -> Option<Version> {
        match v {
            1 => Some(Version::V1),
            2 => Some(Version::V2),
            _ => None,
        }
    }
}

/// What a v2 token hides in its AES block: the link's id (48 bits, known
/// before the insert) and 80 secret bits stored with the link and compared
/// on resolve, so a guess must match the MAC and the secret (115 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sealed {
    pub id: u64,
    pub secret: [u8; SECRET_LEN],
}

impl Sealed {
    /// The plaintext block: the id as 6 big-endian bytes, then the secret.
    pub fn to_block(&self) -> Random {
        let mut b = [0u8; 16];
        b[..6].copy_from_slice(&self.id.to_be_bytes()[2..]);
        b[6..].copy_from_slice(&self.secret);
        Random(b)
    }

    /// Inverse of [`Sealed::to_block`].
    pub fn from_block(block: &Random) -> Sealed {
        let mut id = [0u8; 8];
        id[2..].copy_from_slice(&block.0[..6]);
        let mut secret = [0u8; SECRET_LEN];
        secret.copy_from_slice(&block.0[6..]);
        Sealed { id: u64::from_be_bytes(id), secret }
    }
}

/// A minted token: 35 ASCII bytes, fixed-size, no heap.
///
/// `Display` writes the whole token; `Debug` writes only the first six
/// characters (see [`shorten`]), so tokens do not end up in logs whole.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Token {
    bytes: [u8; TOKEN_LEN],
}

impl Token {
    /// How this token is spelled beyond what its link row holds: its key id
    /// and split. With the link's day, block and these, [`respell_v2`] writes
    /// the token again, character for character (exports name the token).
    pub fn spelling(&self) -> Spelling {
        let split = self.bytes.iter().position(|&b| b == DASH).unwrap_or(0);
        // The key id is payload character KID_POS, which sits after the marker when split <= KID_POS.
        let kid_at = if split > KID_POS { KID_POS } else { KID_POS + MARKER_LEN + 2 };
        Spelling { key_id: DIGIT[usize::from(self.bytes[kid_at])], split: split as u8 }
    }

    pub fn as_str(&self) -> &str {
        // Tokens are only built by `encode`, from ASCII; the default is unreachable.
        debug_assert!(self.bytes.is_ascii());
        std::str::from_utf8(&self.bytes).unwrap_or_default()
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({})", shorten(self.as_str()))
    }
}

/// A token's key id and split: two small numbers a link row keeps so an
/// export can name the token. Packed as `key_id * 32 + split` into one
/// `u16` for storage, where 0 (split 0 is never minted) means unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spelling {
    pub key_id: u8,
    pub split: u8,
}

impl Spelling {
    /// The stored form.
    pub fn pack(self) -> u16 {
        u16::from(self.key_id) * 32 + u16::from(self.split)
    }

    /// From the stored form; `None` for 0 (unknown) and values no token has.
    pub fn unpack(v: u16) -> Option<Spelling> {
        let (key_id, split) = ((v / 32) as u8, (v % 32) as u8);
        (key_id <= MAX_KEY_ID && (MIN_SPLIT..=MAX_SPLIT).contains(&split)).then_some(Spelling { key_id, split })
    }
}

/// Write a v2 token again from its link's day and block and its
/// [`Spelling`]: the same characters as minted, or `None` when the key it
/// was minted with is no longer in the ring.
pub fn respell_v2(keys: &KeyRing, day: Day, block: &Random, spelling: Spelling) -> Option<Token> {
    let key = keys.get(spelling.key_id)?;
    let mut cipher = Array::from(block.0);
    key.block.encrypt_block(&mut cipher);
    Some(encode_with(key, VERSION_2, day, Random(cipher.into()), spelling.split))
}

/// What a valid token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    /// The version character: [`VERSION`] or [`VERSION_2`].
    pub version: u8,
    pub key_id: u8,
    pub day: Day,
    /// v1: the random part. v2: the decrypted block ([`Sealed::from_block`]).
    pub random: Random,
}

impl Parsed {
    /// The format, from the version character.
    pub fn format(&self) -> Version {
        if self.version == VERSION_2 { Version::V2 } else { Version::V1 }
    }
}

/// Why a token was rejected, in the order [`parse`] checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is not 35 bytes long")]
    Length,
    #[error("token contains a byte outside 0-9A-Za-z and '-'")]
    BadChar,
    #[error("token has no well-formed day marker")]
    NoMarker,
    #[error("token has an unknown format version")]
    UnknownVersion,
    #[error("token day is out of range")]
    DayOutOfRange,
    #[error("token day is in the future")]
    InFuture,
    #[error("token random part is out of range")]
    RandomOutOfRange,
    #[error("token key id is not configured")]
    UnknownKey,
    #[error("token mac does not verify")]
    BadMac,
}

/// Build a token from explicit parts with the minting key. Deterministic.
///
/// `split` is the marker position `p` (number of payload characters before
/// the first dash); it is clamped into `1..=28`, so every value is usable and
/// `1..=28` is taken as is.
pub fn encode(keys: &KeyRing, day: Day, random: Random, split: u8) -> Token {
    encode_as(keys, VERSION, day, random, split)
}

/// Build a v2 token for `sealed` with the minting key: its block is
/// encrypted, then laid out and authenticated like a v1 random part. Deterministic.
///
/// # Panics
///
/// If `sealed.id` exceeds [`MAX_LINK_ID`] (a caller bug: ids come from the store's sequence).
pub fn encode_v2(keys: &KeyRing, day: Day, sealed: Sealed, split: u8) -> Token {
    assert!(sealed.id <= MAX_LINK_ID, "link id {} does not fit 48 bits", sealed.id);
    let mut block = Array::from(sealed.to_block().0);
    keys.minting().block.encrypt_block(&mut block);
    encode_as(keys, VERSION_2, day, Random(block.into()), split)
}

fn encode_as(keys: &KeyRing, version: u8, day: Day, random: Random, split: u8) -> Token {
    encode_with(keys.minting(), version, day, random, split)
}

fn encode_with(key: &TokenKey, version: u8, day: Day, random: Random, split: u8) -> Token {
    let mut payload = [0u8; PAYLOAD_LEN];
    payload[..RANDOM_LEN].copy_from_slice(&random_chars(random));
    payload[KID_POS] = ALPHABET[usize::from(key.id)];
    let split = split.clamp(MIN_SPLIT, MAX_SPLIT);
    put_digits(mac_value(key, version, day, random, split), &mut payload[MAC_POS..]);

    let mut marker = [version, 0, 0, 0];
    put_digits(u64::from(day.0), &mut marker[1..]);

    let p = usize::from(split);
    let mut bytes = [0u8; TOKEN_LEN];
    bytes[..p].copy_from_slice(&payload[..p]);
    bytes[p] = DASH;
    bytes[p + 1..p + 1 + MARKER_LEN].copy_from_slice(&marker);
    bytes[p + 1 + MARKER_LEN] = DASH;
    bytes[p + 2 + MARKER_LEN..].copy_from_slice(&payload[p..]);
    Token { bytes }
}

/// Mint `n` fresh tokens for `day` with the minting key and append them, with
/// their random parts, to `out`.
///
/// Random bits and split positions come from the OS CSPRNG, 17 bytes per
/// token, read with one `getrandom` call per batch of up to 4096 tokens.
///
/// # Panics
///
/// If the operating system's random source fails, which it does not on a
/// booted Linux; minting without it would not be safe.
pub fn generate(keys: &KeyRing, day: Day, n: usize, out: &mut Vec<(Token, Random)>) {
    out.reserve(n);
    let mut buf = vec![0u8; n.min(MAX_TOKENS_PER_FILL) * RANDOM_BYTES_PER_TOKEN];
    let mut left = n;
    while left > 0 {
        let batch = left.min(MAX_TOKENS_PER_FILL);
        let bytes = &mut buf[..batch * RANDOM_BYTES_PER_TOKEN];
        SysRng.try_fill_bytes(bytes).expect("os random source failed");
        for chunk in bytes.chunks_exact(RANDOM_BYTES_PER_TOKEN) {
            let mut random = [0u8; 16];
            random.copy_from_slice(&chunk[..16]);
            let random = Random(random);
            // 256 % 28 = 4: splits 1..=4 are 10/256 likely, the rest 9/256. Harmless.
            let split = MIN_SPLIT + chunk[16] % MAX_SPLIT;
            out.push((encode(keys, day, random, split), random));
        }
        left -= batch;
    }
}

/// Mint v2 tokens for `day` for the links `first_id..first_id + n` (ids
/// reserved from the store beforehand) and append them, with their blocks
/// ([`Sealed::to_block`]), to `out`. Secrets and splits come from the OS
/// CSPRNG, 11 bytes per token, one `getrandom` call per 4096 tokens.
///
/// # Panics
///
/// If the OS random source fails, or an id exceeds [`MAX_LINK_ID`].
pub fn generate_v2(keys: &KeyRing, day: Day, first_id: u64, n: usize, out: &mut Vec<(Token, Random)>) {
    const PER_TOKEN: usize = SECRET_LEN + 1;
    out.reserve(n);
    let mut buf = vec![0u8; n.min(MAX_TOKENS_PER_FILL) * PER_TOKEN];
    let (mut left, mut id) = (n, first_id);
    while left > 0 {
        let batch = left.min(MAX_TOKENS_PER_FILL);
        let bytes = &mut buf[..batch * PER_TOKEN];
        SysRng.try_fill_bytes(bytes).expect("os random source failed");
        for chunk in bytes.chunks_exact(PER_TOKEN) {
            let mut secret = [0u8; SECRET_LEN];
            secret.copy_from_slice(&chunk[..SECRET_LEN]);
            let sealed = Sealed { id, secret };
            let split = MIN_SPLIT + chunk[SECRET_LEN] % MAX_SPLIT;
            out.push((encode_v2(keys, day, sealed, split), sealed.to_block()));
            id += 1;
        }
        left -= batch;
    }
}

/// Parse and verify a token. Allocation-free and linear in the input.
///
/// Checks, in order: length, charset, marker position and shape, version,
/// day (in `u16` range, not after `today + 1`: one day of clock skew is
/// allowed), random range, key id known, MAC (constant-time compare).
pub fn parse(input: &[u8], keys: &KeyRing, today: Day) -> Result<Parsed, TokenError> {
    if input.len() != TOKEN_LEN {
        return Err(TokenError::Length);
    }

    let mut dashes = 0usize;
    let mut first_dash = 0usize;
    let mut second_dash = 0usize;
    for (i, &b) in input.iter().enumerate() {
        if b == DASH {
            match dashes {
                0 => first_dash = i,
                1 => second_dash = i,
                _ => {}
            }
            dashes += 1;
        } else if DIGIT[usize::from(b)] == NOT_DIGIT {
            return Err(TokenError::BadChar);
        }
    }
    let p = first_dash;
    if dashes != 2 || p < usize::from(MIN_SPLIT) || p > usize::from(MAX_SPLIT) || second_dash != p + 1 + MARKER_LEN {
        return Err(TokenError::NoMarker);
    }
    // Every byte other than the two dashes is now a base62 digit.
    let marker = &input[p + 1..second_dash];
    let mut payload = [0u8; PAYLOAD_LEN];
    payload[..p].copy_from_slice(&input[..p]);
    payload[p..].copy_from_slice(&input[second_dash + 1..]);

    let version = marker[0];
    if version != VERSION && version != VERSION_2 {
        return Err(TokenError::UnknownVersion);
    }

    let day = u16::try_from(read_digits(&marker[1..])).map_err(|_| TokenError::DayOutOfRange)?;
    if u32::from(day) > u32::from(today.0) + 1 {
        return Err(TokenError::InFuture);
    }
    let day = Day(day);

    let random = read_random(&payload[..RANDOM_LEN])?;

    let key = keys.get(DIGIT[usize::from(payload[KID_POS])]).ok_or(TokenError::UnknownKey)?;

    // p is in MIN_SPLIT..=MAX_SPLIT (checked above), so it fits a u8.
    let expected = mac_value(key, version, day, random, p as u8);
    let got = read_digits(&payload[MAC_POS..]);
    if !bool::from(expected.ct_eq(&got)) {
        return Err(TokenError::BadMac);
    }
    let random = if version == VERSION_2 {
        let mut block = Array::from(random.0);
        key.block.decrypt_block(&mut block);
        Random(block.into())
    } else {
        random
    };
    Ok(Parsed { version, key_id: key.id, day, random })
}

/// How many characters of an untrusted token [`shorten`] keeps.
pub const SHORT_CHARS: usize = 6;

/// For log lines: the first six characters of an untrusted token string,
/// followed by `…` when anything was cut.
///
/// Returns a [`Short`] display wrapper rather than a `&str` (the `…` is not in
/// the input). It cuts on a char boundary, so any `&str` is safe, and its
/// `Display` escapes everything outside printable ASCII (`\n`, `\u{e9}`), so
/// untrusted input cannot forge log lines.
pub fn shorten(input: &str) -> Short<'_> {
    let end = input.char_indices().nth(SHORT_CHARS).map_or(input.len(), |(i, _)| i);
    Short { prefix: &input[..end], cut: end < input.len() }
}

/// A token shortened for logging; see [`shorten`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Short<'a> {
    prefix: &'a str,
    cut: bool,
}

impl<'a> Short<'a> {
    /// The kept characters, unescaped.
    pub fn prefix(&self) -> &'a str {
        self.prefix
    }
}

impl fmt::Display for Short<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.prefix.chars() {
            write!(f, "{}", c.escape_default())?;
        }
        if self.cut {
            f.write_str("…")?;
        }
        Ok(())
    }
}

/// HMAC-SHA256 over `[version, kid, day (u16 BE), random (16)]`, first 8
/// bytes as a big-endian u64, reduced mod 62^6.
/// The MAC covers everything the token says, including the marker position
/// `split`, so each (key, day, random) has exactly one valid spelling.
fn mac_value(key: &TokenKey, version: u8, day: Day, random: Random, split: u8) -> u64 {
    let mut msg = [0u8; 21];
    msg[0] = version;
    msg[1] = key.id;
    msg[2..4].copy_from_slice(&day.0.to_be_bytes());
    msg[4..20].copy_from_slice(&random.0);
    msg[20] = split;
    let mut mac = key.mac.clone();
    mac.update(&msg);
    let tag = mac.finalize().into_bytes();
    let mut head = [0u8; 8];
    head.copy_from_slice(&tag[..8]);
    u64::from_be_bytes(head) % MAC_MODULUS
}

/// The 22 characters of the random part: the u128 (big-endian bytes) in
/// base62, least-significant digit first, padded with `0` to 22 characters.
/// Least-significant first makes the leading characters uniform over all 62
/// (the most significant digit of a 128-bit value is only ever `0`..=`7`).
fn random_chars(random: Random) -> [u8; RANDOM_LEN] {
    let mut msd_first = [0u8; RANDOM_LEN];
    let Ok(len) = base62::encode_bytes(u128::from_be_bytes(random.0), &mut msd_first) else {
        unreachable!("a u128 has at most 22 base62 digits")
    };
    let mut out = [b'0'; RANDOM_LEN];
    for (slot, &digit) in out.iter_mut().zip(msd_first[..len].iter().rev()) {
        *slot = digit;
    }
    out
}

/// Inverse of [`random_chars`]; `chars` are known base62 digits.
fn read_random(chars: &[u8]) -> Result<Random, TokenError> {
    let mut msd_first = [0u8; RANDOM_LEN];
    for (slot, &c) in msd_first.iter_mut().zip(chars.iter().rev()) {
        *slot = c;
    }
    match base62::decode(msd_first) {
        Ok(value) => Ok(Random(value.to_be_bytes())),
        Err(base62::DecodeError::ArithmeticOverflow) => Err(TokenError::RandomOutOfRange),
        Err(_) => Err(TokenError::BadChar),
    }
}

/// Write `n` as `out.len()` base62 digits, most significant first, `0`-padded.
fn put_digits(mut n: u64, out: &mut [u8]) {
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    debug_assert_eq!(n, 0, "value does not fit the field");
}

/// Read at most 10 base62 digits (most significant first); `chars` are known digits.
fn read_digits(chars: &[u8]) -> u64 {
    chars.iter().fold(0, |n, &c| n * 62 + u64::from(DIGIT[usize::from(c)]))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    const EXAMPLE_SPEC: &str = "7:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const EXAMPLE_RANDOM: u128 = 0x3f2a_9c4e_8b1d_47f6_a05e_92c7_d3b8_e164;
    const EXAMPLE_TOKEN: &str = "UVdzna0jN-10eb-cWwkgh2MMzBv173aSUWi";
    const V2_EXAMPLE_CIPHER: &str = "5e63b11b49afee329bccd1adea1a2fe1";
    const V2_EXAMPLE_TOKEN: &str = "jwqbIh94p-20eb-in0FxsINxp6s27SY3VtH";

    fn example_ring() -> KeyRing {
        KeyRing::parse(EXAMPLE_SPEC).unwrap()
    }

    fn example_day() -> Day {
        Day::parse_iso("2026-11-22").unwrap()
    }

    fn example_token() -> Token {
        encode(&example_ring(), example_day(), Random(EXAMPLE_RANDOM.to_be_bytes()), 9)
    }

    fn ring(ids: &[u8]) -> KeyRing {
        KeyRing::new(ids.iter().map(|&id| TokenKey::new(id, &[id; 32]).unwrap()).collect()).unwrap()
    }

    /// An export writes a link's token again from its row: the key id and
    /// split recorded at mint, with the day and block, give back the same
    /// characters, also after the minting key has changed; a key no longer
    /// in the ring gives none.
    #[test]
    fn respelling_gives_back_the_minted_token() {
        let day = example_day();
        let mut minted = Vec::new();
        generate_v2(&ring(&[3, 5]), day, 1000, 300, &mut minted);
        let rotated = ring(&[5, 3]);
        let mut splits = std::collections::HashSet::new();
        for (token, block) in &minted {
            let spelling = token.spelling();
            assert_eq!(spelling.key_id, 3);
            splits.insert(spelling.split);
            assert_eq!(Spelling::unpack(spelling.pack()), Some(spelling));
            assert_eq!(respell_v2(&rotated, day, block, spelling), Some(*token));
            assert_eq!(respell_v2(&ring(&[5]), day, block, spelling), None);
        }
        assert_eq!(splits.len(), usize::from(MAX_SPLIT), "every split, before and after the key id, was seen");
        assert_eq!(Spelling::unpack(0), None);
        assert_eq!(Spelling::unpack(62 * 32 + 1), None);
    }

    /// Assemble a token from raw parts (no MAC computed).
    fn assemble(payload: &[u8; PAYLOAD_LEN], marker: &[u8], p: usize) -> Vec<u8> {
        [&payload[..p], b"-", marker, b"-", &payload[p..]].concat()
    }

    fn split_of(token: &[u8]) -> usize {
        token.iter().position(|&b| b == b'-').unwrap()
    }

    /// Payload and marker of a valid token, for tampering.
    fn parts(token: &Token) -> ([u8; PAYLOAD_LEN], [u8; MARKER_LEN], usize) {
        let t = token.as_str().as_bytes();
        let p = split_of(t);
        let mut payload = [0u8; PAYLOAD_LEN];
        payload[..p].copy_from_slice(&t[..p]);
        payload[p..].copy_from_slice(&t[p + 6..]);
        let mut marker = [0u8; MARKER_LEN];
        marker.copy_from_slice(&t[p + 1..p + 5]);
        (payload, marker, p)
    }

    #[test]
    fn worked_example() {
        let token = example_token();
        assert_eq!(example_day(), Day(2517));
        assert_eq!(token.as_str(), EXAMPLE_TOKEN);
        assert_eq!(token.to_string(), EXAMPLE_TOKEN);
        assert_eq!(token.as_str().len(), TOKEN_LEN);
        let parsed = parse(EXAMPLE_TOKEN.as_bytes(), &example_ring(), example_day()).unwrap();
        assert_eq!(parsed, Parsed { version: b'1', key_id: 7, day: Day(2517), random: Random(EXAMPLE_RANDOM.to_be_bytes()) });
        // Field by field, as in docs/token.md.
        let (payload, marker, p) = parts(&token);
        assert_eq!(p, 9);
        assert_eq!(&marker, b"10eb");
        assert_eq!(&payload[..22], b"UVdzna0jNcWwkgh2MMzBv1");
        assert_eq!(payload[22], b'7');
        assert_eq!(&payload[23..], b"3aSUWi");
        let key = example_ring();
        let mac = mac_value(key.minting(), VERSION, Day(2517), Random(EXAMPLE_RANDOM.to_be_bytes()), 9);
        assert_eq!(mac, 3_287_137_124);
        assert_eq!(mac, 0xe6e7_71f5_5777_c5a4 % MAC_MODULUS);
        assert_eq!(read_digits(&payload[23..]), mac);
    }

    /// The v2 worked example of docs/token.md (cross-checked by `scripts/token_v2_example.py`).
    #[test]
    fn worked_example_v2() {
        let sealed = Sealed { id: 123_456_789, secret: *b"\x01\x23\x45\x67\x89\xab\xcd\xef\x13\x57" };
        let block = sealed.to_block();
        assert_eq!(hex::encode(block.0), "0000075bcd150123456789abcdef1357");
        let key = example_ring();
        let mut cipher = Array::from(block.0);
        key.minting().block.encrypt_block(&mut cipher);
        let cipher = Random(cipher.into());
        let token = encode_v2(&key, example_day(), sealed, 9);
        let (payload, marker, p) = parts(&token);
        assert_eq!((p, &marker), (9, b"20eb"));
        assert_eq!(payload[..22], random_chars(cipher));
        assert_eq!(payload[22], b'7');
        assert_eq!(read_digits(&payload[23..]), mac_value(key.minting(), VERSION_2, Day(2517), cipher, 9));
        let parsed = parse(token.as_str().as_bytes(), &key, example_day()).unwrap();
        assert_eq!(parsed, Parsed { version: VERSION_2, key_id: 7, day: Day(2517), random: block });
        // The values docs/token.md shows.
        assert_eq!(hex::encode(cipher.0), V2_EXAMPLE_CIPHER);
        assert_eq!(token.as_str(), V2_EXAMPLE_TOKEN);
    }

    #[test]
    fn v2_hides_the_id_order() {
        let ring = example_ring();
        let a = encode_v2(&ring, Day(10), Sealed { id: 1, secret: [0; SECRET_LEN] }, 5);
        let b = encode_v2(&ring, Day(10), Sealed { id: 2, secret: [0; SECRET_LEN] }, 5);
        let same = a.as_str().bytes().zip(b.as_str().bytes()).filter(|(x, y)| x == y).count();
        assert!(same < 12, "consecutive ids give unrelated tokens: {a} {b}");
        let mut out = Vec::new();
        generate_v2(&ring, Day(10), 1000, 500, &mut out);
        for (i, (token, block)) in out.iter().enumerate() {
            let parsed = parse(token.as_str().as_bytes(), &ring, Day(10)).unwrap();
            assert_eq!(parsed.random, *block);
            assert_eq!(Sealed::from_block(block).id, 1000 + i as u64);
        }
    }

    #[test]
    fn random_chars_match_base62_crate_reversed() {
        for value in [0u128, 1, 61, 62, EXAMPLE_RANDOM, u128::MAX] {
            let chars = random_chars(Random(value.to_be_bytes()));
            let mut reversed = chars;
            reversed.reverse();
            let expected = format!("{:0>22}", base62::encode(value));
            assert_eq!(std::str::from_utf8(&reversed).unwrap(), expected);
            assert_eq!(read_random(&chars), Ok(Random(value.to_be_bytes())));
        }
        assert_eq!(&random_chars(Random(u128::MAX.to_be_bytes()))[21..], b"7");
    }

    #[test]
    fn err_length() {
        let t = EXAMPLE_TOKEN.as_bytes();
        let ring = example_ring();
        assert_eq!(parse(b"", &ring, example_day()), Err(TokenError::Length));
        assert_eq!(parse(&t[..34], &ring, example_day()), Err(TokenError::Length));
        assert_eq!(parse(&[t, b"0"].concat(), &ring, example_day()), Err(TokenError::Length));
    }

    #[test]
    fn err_bad_char() {
        let ring = example_ring();
        for bad in [b'_', b'.', b' ', b'+', b'/', 0, 0x7f, 0xc3, 0xff] {
            let mut t = EXAMPLE_TOKEN.as_bytes().to_vec();
            t[3] = bad;
            assert_eq!(parse(&t, &ring, example_day()), Err(TokenError::BadChar), "byte {bad:#x}");
        }
        // Charset is checked before the marker.
        let mut t = vec![b'a'; TOKEN_LEN];
        t[0] = b'*';
        assert_eq!(parse(&t, &ring, example_day()), Err(TokenError::BadChar));
    }

    #[test]
    fn err_no_marker() {
        let ring = example_ring();
        let (payload, marker, _) = parts(&example_token());
        let no_dash = vec![b'a'; TOKEN_LEN];
        assert_eq!(parse(&no_dash, &ring, example_day()), Err(TokenError::NoMarker));
        // Marker first or last.
        let mut first = b"-10eb-".to_vec();
        first.extend_from_slice(&payload);
        assert_eq!(parse(&first, &ring, example_day()), Err(TokenError::NoMarker));
        let mut last = payload.to_vec();
        last.extend_from_slice(b"-10eb-");
        assert_eq!(parse(&last, &ring, example_day()), Err(TokenError::NoMarker));
        // One, three dashes; marker of 3 or 5 characters.
        let mut one = EXAMPLE_TOKEN.as_bytes().to_vec();
        one[14] = b'a';
        assert_eq!(parse(&one, &ring, example_day()), Err(TokenError::NoMarker));
        let mut three = EXAMPLE_TOKEN.as_bytes().to_vec();
        three[20] = b'-';
        assert_eq!(parse(&three, &ring, example_day()), Err(TokenError::NoMarker));
        let mut short = assemble(&payload, &marker, 9);
        short.swap(14, 13);
        assert_eq!(parse(&short, &ring, example_day()), Err(TokenError::NoMarker));
        let mut long = assemble(&payload, &marker, 9);
        long.swap(14, 15);
        assert_eq!(parse(&long, &ring, example_day()), Err(TokenError::NoMarker));
        // Every legal position is accepted when the token was minted there;
        // moving the marker of a minted token elsewhere is a forgery.
        let random = Random(EXAMPLE_RANDOM.to_be_bytes());
        for p in 1..=28u8 {
            let t = encode(&ring, example_day(), random, p);
            assert!(parse(t.as_str().as_bytes(), &ring, example_day()).is_ok(), "split {p}");
            let moved = assemble(&payload, &marker, usize::from(p));
            let want = if p == 9 { Ok(()) } else { Err(TokenError::BadMac) };
            assert_eq!(parse(&moved, &ring, example_day()).map(|_| ()), want, "marker moved to {p}");
        }
    }

    #[test]
    fn err_unknown_version() {
        let (payload, _, p) = parts(&example_token());
        for v in [b'0', b'3', b'z'] {
            let t = assemble(&payload, &[v, b'0', b'e', b'b'], p);
            assert_eq!(parse(&t, &example_ring(), example_day()), Err(TokenError::UnknownVersion));
        }
    }

    #[test]
    fn err_day_out_of_range() {
        let (payload, _, p) = parts(&example_token());
        // "H31" = 17*3844 + 3*62 + 1 = 65535 is the largest day; "H32" is one past it.
        let max = assemble(&payload, b"1H31", p);
        assert_eq!(parse(&max, &example_ring(), Day(u16::MAX)), Err(TokenError::BadMac));
        for day in [b"1H32", b"1zzz"] {
            let t = assemble(&payload, day, p);
            assert_eq!(parse(&t, &example_ring(), Day(u16::MAX)), Err(TokenError::DayOutOfRange));
        }
    }

    #[test]
    fn err_in_future() {
        let ring = example_ring();
        let today = example_day();
        let token = example_token();
        assert!(parse(token.as_str().as_bytes(), &ring, today).is_ok());
        // One day of skew: a token of tomorrow is fine, of the day after is not.
        assert!(parse(token.as_str().as_bytes(), &ring, today.minus(1)).is_ok());
        assert_eq!(parse(token.as_str().as_bytes(), &ring, today.minus(2)), Err(TokenError::InFuture));
        assert_eq!(parse(token.as_str().as_bytes(), &ring, Day(0)), Err(TokenError::InFuture));
        // No overflow at the top of the range.
        let top = encode(&ring, Day(u16::MAX), Random([7; 16]), 3);
        assert!(parse(top.as_str().as_bytes(), &ring, Day(u16::MAX)).is_ok());
    }

    #[test]
    fn err_random_out_of_range() {
        let (mut payload, marker, p) = parts(&example_token());
        // 2^128 - 1 is "7n42DGM5Tflk9n8mt7Fhc7" most significant first; the token holds it
        // reversed. Bumping its least significant digit (payload[0]) overflows.
        let mut max = *b"7n42DGM5Tflk9n8mt7Fhc7";
        max.reverse();
        payload[..22].copy_from_slice(&max);
        let t = assemble(&payload, &marker, p);
        assert_eq!(parse(&t, &example_ring(), example_day()), Err(TokenError::BadMac));
        payload[0] = b'8';
        let t = assemble(&payload, &marker, p);
        assert_eq!(parse(&t, &example_ring(), example_day()), Err(TokenError::RandomOutOfRange));
        payload[..22].copy_from_slice(&[b'z'; 22]);
        let t = assemble(&payload, &marker, p);
        assert_eq!(parse(&t, &example_ring(), example_day()), Err(TokenError::RandomOutOfRange));
    }

    #[test]
    fn err_unknown_key() {
        let token = example_token();
        let other = ring(&[1, 2]);
        assert_eq!(parse(token.as_str().as_bytes(), &other, example_day()), Err(TokenError::UnknownKey));
    }

    #[test]
    fn err_bad_mac() {
        let ring = example_ring();
        let mut t = EXAMPLE_TOKEN.as_bytes().to_vec();
        let last = t[34];
        t[34] = if last == b'0' { b'1' } else { b'0' };
        assert_eq!(parse(&t, &ring, example_day()), Err(TokenError::BadMac));
        // Same id, different secret.
        let forged = KeyRing::new(vec![TokenKey::new(7, &[9; 32]).unwrap()]).unwrap();
        assert_eq!(parse(EXAMPLE_TOKEN.as_bytes(), &forged, example_day()), Err(TokenError::BadMac));
        // The day is authenticated: a valid token re-dated does not verify.
        let (payload, _, p) = parts(&example_token());
        let t = assemble(&payload, b"10ea", p);
        assert_eq!(parse(&t, &ring, example_day()), Err(TokenError::BadMac));
    }

    #[test]
    fn key_rotation() {
        let old = ring(&[1]);
        let old_token = encode(&old, Day(100), Random([1; 16]), 5);
        // Key 2 added first: it mints, key 1 still verifies.
        let rotated = ring(&[2, 1]);
        assert_eq!(rotated.minting().id(), 2);
        let new_token = encode(&rotated, Day(100), Random([1; 16]), 5);
        assert_ne!(new_token, old_token);
        assert_eq!(parse(old_token.as_str().as_bytes(), &rotated, Day(100)).unwrap().key_id, 1);
        assert_eq!(parse(new_token.as_str().as_bytes(), &rotated, Day(100)).unwrap().key_id, 2);
        // The old ring does not know key 2 yet; after retiring key 1, its tokens fail.
        assert_eq!(parse(new_token.as_str().as_bytes(), &old, Day(100)), Err(TokenError::UnknownKey));
        let retired = ring(&[2]);
        assert_eq!(parse(old_token.as_str().as_bytes(), &retired, Day(100)), Err(TokenError::UnknownKey));
        assert!(rotated.get(1).is_some() && rotated.get(3).is_none() && rotated.get(200).is_none());
    }

    #[test]
    fn key_errors() {
        let hex16 = "00112233445566778899aabbccddeeff";
        assert_eq!(KeyRing::new(vec![]).unwrap_err(), KeyError::Empty);
        assert_eq!(KeyRing::parse("").unwrap_err(), KeyError::Empty);
        assert_eq!(KeyRing::parse("  ").unwrap_err(), KeyError::Empty);
        assert_eq!(KeyRing::parse(hex16).unwrap_err(), KeyError::Malformed { item: 1 });
        assert_eq!(KeyRing::parse(&format!("1:{hex16},")).unwrap_err(), KeyError::Malformed { item: 2 });
        assert_eq!(KeyRing::parse(&format!("x:{hex16}")).unwrap_err(), KeyError::BadId { item: 1 });
        assert_eq!(KeyRing::parse(&format!("300:{hex16}")).unwrap_err(), KeyError::BadId { item: 1 });
        assert_eq!(KeyRing::parse(&format!("62:{hex16}")).unwrap_err(), KeyError::IdOutOfRange(62));
        assert_eq!(KeyRing::parse(&format!("1:{hex16},1:{hex16}")).unwrap_err(), KeyError::DuplicateId(1));
        assert_eq!(KeyRing::parse("1:00112233445566778899aabbccddeefg").unwrap_err(), KeyError::BadHex { id: 1 });
        assert_eq!(KeyRing::parse("1:0011223").unwrap_err(), KeyError::BadHex { id: 1 });
        assert_eq!(KeyRing::parse("1:00").unwrap_err(), KeyError::SecretTooShort { id: 1, len: 1 });
        assert_eq!(KeyRing::parse(&format!("1:{}", "ab".repeat(65))).unwrap_err(), KeyError::SecretTooLong { id: 1, len: 65 });
        assert!(TokenKey::new(61, &[0; 16]).is_ok() && TokenKey::new(0, &[0; 64]).is_ok());
        // Errors never echo secret material.
        let err = KeyRing::parse("deadbeefdeadbeefdeadbeef").unwrap_err().to_string();
        assert!(!err.contains("dead"), "{err}");
    }

    #[test]
    fn key_spec_whitespace_and_order() {
        let hex_a = "aa".repeat(16);
        let hex_b = "BB".repeat(20);
        let ring = KeyRing::parse(&format!(" 2:{hex_a} ,\t1 : {hex_b}\n")).unwrap();
        assert_eq!(ring.minting().id(), 2);
        assert_eq!(ring.minting().secret(), &[0xaa; 16]);
        assert_eq!(ring.get(1).unwrap().secret(), &[0xbb; 20]);
    }

    #[test]
    fn debug_redacts_secrets() {
        let ring = example_ring();
        let key_dbg = format!("{:?}", ring.minting());
        let ring_dbg = format!("{ring:?}");
        assert_eq!(key_dbg, "TokenKey { id: 7, secret: <redacted>, .. }");
        assert!(ring_dbg.contains("minting: 7") && ring_dbg.contains("<redacted>"), "{ring_dbg}");
        for dbg in [key_dbg, ring_dbg] {
            assert!(!dbg.contains("0102") && !dbg.contains("[0, 1, 2"), "{dbg}");
        }
    }

    #[test]
    fn token_debug_is_short() {
        let token = example_token();
        assert_eq!(format!("{token:?}"), "Token(UVdzna…)");
        assert!(!format!("{token:?}").contains(EXAMPLE_TOKEN));
        assert_eq!(format!("{token}"), EXAMPLE_TOKEN);
    }

    #[test]
    fn shorten_is_safe() {
        assert_eq!(shorten(EXAMPLE_TOKEN).to_string(), "UVdzna…");
        assert_eq!(shorten(EXAMPLE_TOKEN).prefix(), "UVdzna");
        assert_eq!(shorten("").to_string(), "");
        assert_eq!(shorten("abcdef").to_string(), "abcdef");
        assert_eq!(shorten("abcdefg").to_string(), "abcdef…");
        assert_eq!(shorten("ééééééé").prefix(), "éééééé");
        assert_eq!(shorten("ééééééé").to_string(), "\\u{e9}\\u{e9}\\u{e9}\\u{e9}\\u{e9}\\u{e9}…");
        assert_eq!(shorten("a\nb\u{202e}🦀xyz").to_string(), "a\\nb\\u{202e}\\u{1f980}x…");
    }

    #[test]
    fn generate_appends_valid_tokens() {
        let ring = ring(&[3, 4]);
        let mut out = Vec::new();
        generate(&ring, Day(50), 0, &mut out);
        assert!(out.is_empty());
        generate(&ring, Day(50), 5000, &mut out);
        generate(&ring, Day(50), 1, &mut out);
        assert_eq!(out.len(), 5001);
        let mut splits = HashSet::new();
        let mut randoms = HashSet::new();
        for (token, random) in &out {
            let parsed = parse(token.as_str().as_bytes(), &ring, Day(50)).unwrap();
            assert_eq!((parsed.random, parsed.key_id, parsed.day), (*random, 3, Day(50)));
            splits.insert(split_of(token.as_str().as_bytes()));
            randoms.insert(*random);
        }
        assert_eq!(splits.len(), 28);
        assert_eq!(randoms.len(), out.len());
    }

    /// Property (5): the first character of generated tokens is spread over
    /// the alphabet (62 expected; a big-endian random part would give only 8).
    #[test]
    fn generate_first_char_varies() {
        let mut out = Vec::new();
        generate(&ring(&[0]), Day(9), 2000, &mut out);
        let firsts: HashSet<u8> = out.iter().map(|(t, _)| t.as_str().as_bytes()[0]).collect();
        assert!(firsts.len() >= 40, "only {} distinct first chars", firsts.len());
    }

    fn arb_ring() -> impl Strategy<Value = KeyRing> {
        prop::collection::btree_map(0..=MAX_KEY_ID, prop::collection::vec(any::<u8>(), 16..=64), 1..4)
            .prop_flat_map(|keys| {
                let len = keys.len();
                (Just(keys), 0..len)
            })
            .prop_map(|(keys, first)| {
                let mut keys: Vec<TokenKey> = keys.iter().map(|(&id, s)| TokenKey::new(id, s).unwrap()).collect();
                keys.rotate_left(first);
                KeyRing::new(keys).unwrap()
            })
    }

    /// A day and a "today" with day <= today.
    fn arb_days() -> impl Strategy<Value = (Day, Day)> {
        (any::<u16>(), any::<u16>()).prop_map(|(a, b)| (Day(a.min(b)), Day(a.max(b))))
    }

    const ALPHABET_DASH: &[u8; 63] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-";

    /// The one spelling of what `parsed` says, in its own version.
    fn reencode(keys: &KeyRing, parsed: &Parsed, split: u8) -> Token {
        if parsed.version == VERSION_2 {
            encode_v2(keys, parsed.day, Sealed::from_block(&parsed.random), split)
        } else {
            encode(keys, parsed.day, parsed.random, split)
        }
    }

    fn arb_sealed() -> impl Strategy<Value = Sealed> {
        (0..=MAX_LINK_ID, any::<[u8; SECRET_LEN]>()).prop_map(|(id, secret)| Sealed { id, secret })
    }

    proptest! {
        /// (1) encode → parse round-trips.
        #[test]
        fn prop_round_trip(
            keys in arb_ring(),
            (day, today) in arb_days(),
            random in any::<[u8; 16]>(),
            split in any::<u8>(),
        ) {
            let token = encode(&keys, day, Random(random), split);
            let parsed = parse(token.as_str().as_bytes(), &keys, today);
            let expected = Parsed { version: VERSION, key_id: keys.minting().id(), day, random: Random(random) };
            prop_assert_eq!(parsed, Ok(expected));
            prop_assert_eq!(split_of(token.as_str().as_bytes()), usize::from(split.clamp(1, 28)));
        }

        /// (2) Any single-character change (to another alphabet char or '-') is rejected.
        #[test]
        fn prop_single_mutation_rejected(
            keys in arb_ring(),
            random in any::<[u8; 16]>(),
            split in 1u8..=28,
            day in any::<u16>(),
            pos in 0..TOKEN_LEN,
            with in 0..ALPHABET_DASH.len(),
        ) {
            let token = encode(&keys, Day(day), Random(random), split);
            let mut bytes = token.as_str().as_bytes().to_vec();
            // Skip over the original character so the mutation always changes something.
            let with = if ALPHABET_DASH[with] == bytes[pos] { (with + 1) % ALPHABET_DASH.len() } else { with };
            bytes[pos] = ALPHABET_DASH[with];
            prop_assert!(parse(&bytes, &keys, Day(u16::MAX)).is_err());
        }

        /// (1, v2) encode_v2 → parse round-trips to the sealed id and secret.
        #[test]
        fn prop_v2_round_trip(keys in arb_ring(), (day, today) in arb_days(), sealed in arb_sealed(), split in any::<u8>()) {
            let token = encode_v2(&keys, day, sealed, split);
            let parsed = parse(token.as_str().as_bytes(), &keys, today).unwrap();
            prop_assert_eq!((parsed.version, parsed.key_id, parsed.day), (VERSION_2, keys.minting().id(), day));
            prop_assert_eq!(Sealed::from_block(&parsed.random), sealed);
            prop_assert_eq!(split_of(token.as_str().as_bytes()), usize::from(split.clamp(1, 28)));
        }

        /// (2, v2) Any single-character change is rejected, the version character included.
        #[test]
        fn prop_v2_single_mutation_rejected(
            keys in arb_ring(),
            sealed in arb_sealed(),
            split in 1u8..=28,
            day in any::<u16>(),
            pos in 0..TOKEN_LEN,
            with in 0..ALPHABET_DASH.len(),
        ) {
            let token = encode_v2(&keys, Day(day), sealed, split);
            let mut bytes = token.as_str().as_bytes().to_vec();
            let with = if ALPHABET_DASH[with] == bytes[pos] { (with + 1) % ALPHABET_DASH.len() } else { with };
            bytes[pos] = ALPHABET_DASH[with];
            prop_assert!(parse(&bytes, &keys, Day(u16::MAX)).is_err());
        }

        /// (3) Arbitrary bytes never panic and are accepted only if canonical.
        #[test]
        fn prop_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..48)) {
            let keys = example_ring();
            if let Ok(parsed) = parse(&bytes, &keys, example_day()) {
                let again = reencode(&keys, &parsed, split_of(&bytes) as u8);
                prop_assert_eq!(again.as_str().as_bytes(), &bytes[..]);
            }
        }

        /// (3b) Near-miss inputs: 35 chars of the token alphabet with two dashes.
        #[test]
        fn prop_arbitrary_token_shaped(chars in prop::collection::vec(0..63usize, TOKEN_LEN), p in 1usize..=28) {
            let keys = example_ring();
            let mut bytes: Vec<u8> = chars.iter().map(|&i| ALPHABET_DASH[i]).collect();
            bytes[p] = b'-';
            bytes[p + 5] = b'-';
            if let Ok(parsed) = parse(&bytes, &keys, Day(u16::MAX)) {
                let again = reencode(&keys, &parsed, p as u8);
                prop_assert_eq!(again.as_str().as_bytes(), &bytes[..]);
            }
        }

        /// (4) The marker is never first and the token never ends with it.
        #[test]
        fn prop_marker_interior(random in any::<[u8; 16]>(), split in any::<u8>(), day in any::<u16>()) {
            let token = encode(&example_ring(), Day(day), Random(random), split);
            let t = token.as_str().as_bytes();
            prop_assert_eq!(t.len(), TOKEN_LEN);
            prop_assert_ne!(t[0], b'-');
            prop_assert_ne!(t[TOKEN_LEN - 1], b'-');
            let p = split_of(t);
            prop_assert!((1..=28).contains(&p));
            prop_assert!(t.iter().enumerate().all(|(i, &b)| (b == b'-') == (i == p || i == p + 5)));
            prop_assert_eq!(t[p + 1], VERSION);
        }
    }
}
