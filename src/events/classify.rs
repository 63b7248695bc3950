//! Placeholder until the classifier lands: the enums only.
use crate::store::LinkKind;
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Verdict { Human = 1, Bot = 2, Suspect = 3 }
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Reason { None = 0, BotUserAgent = 1, HeadRequest = 2, LetterBurst = 3, NearMint = 4, PrivacyProxy = 5, ImageProxy = 6, EmptyUserAgent = 7 }
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Method { Get = 1, Head = 2 }
impl Verdict { pub fn from_u8(v: u8) -> Option<Verdict> { match v { 1 => Some(Self::Human), 2 => Some(Self::Bot), 3 => Some(Self::Suspect), _ => None } } pub fn as_str(self) -> &'static str { match self { Self::Human => "human", Self::Bot => "bot", Self::Suspect => "suspect" } } }
impl Method { pub fn from_u8(v: u8) -> Option<Method> { match v { 1 => Some(Self::Get), 2 => Some(Self::Head), _ => None } } pub fn as_str(self) -> &'static str { match self { Self::Get => "GET", Self::Head => "HEAD" } } }
impl Reason {
    pub fn from_u8(v: u8) -> Option<Reason> { Self::ALL.into_iter().find(|r| *r as u8 == v) }
    pub const ALL: [Reason; 8] = [Reason::None, Reason::BotUserAgent, Reason::HeadRequest, Reason::LetterBurst, Reason::NearMint, Reason::PrivacyProxy, Reason::ImageProxy, Reason::EmptyUserAgent];
    pub fn as_str(self) -> &'static str { "none" }
    pub fn verdict(self) -> Verdict { match self { Self::BotUserAgent | Self::HeadRequest | Self::LetterBurst => Verdict::Bot, Self::PrivacyProxy | Self::NearMint | Self::EmptyUserAgent => Verdict::Suspect, _ => Verdict::Human } }
    pub fn stronger(self, other: Reason) -> Reason { let rank = |r: Reason| match r { Self::BotUserAgent => 0, Self::HeadRequest => 1, Self::LetterBurst => 2, Self::PrivacyProxy => 3, Self::ImageProxy => 4, Self::NearMint => 5, Self::EmptyUserAgent => 6, Self::None => 7 }; if rank(other) < rank(self) { other } else { self } }
}
#[derive(Debug, Default)]
pub struct Classifier;
impl Classifier { pub fn new() -> Classifier { Classifier } pub fn at_capture(&self, _k: LinkKind, m: Method, ua: &[u8]) -> Reason { if m == Method::Head { Reason::HeadRequest } else if ua.is_empty() { Reason::EmptyUserAgent } else { Reason::None } } }
#[derive(Debug, Clone, Copy)]
pub struct BurstRule { pub window_ms: i64, pub min_links: u32, pub min_fraction: f64 }
#[derive(Debug, Clone, Copy)]
pub struct BurstInput { pub at_ms: i64, pub letter: u64, pub ip: [u8; 16], pub link: u64, pub letter_links: u32 }
pub fn find_bursts(events: &[BurstInput], _rule: &BurstRule) -> Vec<bool> { vec![false; events.len()] }
pub fn near_mint(at_ms: i64, minted_at_ms: i64, window_ms: i64) -> bool { at_ms - minted_at_ms < window_ms }
