//! What a store with read replicas tells the layers above about them: each
//! replica's state and lag ([`ReplicaStatus`]) and the routing counters
//! ([`ReadRouting`]), a snapshot read by `/readyz` and `/metrics`. Plain
//! data: the routing itself lives in the backend (`store::mysql::replicas`).

use std::time::Duration;

/// Whether a replica gets reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaState {
    /// Not checked yet: no reads until the first check.
    Unchecked,
    /// Reachable and within the lag limit: gets its share of reads.
    Serving,
    /// Reachable but further behind than the limit: its reads go to the primary.
    Lagging,
    /// Unreachable, or a read on it failed: its reads go to the primary.
    Down,
}

impl ReplicaState {
    /// The name `/readyz` and `/metrics` show.
    pub fn label(self) -> &'static str {
        match self {
            ReplicaState::Unchecked => "unchecked",
            ReplicaState::Serving => "serving",
            ReplicaState::Lagging => "lagging",
            ReplicaState::Down => "down",
        }
    }
}

/// One replica as the last check (or the last failed read) left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// `host:port`, never the URL (it may carry a password).
    pub name: String,
    pub state: ReplicaState,
    /// How far behind the primary it was at the last check; `None` when it could not be measured.
    pub lag: Option<Duration>,
    /// Why it gets no reads, for an operator (`None` while serving).
    pub reason: Option<String>,
    /// Reads this replica answered since start.
    pub reads: u64,
}

/// The read-routing snapshot: replicas and counters since start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadRouting {
    pub replicas: Vec<ReplicaStatus>,
    /// Resolves of a fresh token (today's or yesterday's) that missed on a
    /// replica and were asked again on the primary, which found the link.
    pub primary_retries_found: u64,
    /// The same, where the primary had no such link either (a real `404`).
    pub primary_retries_missing: u64,
    /// Reads that went to the primary because no replica was serving, or the
    /// chosen one failed during the read.
    pub primary_fallbacks: u64,
    /// Export pages that came back short from a replica and were completed
    /// from the primary (the replica may not have applied the tail yet).
    pub export_topups: u64,
}

impl ReadRouting {
    /// One line per replica that gets no reads, for `/readyz`; empty when all serve.
    pub fn notes(&self) -> Vec<String> {
        self.replicas
            .iter()
            .filter(|r| r.state != ReplicaState::Serving)
            .map(|r| {
                let why = r.reason.as_deref().unwrap_or("not checked yet");
                format!("read replica {} is {}: {why}; its reads go to the primary", r.name, r.state.label())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_name_only_replicas_without_reads() {
        let serving =
            ReplicaStatus { name: "10.0.0.2:3306".into(), state: ReplicaState::Serving, lag: Some(Duration::ZERO), reason: None, reads: 3 };
        let down = ReplicaStatus {
            name: "10.0.0.3:3306".into(),
            state: ReplicaState::Down,
            lag: None,
            reason: Some("connection refused".into()),
            reads: 0,
        };
        let r = ReadRouting { replicas: vec![serving, down], ..ReadRouting::default() };
        assert_eq!(r.notes(), vec!["read replica 10.0.0.3:3306 is down: connection refused; its reads go to the primary".to_owned()]);
    }
}
