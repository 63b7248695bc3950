//! Statements whose length depends on the data (multi-row INSERTs, `IN`
//! lists) are sent as text, their values written as literals: numbers,
//! `X'<hex>'` binary strings and `NULL`. A prepared form would be one
//! statement per row count, and `mysql_async` keeps every prepared statement,
//! with a column definition per `?`, in its per-connection cache (256 per
//! connection): the 2026-12-01 soak grew to 512 MiB that way. Only
//! fixed-shape statements are prepared. Nothing here needs escaping: every
//! value is a number or hex.

use std::fmt::Write as _;

/// One value of a text statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lit<'a> {
    Uint(u64),
    Int(i64),
    /// Written as `X'<hex>'`, so any bytes are safe.
    Bytes(&'a [u8]),
    Null,
}

impl Lit<'_> {
    /// The length of this literal's text, at most.
    pub(super) fn text_len(self) -> usize {
        match self {
            Lit::Uint(_) | Lit::Int(_) => 20,
            Lit::Bytes(b) => 2 * b.len() + 3,
            Lit::Null => 4,
        }
    }

    fn push_to(self, sql: &mut String) {
        let _ = match self {
            Lit::Uint(n) => write!(sql, "{n}"),
            Lit::Int(n) => write!(sql, "{n}"),
            Lit::Bytes(b) => {
                push_hex(sql, b);
                Ok(())
            }
            Lit::Null => write!(sql, "NULL"),
        };
    }
}

macro_rules! lit_from_uint {
    ($($t:ty),*) => {$(
        impl From<$t> for Lit<'_> {
            fn from(n: $t) -> Self {
                Lit::Uint(u64::from(n))
            }
        }
    )*};
}
lit_from_uint!(u8, u16, u32, u64);

impl From<i64> for Lit<'_> {
    fn from(n: i64) -> Self {
        Lit::Int(n)
    }
}

impl<'a> From<&'a [u8]> for Lit<'a> {
    fn from(b: &'a [u8]) -> Self {
        Lit::Bytes(b)
    }
}

impl<'a> From<Option<&'a [u8]>> for Lit<'a> {
    fn from(b: Option<&'a [u8]>) -> Self {
        b.map_or(Lit::Null, Lit::Bytes)
    }
}

/// `a,b,c`: the body of an `IN (...)` list.
pub(super) fn list<'a>(values: impl IntoIterator<Item = Lit<'a>>) -> String {
    let mut sql = String::new();
    for (i, v) in values.into_iter().enumerate() {
        if i > 0 {
            sql.push(',');
        }
        v.push_to(&mut sql);
    }
    sql
}

/// `(a,b),(c,d)`: the rows of a multi-row `VALUES`.
pub(super) fn tuples<'a, R: AsRef<[Lit<'a>]>>(rows: impl IntoIterator<Item = R>) -> String {
    let mut sql = String::new();
    for (i, row) in rows.into_iter().enumerate() {
        if i > 0 {
            sql.push(',');
        }
        sql.push('(');
        for (j, v) in row.as_ref().iter().enumerate() {
            if j > 0 {
                sql.push(',');
            }
            v.push_to(&mut sql);
        }
        sql.push(')');
    }
    sql
}

/// The length of a row's text in [`tuples`], at most: for chunking under the packet budget.
pub(super) fn row_len(row: &[Lit<'_>]) -> usize {
    row.iter().map(|v| v.text_len() + 1).sum::<usize>() + 2
}

/// Append `X'<hex>'`, a binary literal, to `sql`.
pub(super) fn push_hex(sql: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    sql.push_str("X'");
    for b in bytes {
        sql.push(char::from(DIGITS[usize::from(b >> 4)]));
        sql.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    sql.push('\'');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_numbers_hex_and_null() {
        let rows = [
            [Lit::from(7u16), Lit::from(&b"a'\\\0"[..]), Lit::from(None::<&[u8]>)],
            [Lit::from(-3i64), Lit::from(&[][..]), Lit::from(u64::MAX)],
        ];
        assert_eq!(tuples(rows), "(7,X'61275c00',NULL),(-3,X'',18446744073709551615)");
        assert_eq!(list([Lit::from(1u64), Lit::from(&[0xffu8, 0x10][..])]), "1,X'ff10'");
        assert_eq!(list(std::iter::empty()), "");
    }

    #[test]
    fn row_len_is_an_upper_bound() {
        let row = [Lit::from(u64::MAX), Lit::from(i64::MIN), Lit::from(&[0xab; 40][..]), Lit::Null];
        assert!(tuples([row]).len() <= row_len(&row));
    }
}
