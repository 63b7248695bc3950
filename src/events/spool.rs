//! The on-disk event spool (filled in next).
