//! Placeholder until the spool lands (in-memory, same API).
use std::collections::VecDeque;
#[derive(Debug)]
pub struct Spool { q: VecDeque<Vec<u8>>, max: u64, used: u64 }
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolStats { pub records: u64, pub bytes: u64, pub corrupt_skipped: u64 }
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool is full ({used} of {max} bytes)")] Full { used: u64, max: u64 },
    #[error("spool io: {0}")] Io(#[from] std::io::Error),
}
impl Spool {
    pub fn open(_dir: &std::path::Path, max_bytes: u64) -> Result<Spool, SpoolError> { Ok(Spool { q: VecDeque::new(), max: max_bytes, used: 0 }) }
    pub fn append(&mut self, p: &[u8]) -> Result<(), SpoolError> { if self.used + p.len() as u64 > self.max { return Err(SpoolError::Full { used: self.used, max: self.max }) } self.used += p.len() as u64; self.q.push_back(p.to_vec()); Ok(()) }
    pub fn peek(&mut self) -> Result<Option<Vec<u8>>, SpoolError> { Ok(self.q.front().cloned()) }
    pub fn pop(&mut self) -> Result<(), SpoolError> { if let Some(p) = self.q.pop_front() { self.used -= p.len() as u64; } Ok(()) }
    pub fn stats(&self) -> SpoolStats { SpoolStats { records: self.q.len() as u64, bytes: self.used, corrupt_skipped: 0 } }
    pub fn is_empty(&self) -> bool { self.q.is_empty() }
}
