//! Where each statement of this store would be routed once the tables are
//! sharded with Vitess (`docs/scaling.md`). This file is data, not code the
//! store runs: `scripts/sql-routing` reads it, extracts every SQL statement
//! from `src/store/mysql/*.rs` and fails when a statement on a day-scoped
//! table names neither its `day` and one of the table's [`SHARD_KEYS`], nor
//! appears in [`EXCEPTIONS`] with its reason. It also generates the
//! statement-routing table in `docs/scaling.md`, and `scripts/test` checks
//! that the table is current.
//!
//! The format is read by a script: keep one entry per struct literal, every
//! field a plain string literal on one line, no `"` inside strings.

/// How a statement that does not name its shard key runs on a sharded keyspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Deliberately reads or writes every shard (vtgate scatters it, or the
    /// caller runs it once per shard).
    Scatter,
    /// Runs on one shard at a time with an explicit shard target (`USE
    /// linktrack/-80`), inside a per-shard job: the rows it touches were
    /// written and are read on that shard only.
    ShardLocal,
    /// Not routable yet: the statement changes when the keyspace is sharded
    /// (what changes is in the reason and in `docs/scaling.md`).
    Pending,
}

/// A statement that does not name its shard key, on purpose.
#[derive(Debug, Clone, Copy)]
pub struct Exception {
    /// A piece of the statement's text (whitespace collapsed) that occurs in
    /// this statement only.
    pub statement: &'static str,
    pub kind: Kind,
    pub reason: &'static str,
}

/// Each day-scoped table and the columns that route one of its rows to a
/// shard (any one of them, beside `day`). An empty list: the table has no
/// routing column, it is shard-local, and every statement on it is an
/// exception. `tests` keeps this list equal to the tables maintenance
/// partitions.
pub const SHARD_KEYS: &[(&str, &[&str])] = &[
    ("links_v2", &["id"]),
    ("links", &["rnd"]),
    ("letters", &["id"]),
    ("urls", &["id", "bucket"]),
    ("user_agents", &["id", "bucket"]),
    ("idempotency", &["key_hash"]),
    ("events", &["link_id"]),
    ("event_batches", &[]),
    ("link_seen", &[]),
];

/// Where the tables that are not day-scoped live on a sharded keyspace.
pub const PLACEMENT: &[(&str, &str)] = &[
    ("locks", "every shard: its event_writer row orders that shard's event ids"),
    ("rollup_state", "every shard: the rollup runs per shard, with its own watermark"),
    ("stats_totals", "every shard: partial totals of that shard's events; a stats read sums them (scatter)"),
    ("stats_series", "every shard: partial series of that shard's events; a series read sums them (scatter)"),
    ("mailings", "global unsharded keyspace, upserted before the mint's transaction"),
    ("tenants", "global unsharded keyspace"),
    ("api_keys", "global unsharded keyspace"),
    ("sequences", "global unsharded keyspace (Vitess sequence tables)"),
    ("settings", "global unsharded keyspace"),
    ("webhooks", "global unsharded keyspace (few rows); each cursor becomes per-shard, as the export's"),
    ("schema_migrations", "every shard and the global keyspace (schema applied per keyspace)"),
    ("information_schema", "every shard (maintenance reads each shard's partitions)"),
];

/// Statements completed at run time by a fixed suffix: (constant, the
/// format string that appends to it, as in the source).
pub const SUFFIXED: &[(&str, &str)] = &[
    ("LETTERS_BY_ID_SQL", "{select}{} AND id IN ("),
    ("URLS_BY_ID_SQL", "{select}{} AND id IN ("),
    ("PLACING_BY_ID_SQL", "{select}{} AND id IN ("),
];

/// Table names formatted into statements at run time: (placeholder, tables).
pub const DYNAMIC_TABLES: &[(&str, &[&str])] = &[
    ("{name}", &["urls", "user_agents"]),
    ("{table}", &["links", "links_v2", "urls", "letters", "idempotency", "user_agents", "events", "event_batches", "link_seen"]),
];

/// The statements on day-scoped tables that name no shard key, and why.
pub const EXCEPTIONS: &[Exception] = &[
    Exception {
        statement: "INSERT INTO {name} (day, hash, {column}) VALUES",
        kind: Kind::Pending,
        reason: "interning a URL or user agent: ids are AUTO_INCREMENT today; sharded, the row gains bucket (the letter's, or the event's link's) and the unique key becomes (hash, day, bucket)",
    },
    Exception {
        statement: "SELECT hash, id FROM {name} WHERE day = ? AND hash IN",
        kind: Kind::Pending,
        reason: "reading interned ids back: gains AND bucket = ? with the unique key above",
    },
    Exception {
        statement: "INSERT INTO letters (day, minted_at, click_links, mailing_id, recipient, meta, tenant) VALUES",
        kind: Kind::Pending,
        reason: "letters.id is AUTO_INCREMENT today; sharded, the mint supplies id = counter << 8 | bucket, as for its links",
    },
    Exception {
        statement: "ALTER TABLE {table} ADD PARTITION",
        kind: Kind::ShardLocal,
        reason: "partition maintenance runs on every shard's primary, under that shard's own named lock",
    },
    Exception {
        statement: "ALTER TABLE {table} DROP PARTITION",
        kind: Kind::ShardLocal,
        reason: "partition maintenance runs on every shard's primary, under that shard's own named lock",
    },
    Exception {
        statement: "FROM events e LEFT JOIN user_agents ua ON ua.id = e.ua_id AND ua.day = e.day WHERE e.day >= ? AND e.id > ? ORDER BY",
        kind: Kind::Scatter,
        reason: "the export and rollup cursor walk: one walk per shard, each with its own (day, id) cursor; the export merges them",
    },
    Exception {
        statement: "WHERE e.day >= ? AND e.id > ? AND lt.mailing_id = ?",
        kind: Kind::Scatter,
        reason: "a mailing's export is the cursor walk above with a filter: per shard, merged",
    },
    Exception {
        statement: "SELECT 1 FROM event_batches WHERE id = ? AND day BETWEEN",
        kind: Kind::ShardLocal,
        reason: "a batch is split per shard and each part is written in one transaction on its shard, with its own id",
    },
    Exception {
        statement: "INSERT INTO event_batches (id, day) VALUES",
        kind: Kind::ShardLocal,
        reason: "as above: in the same per-shard transaction as the part's events",
    },
    Exception {
        statement: "UPDATE events SET verdict = ?, reason = ? WHERE day = ? AND id IN",
        kind: Kind::ShardLocal,
        reason: "rollup re-labels: the pass runs per shard and event ids are that shard's",
    },
    Exception {
        statement: "SELECT rnd, human FROM link_seen WHERE day = ? AND rnd IN",
        kind: Kind::ShardLocal,
        reason: "first hits are counted by the per-shard rollup, next to the link's events",
    },
    Exception { statement: "INSERT INTO link_seen (rnd, day, human) VALUES", kind: Kind::ShardLocal, reason: "as above" },
    Exception { statement: "UPDATE link_seen SET human = 1 WHERE day = ? AND rnd IN", kind: Kind::ShardLocal, reason: "as above" },
    Exception {
        statement: "UPDATE letters SET recipient = '', meta = NULL WHERE day = ? AND tenant = ? AND recipient = ?",
        kind: Kind::Scatter,
        reason: "erasure: a recipient's letters can be on any shard; rare, one day at a time",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_keys_name_exactly_the_partitioned_tables() {
        let mut keyed: Vec<&str> = SHARD_KEYS.iter().map(|(t, _)| *t).collect();
        let mut day: Vec<&str> = super::super::DAY_TABLES.to_vec();
        keyed.sort_unstable();
        day.sort_unstable();
        assert_eq!(keyed, day, "every day-scoped table has a SHARD_KEYS entry, and only those");
        let dynamic = DYNAMIC_TABLES.iter().find(|(p, _)| *p == "{table}").map(|(_, t)| t.to_vec()).unwrap_or_default();
        let mut dynamic = dynamic;
        dynamic.sort_unstable();
        assert_eq!(dynamic, day, "maintenance formats every day table into its ALTER");
    }
}
