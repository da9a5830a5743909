//! The seam between the poller and a database: the CDC questions the source asks. [`crate::tds::TdsCdc`]
//! asks them of SQL Server over TDS (tiberius); [`MemoryCdc`] answers them from a [`History`] so the
//! poller's logic is tested without a server.

use crate::history::{compare_keys, ChangeRow, Column, History};
use lakefold_api::{Lsn, Value};

/// A capture instance as `cdc.change_tables` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeTable {
    pub instance: String,
    pub schema: String,
    pub table: String,
    pub start_lsn: Lsn,
}

/// A capture instance with its captured columns (key columns marked from `cdc.index_columns`).
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureTable {
    pub change_table: ChangeTable,
    pub columns: Vec<Column>,
}

impl CaptureTable {
    pub fn column_names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }

    pub fn key_names(&self) -> Vec<&str> {
        self.columns
            .iter()
            .filter(|c| c.key)
            .map(|c| c.name.as_str())
            .collect()
    }
}

/// What a database call can fail with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CdcError {
    /// The connection failed or broke: reconnect with backoff.
    #[error("sql server {server}: {message}")]
    Connection { server: String, message: String },
    /// The TLS handshake failed (an untrusted or mismatched certificate, no common protocol).
    #[error("sql server {server}: TLS handshake failed: {message} (trust the server's CA with ca_file, or set trust_server_certificate = true to accept any certificate)")]
    Tls { server: String, message: String },
    /// A statement did not answer within the statement timeout (the connection is dropped).
    #[error("sql server {server}: {statement} did not answer within {after:?}")]
    Timeout {
        server: String,
        statement: String,
        after: std::time::Duration,
    },
    /// The server answered with an error (number, as SQL Server numbers them).
    #[error("sql server {server}: error {number} running {statement}: {message}")]
    Server {
        server: String,
        statement: String,
        number: u32,
        message: String,
    },
    /// The answer did not have the expected shape or types.
    #[error("sql server {server}: unexpected answer to {statement}: {message}")]
    Answer {
        server: String,
        statement: String,
        message: String,
    },
}

impl CdcError {
    /// True when reconnecting and asking again may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, CdcError::Connection { .. } | CdcError::Timeout { .. })
    }

    pub fn is_timeout(&self) -> bool {
        matches!(self, CdcError::Timeout { .. })
    }
}

/// The CDC questions. All LSN ranges are inclusive at both ends, as `fn_cdc_get_all_changes_*`'s.
#[async_trait::async_trait]
pub trait CdcDatabase: Send {
    /// Where this is, for messages (`host:port/database`).
    fn describe(&self) -> String;
    async fn database_name(&mut self) -> Result<String, CdcError>;
    async fn change_tables(&mut self) -> Result<Vec<ChangeTable>, CdcError>;
    /// The captured columns of `table`, key columns marked.
    async fn capture_table(&mut self, table: &ChangeTable) -> Result<CaptureTable, CdcError>;
    async fn min_lsn(&mut self, instance: &str) -> Result<Lsn, CdcError>;
    async fn max_lsn(&mut self) -> Result<Lsn, CdcError>;
    async fn increment_lsn(&mut self, lsn: Lsn) -> Result<Lsn, CdcError>;
    /// The LSN of the `max_transactions`-th transaction at or after `from`, None when there is none.
    async fn window_end(
        &mut self,
        from: Lsn,
        max_transactions: u32,
    ) -> Result<Option<Lsn>, CdcError>;
    /// The change rows of `table` with `from <= start_lsn <= to`, ordered by (start LSN, seqval, operation).
    async fn changes(
        &mut self,
        table: &CaptureTable,
        from: Lsn,
        to: Lsn,
    ) -> Result<Vec<ChangeRow>, CdcError>;
    /// Starts a consistent read of the tables; true when it is under snapshot isolation.
    async fn begin_snapshot(&mut self) -> Result<bool, CdcError>;
    async fn end_snapshot(&mut self) -> Result<(), CdcError>;
    /// The commit time (`tran_end_time`, µs since the epoch, read as UTC) of each transaction with a
    /// start LSN in `from..=to`.
    async fn transaction_times(&mut self, from: Lsn, to: Lsn) -> Result<Vec<(Lsn, i64)>, CdcError>;
    /// How many rows `table` holds, as the catalog estimates it (`None` when it cannot say).
    async fn row_count(&mut self, table: &CaptureTable) -> Result<Option<u64>, CdcError>;
    /// Up to `limit` rows of `table` in key order after the key `after`.
    async fn snapshot_chunk(
        &mut self,
        table: &CaptureTable,
        after: Option<&[Value]>,
        limit: u32,
    ) -> Result<Vec<Vec<Value>>, CdcError>;
}

/// SQL Server's error 313, raised by `fn_cdc_get_all_changes_*` for an LSN range outside the instance's
/// valid range.
pub const INVALID_RANGE_ERROR: u32 = 313;

/// The answers of [`CdcDatabase`] from a history: what the fixture server serves and the poller's tests use.
impl History {
    pub fn change_tables(&self) -> Vec<ChangeTable> {
        let mut out: Vec<ChangeTable> = self
            .instances
            .iter()
            .map(|i| ChangeTable {
                instance: i.name.clone(),
                schema: i.source_schema.clone(),
                table: i.source_table.clone(),
                start_lsn: i.start_lsn,
            })
            .collect();
        out.sort_by(|a, b| a.instance.cmp(&b.instance));
        out
    }

    /// `fn_cdc_get_all_changes_<instance>(from, to)`; Err(message) is error 313.
    pub fn changes_between(
        &self,
        instance: &str,
        from: Lsn,
        to: Lsn,
    ) -> Result<Vec<&ChangeRow>, String> {
        let inst = self.instance(instance).ok_or_else(|| {
            format!("Invalid object name 'cdc.fn_cdc_get_all_changes_{instance}'.")
        })?;
        if from < inst.min_lsn || to > self.max_lsn() || from > to {
            return Err(format!(
                "An insufficient number of arguments were supplied for the procedure or function cdc.fn_cdc_get_all_changes_{instance}."
            ));
        }
        Ok(inst
            .changes
            .iter()
            .filter(|c| c.start_lsn >= from && c.start_lsn <= to)
            .collect())
    }

    pub fn window_end(&self, from: Lsn, max_transactions: u32) -> Option<Lsn> {
        self.transactions
            .iter()
            .filter(|t| t.start_lsn >= from)
            .take(max_transactions.max(1) as usize)
            .last()
            .map(|t| t.start_lsn)
    }

    /// Commit times of the transactions in `from..=to` that have one.
    pub fn transaction_times(&self, from: Lsn, to: Lsn) -> Vec<(Lsn, i64)> {
        self.transactions
            .iter()
            .filter(|t| t.start_lsn >= from && t.start_lsn <= to)
            .filter_map(|t| t.end_micros.map(|m| (t.start_lsn, m)))
            .collect()
    }

    /// The rows of the instance's table at the max LSN.
    pub fn row_count(&self, instance: &str) -> u64 {
        self.instance(instance)
            .map(|i| i.state_at(self.max_lsn()).len() as u64)
            .unwrap_or(0)
    }

    /// Up to `limit` rows of the instance's table at the max LSN, in key order, after `after`.
    pub fn snapshot_rows(
        &self,
        instance: &str,
        after: Option<&[Value]>,
        limit: u32,
    ) -> Vec<Vec<Value>> {
        let Some(inst) = self.instance(instance) else {
            return Vec::new();
        };
        let keys = inst.key_indexes();
        inst.state_at(self.max_lsn())
            .into_iter()
            .filter(|row| match after {
                None => true,
                Some(after) => {
                    let key: Vec<Value> = keys.iter().map(|&k| row[k].clone()).collect();
                    compare_keys(&key, after) == std::cmp::Ordering::Greater
                }
            })
            .take(limit as usize)
            .collect()
    }
}

/// `sys.fn_cdc_increment_lsn`: the next LSN (slot + 1, carrying).
pub fn increment(lsn: Lsn) -> Lsn {
    Lsn((lsn.0 + 1) & ((1u128 << 80) - 1))
}

/// A [`CdcDatabase`] over a history in memory; `history` may be replaced between calls to simulate a
/// server whose log grows or whose cleanup job runs.
pub struct MemoryCdc {
    pub history: History,
    /// Calls that fail with a connection error before answering (for reconnect tests).
    pub fail_next: usize,
    /// Change queries that would return more rows than this time out (a server too slow for the window).
    pub timeout_over_rows: Option<usize>,
}

impl MemoryCdc {
    pub fn new(history: History) -> MemoryCdc {
        MemoryCdc {
            history,
            fail_next: 0,
            timeout_over_rows: None,
        }
    }

    fn check(&mut self) -> Result<(), CdcError> {
        if self.fail_next > 0 {
            self.fail_next -= 1;
            return Err(CdcError::Connection {
                server: "memory".into(),
                message: "connection reset".into(),
            });
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl CdcDatabase for MemoryCdc {
    fn describe(&self) -> String {
        format!("memory/{}", self.history.database)
    }

    async fn database_name(&mut self) -> Result<String, CdcError> {
        self.check()?;
        Ok(self.history.database.clone())
    }

    async fn change_tables(&mut self) -> Result<Vec<ChangeTable>, CdcError> {
        self.check()?;
        Ok(self.history.change_tables())
    }

    async fn capture_table(&mut self, table: &ChangeTable) -> Result<CaptureTable, CdcError> {
        self.check()?;
        let inst = self
            .history
            .instance(&table.instance)
            .ok_or_else(|| CdcError::Answer {
                server: "memory".into(),
                statement: "captured columns".into(),
                message: format!("no capture instance {}", table.instance),
            })?;
        Ok(CaptureTable {
            change_table: table.clone(),
            columns: inst.columns.clone(),
        })
    }

    async fn min_lsn(&mut self, instance: &str) -> Result<Lsn, CdcError> {
        self.check()?;
        Ok(self
            .history
            .instance(instance)
            .map(|i| i.min_lsn)
            .unwrap_or_default())
    }

    async fn max_lsn(&mut self) -> Result<Lsn, CdcError> {
        self.check()?;
        Ok(self.history.max_lsn())
    }

    async fn increment_lsn(&mut self, lsn: Lsn) -> Result<Lsn, CdcError> {
        self.check()?;
        Ok(increment(lsn))
    }

    async fn window_end(
        &mut self,
        from: Lsn,
        max_transactions: u32,
    ) -> Result<Option<Lsn>, CdcError> {
        self.check()?;
        Ok(self.history.window_end(from, max_transactions))
    }

    async fn changes(
        &mut self,
        table: &CaptureTable,
        from: Lsn,
        to: Lsn,
    ) -> Result<Vec<ChangeRow>, CdcError> {
        self.check()?;
        let rows: Vec<ChangeRow> = self
            .history
            .changes_between(&table.change_table.instance, from, to)
            .map(|rows| rows.into_iter().cloned().collect())
            .map_err(|message| CdcError::Server {
                server: "memory".into(),
                statement: "changes".into(),
                number: INVALID_RANGE_ERROR,
                message,
            })?;
        match self.timeout_over_rows {
            Some(limit) if rows.len() > limit => Err(CdcError::Timeout {
                server: "memory".into(),
                statement: "changes".into(),
                after: std::time::Duration::from_secs(60),
            }),
            _ => Ok(rows),
        }
    }

    async fn begin_snapshot(&mut self) -> Result<bool, CdcError> {
        self.check()?;
        Ok(true)
    }

    async fn end_snapshot(&mut self) -> Result<(), CdcError> {
        self.check()
    }

    async fn transaction_times(&mut self, from: Lsn, to: Lsn) -> Result<Vec<(Lsn, i64)>, CdcError> {
        self.check()?;
        Ok(self.history.transaction_times(from, to))
    }

    async fn row_count(&mut self, table: &CaptureTable) -> Result<Option<u64>, CdcError> {
        self.check()?;
        Ok(Some(self.history.row_count(&table.change_table.instance)))
    }

    async fn snapshot_chunk(
        &mut self,
        table: &CaptureTable,
        after: Option<&[Value]>,
        limit: u32,
    ) -> Result<Vec<Vec<Value>>, CdcError> {
        self.check()?;
        Ok(self
            .history
            .snapshot_rows(&table.change_table.instance, after, limit))
    }
}
