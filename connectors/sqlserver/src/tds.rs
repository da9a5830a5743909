//! [`CdcDatabase`] over TDS with tiberius: one connection, re-opened after an I/O error.

use crate::cdc::{CaptureTable, CdcDatabase, CdcError, ChangeTable};
use crate::history::{lsn_bytes, lsn_from_bytes, ChangeRow, Column};
use crate::sql_type::SqlType;
use crate::statements as st;
use crate::tds_values::{key_param, value_of};
use lakefold_api::{Lsn, Value};
use std::time::Duration;
use tiberius::{AuthMethod, Client, ColumnData, Config, EncryptionLevel, ToSql};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

/// How to reach the server.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// ADO.NET connection string without the password.
    pub connection: String,
    /// The password (from the environment; never logged).
    pub password: Option<String>,
    /// A CA certificate file to trust (PEM).
    pub ca_file: Option<String>,
    /// Accept any server certificate (only when set explicitly).
    pub trust_server_certificate: bool,
    /// Time allowed for connecting and for each statement.
    pub timeout: Duration,
}

/// The parts of a connection string lakefold reads itself.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionString {
    pub host: String,
    pub port: u16,
    pub database: Option<String>,
    pub user: Option<String>,
    pub encrypt: Encrypt,
    pub trust_server_certificate: bool,
}

/// `encrypt=`: `false` no TLS at all; `true` TLS (TDS 7.x, after PRELOGIN); `strict` TDS 8 TLS first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encrypt {
    No,
    Yes,
    Strict,
}

/// Parses `server=tcp:host,1433;database=…;user=…;encrypt=…`; a `password` key is refused (it belongs
/// in the environment).
pub fn parse_connection(text: &str) -> Result<ConnectionString, String> {
    let mut out = ConnectionString {
        host: String::new(),
        port: 1433,
        database: None,
        user: None,
        encrypt: Encrypt::Yes,
        trust_server_certificate: false,
    };
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}` is not key=value"))?;
        let key = k.trim().to_ascii_lowercase().replace(' ', "");
        let v = v.trim();
        match key.as_str() {
            "server" | "datasource" | "address" | "addr" | "networkaddress" => {
                let v = v.strip_prefix("tcp:").unwrap_or(v);
                let (host, port) = match v.split_once(',') {
                    Some((h, p)) => (h, p.trim().parse::<u16>().map_err(|_| format!("`{p}` is not a port"))?),
                    None => (v, 1433),
                };
                out.host = host.trim().to_string();
                out.port = port;
            }
            "database" | "initialcatalog" => out.database = Some(v.to_string()),
            "user" | "uid" | "userid" | "username" => out.user = Some(v.to_string()),
            "password" | "pwd" => {
                return Err("the connection string must not hold the password: set LAKEFOLD_SQLSERVER_PASSWORD (or the variable named by password_env)".into())
            }
            "encrypt" => {
                out.encrypt = match v.to_ascii_lowercase().as_str() {
                    "false" | "no" | "optional" => Encrypt::No,
                    "true" | "yes" | "mandatory" => Encrypt::Yes,
                    "strict" => Encrypt::Strict,
                    other => return Err(format!("encrypt=`{other}`: expected true, false or strict")),
                }
            }
            "trustservercertificate" => {
                out.trust_server_certificate = matches!(v.to_ascii_lowercase().as_str(), "true" | "yes")
            }
            "applicationname" | "app" | "connecttimeout" | "connectiontimeout" => {}
            other => return Err(format!("unknown connection string key `{other}`")),
        }
    }
    if out.host.is_empty() {
        return Err("the connection string names no server (server=tcp:host,1433)".into());
    }
    Ok(out)
}

/// A tiberius connection that implements the CDC questions.
pub struct TdsCdc {
    options: ConnectOptions,
    parsed: ConnectionString,
    client: Option<Client<Compat<TcpStream>>>,
    in_snapshot: bool,
}

impl TdsCdc {
    pub fn new(options: ConnectOptions) -> Result<TdsCdc, String> {
        let parsed = parse_connection(&options.connection)?;
        Ok(TdsCdc {
            options,
            parsed,
            client: None,
            in_snapshot: false,
        })
    }

    fn server(&self) -> String {
        format!(
            "{}:{}/{}",
            self.parsed.host,
            self.parsed.port,
            self.parsed.database.as_deref().unwrap_or("")
        )
    }

    fn config(&self) -> Config {
        let mut c = Config::new();
        c.host(&self.parsed.host);
        c.port(self.parsed.port);
        if let Some(db) = &self.parsed.database {
            c.database(db);
        }
        c.application_name("lakefold");
        c.authentication(AuthMethod::sql_server(
            self.parsed.user.clone().unwrap_or_default(),
            self.options.password.clone().unwrap_or_default(),
        ));
        c.encryption(match self.parsed.encrypt {
            Encrypt::No => EncryptionLevel::NotSupported,
            Encrypt::Yes => EncryptionLevel::Required,
            Encrypt::Strict => EncryptionLevel::Strict,
        });
        if let Some(ca) = &self.options.ca_file {
            c.trust_cert_ca(ca);
        } else if self.options.trust_server_certificate || self.parsed.trust_server_certificate {
            c.trust_cert();
        }
        c
    }

    fn connection_error(&self, message: impl ToString) -> CdcError {
        CdcError::Connection {
            server: self.server(),
            message: message.to_string(),
        }
    }

    async fn client(&mut self) -> Result<&mut Client<Compat<TcpStream>>, CdcError> {
        if self.client.is_none() {
            let addr = format!("{}:{}", self.parsed.host, self.parsed.port);
            let connect = async {
                let tcp = TcpStream::connect(&addr)
                    .await
                    .map_err(|e| self.connection_error(e))?;
                let _ = tcp.set_nodelay(true);
                Client::connect(self.config(), tcp.compat_write())
                    .await
                    .map_err(|e| self.error("login", e))
            };
            let client = tokio::time::timeout(self.options.timeout, connect)
                .await
                .map_err(|_| {
                    self.connection_error(format!(
                        "no connection within {:?}",
                        self.options.timeout
                    ))
                })??;
            self.client = Some(client);
        }
        self.client.as_mut().ok_or_else(|| CdcError::Connection {
            server: String::new(),
            message: "not connected".into(),
        })
    }

    fn error(&self, statement: &str, e: tiberius::error::Error) -> CdcError {
        match e {
            tiberius::error::Error::Server(t) => CdcError::Server {
                server: self.server(),
                statement: statement.to_string(),
                number: t.code(),
                message: t.message().to_string(),
            },
            // A handshake that fails is configuration (certificate, trust, protocol): asking again will
            // not help.
            tiberius::error::Error::Tls(message) => CdcError::Tls {
                server: self.server(),
                message,
            },
            tiberius::error::Error::Io { .. } | tiberius::error::Error::Routing { .. } => {
                self.connection_error(e)
            }
            other => CdcError::Answer {
                server: self.server(),
                statement: statement.to_string(),
                message: other.to_string(),
            },
        }
    }

    /// Runs a statement and returns its first result set; a broken connection is dropped so the next
    /// call reconnects.
    async fn rows(
        &mut self,
        name: &str,
        sql: &str,
        params: &[&dyn ToSql],
    ) -> Result<Vec<tiberius::Row>, CdcError> {
        let timeout = self.options.timeout;
        let result = {
            let client = self.client().await?;
            tokio::time::timeout(timeout, async {
                let stream = if params.is_empty() {
                    client.simple_query(sql).await?
                } else {
                    client.query(sql, params).await?
                };
                stream.into_first_result().await
            })
            .await
        };
        match result {
            Ok(Ok(rows)) => Ok(rows),
            Ok(Err(e)) => {
                let err = self.error(name, e);
                if err.is_transient() {
                    self.client = None;
                    self.in_snapshot = false;
                }
                Err(err)
            }
            Err(_) => {
                self.client = None;
                self.in_snapshot = false;
                Err(CdcError::Timeout {
                    server: self.server(),
                    statement: name.to_string(),
                    after: timeout,
                })
            }
        }
    }

    fn answer(&self, statement: &str, message: impl Into<String>) -> CdcError {
        CdcError::Answer {
            server: self.server(),
            statement: statement.to_string(),
            message: message.into(),
        }
    }

    async fn one_lsn(
        &mut self,
        name: &str,
        sql: &str,
        params: &[&dyn ToSql],
    ) -> Result<Option<Lsn>, CdcError> {
        let rows = self.rows(name, sql, params).await?;
        let Some(row) = rows.into_iter().next() else {
            return Err(self.answer(name, "no row"));
        };
        match row.into_iter().next() {
            Some(ColumnData::Binary(None)) => Ok(None),
            Some(ColumnData::Binary(Some(b))) => lsn_from_bytes(&b)
                .map(Some)
                .ok_or_else(|| self.answer(name, "an LSN that is not binary(10)")),
            _ => Err(self.answer(name, "not a binary(10) column")),
        }
    }
}

fn text(c: Option<ColumnData<'static>>) -> Option<String> {
    match c {
        Some(ColumnData::String(Some(s))) => Some(s.into_owned()),
        _ => None,
    }
}

fn int(c: Option<ColumnData<'static>>) -> Option<i64> {
    match c {
        Some(ColumnData::U8(Some(v))) => Some(v as i64),
        Some(ColumnData::I16(Some(v))) => Some(v as i64),
        Some(ColumnData::I32(Some(v))) => Some(v as i64),
        Some(ColumnData::I64(Some(v))) => Some(v),
        _ => None,
    }
}

#[async_trait::async_trait]
impl CdcDatabase for TdsCdc {
    fn describe(&self) -> String {
        self.server()
    }

    async fn database_name(&mut self) -> Result<String, CdcError> {
        let rows = self.rows("DB_NAME()", st::DATABASE_NAME, &[]).await?;
        rows.into_iter()
            .next()
            .and_then(|r| text(r.into_iter().next()))
            .ok_or_else(|| self.answer("DB_NAME()", "no database name"))
    }

    async fn change_tables(&mut self) -> Result<Vec<ChangeTable>, CdcError> {
        let rows = self
            .rows("cdc.change_tables", st::CHANGE_TABLES, &[])
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut it = row.into_iter();
            let (instance, schema, table) = (text(it.next()), text(it.next()), text(it.next()));
            let start = match it.next() {
                Some(ColumnData::Binary(Some(b))) => lsn_from_bytes(&b),
                _ => None,
            };
            match (instance, schema, table, start) {
                (Some(instance), Some(schema), Some(table), Some(start_lsn)) => {
                    out.push(ChangeTable {
                        instance,
                        schema,
                        table,
                        start_lsn,
                    })
                }
                _ => {
                    return Err(self.answer(
                        "cdc.change_tables",
                        "a row without instance, schema, table or start_lsn",
                    ))
                }
            }
        }
        Ok(out)
    }

    async fn capture_table(&mut self, table: &ChangeTable) -> Result<CaptureTable, CdcError> {
        let name = table.instance.clone();
        let rows = self
            .rows("cdc.captured_columns", st::CAPTURED_COLUMNS, &[&name])
            .await?;
        let mut columns = Vec::with_capacity(rows.len());
        for row in rows {
            let mut it = row.into_iter();
            let (n, ty, p, s, nullable) = (
                text(it.next()),
                text(it.next()),
                int(it.next()),
                int(it.next()),
                int(it.next()),
            );
            let (Some(n), Some(ty)) = (n, ty) else {
                return Err(self.answer("cdc.captured_columns", "a row without name or type"));
            };
            let sql_type = SqlType::from_catalog(&ty, p.unwrap_or(0) as i32, s.unwrap_or(0) as i32)
                .map_err(|e| {
                    self.answer("cdc.captured_columns", format!("column {n} of {name}: {e}"))
                })?;
            columns.push(Column {
                name: n,
                ty: sql_type,
                nullable: nullable.unwrap_or(1) != 0,
                key: false,
            });
        }
        let keys = self
            .rows("cdc.index_columns", st::INDEX_COLUMNS, &[&name])
            .await?;
        for row in keys {
            if let Some(k) = text(row.into_iter().next()) {
                if let Some(c) = columns.iter_mut().find(|c| c.name.eq_ignore_ascii_case(&k)) {
                    c.key = true;
                }
            }
        }
        Ok(CaptureTable {
            change_table: table.clone(),
            columns,
        })
    }

    async fn min_lsn(&mut self, instance: &str) -> Result<Lsn, CdcError> {
        let name = instance.to_string();
        Ok(self
            .one_lsn("sys.fn_cdc_get_min_lsn", st::MIN_LSN, &[&name])
            .await?
            .unwrap_or_default())
    }

    async fn max_lsn(&mut self) -> Result<Lsn, CdcError> {
        Ok(self
            .one_lsn("sys.fn_cdc_get_max_lsn", st::MAX_LSN, &[])
            .await?
            .unwrap_or_default())
    }

    async fn increment_lsn(&mut self, lsn: Lsn) -> Result<Lsn, CdcError> {
        let b = lsn_bytes(lsn).to_vec();
        self.one_lsn("sys.fn_cdc_increment_lsn", st::INCREMENT_LSN, &[&b])
            .await?
            .ok_or_else(|| self.answer("sys.fn_cdc_increment_lsn", "NULL"))
    }

    async fn window_end(
        &mut self,
        from: Lsn,
        max_transactions: u32,
    ) -> Result<Option<Lsn>, CdcError> {
        let b = lsn_bytes(from).to_vec();
        let top = max_transactions.min(i32::MAX as u32) as i32;
        self.one_lsn("cdc.lsn_time_mapping", st::WINDOW_END, &[&top, &b])
            .await
    }

    async fn changes(
        &mut self,
        table: &CaptureTable,
        from: Lsn,
        to: Lsn,
    ) -> Result<Vec<ChangeRow>, CdcError> {
        let instance = &table.change_table.instance;
        let sql = st::changes(instance, &table.column_names());
        let name = format!("cdc.fn_cdc_get_all_changes_{instance}");
        let (f, t) = (lsn_bytes(from).to_vec(), lsn_bytes(to).to_vec());
        let rows = self.rows(&name, &sql, &[&f, &t]).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut it = row.into_iter();
            let lsn = |c: Option<ColumnData<'static>>| match c {
                Some(ColumnData::Binary(Some(b))) => lsn_from_bytes(&b),
                _ => None,
            };
            let (Some(start_lsn), Some(seqval), Some(operation)) =
                (lsn(it.next()), lsn(it.next()), int(it.next()))
            else {
                return Err(self.answer(
                    &name,
                    "a row without __$start_lsn, __$seqval or __$operation",
                ));
            };
            let mut values = Vec::with_capacity(table.columns.len());
            for (col, data) in table.columns.iter().zip(it) {
                values.push(
                    value_of(data, col.ty)
                        .map_err(|e| self.answer(&name, format!("column {}: {e}", col.name)))?,
                );
            }
            out.push(ChangeRow {
                start_lsn,
                seqval,
                operation: operation as i32,
                values,
            });
        }
        Ok(out)
    }

    async fn begin_snapshot(&mut self) -> Result<bool, CdcError> {
        let rows = self
            .rows("sys.databases", st::SNAPSHOT_ISOLATION_STATE, &[])
            .await?;
        let allowed = rows
            .into_iter()
            .next()
            .and_then(|r| int(r.into_iter().next()))
            == Some(1);
        let level = if allowed {
            st::SET_SNAPSHOT_ISOLATION
        } else {
            st::SET_REPEATABLE_READ
        };
        self.rows("isolation level", level, &[]).await?;
        self.rows("BEGIN TRANSACTION", st::BEGIN_TRANSACTION, &[])
            .await?;
        self.in_snapshot = true;
        Ok(allowed)
    }

    async fn transaction_times(&mut self, from: Lsn, to: Lsn) -> Result<Vec<(Lsn, i64)>, CdcError> {
        let name = "cdc.lsn_time_mapping";
        let (a, b) = (lsn_bytes(from).to_vec(), lsn_bytes(to).to_vec());
        let rows = self.rows(name, st::TRANSACTION_TIMES, &[&a, &b]).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut cols = row.into_iter();
            let lsn = match cols.next() {
                Some(ColumnData::Binary(Some(b))) => lsn_from_bytes(&b),
                _ => None,
            };
            let time = cols
                .next()
                .map(|c| value_of(c, SqlType::DateTime))
                .transpose()
                .map_err(|e| self.answer(name, e))?;
            if let (Some(lsn), Some(Value::Timestamp { value, unit })) = (lsn, time) {
                out.push((lsn, unit.micros(value)));
            }
        }
        Ok(out)
    }

    async fn row_count(&mut self, table: &CaptureTable) -> Result<Option<u64>, CdcError> {
        let ct = &table.change_table;
        let name = st::table_name(&ct.schema, &ct.table);
        let rows = self.rows("sys.partitions", st::ROW_COUNT, &[&name]).await?;
        Ok(rows
            .into_iter()
            .next()
            .and_then(|r| int(r.into_iter().next()))
            .and_then(|n| u64::try_from(n).ok()))
    }

    async fn end_snapshot(&mut self) -> Result<(), CdcError> {
        if self.in_snapshot {
            self.rows("COMMIT TRANSACTION", st::COMMIT_TRANSACTION, &[])
                .await?;
            self.rows("isolation level", st::SET_READ_COMMITTED, &[])
                .await?;
            self.in_snapshot = false;
        }
        Ok(())
    }

    async fn snapshot_chunk(
        &mut self,
        table: &CaptureTable,
        after: Option<&[Value]>,
        limit: u32,
    ) -> Result<Vec<Vec<Value>>, CdcError> {
        let ct = &table.change_table;
        let name = format!("snapshot of {}.{}", ct.schema, ct.table);
        let sql = st::snapshot_chunk(
            &ct.schema,
            &ct.table,
            &table.column_names(),
            &table.key_names(),
            after.is_some(),
        );
        let top = limit.min(i32::MAX as u32) as i32;
        let mut owned: Vec<Box<dyn ToSql>> = vec![Box::new(top)];
        for v in after.unwrap_or(&[]) {
            owned.push(key_param(v).map_err(|m| self.answer(&name, m))?);
        }
        let params: Vec<&dyn ToSql> = owned.iter().map(|b| b.as_ref()).collect();
        let rows = self.rows(&name, &sql, &params).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut values = Vec::with_capacity(table.columns.len());
            for (col, data) in table.columns.iter().zip(row.into_iter()) {
                values.push(
                    value_of(data, col.ty)
                        .map_err(|e| self.answer(&name, format!("column {}: {e}", col.name)))?,
                );
            }
            out.push(values);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings_parse_and_refuse_passwords() {
        let c = parse_connection(
            "server=tcp:db.example,1444;database=MYCOMPANY;user=cdc;encrypt=false",
        )
        .unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.encrypt),
            ("db.example", 1444, Encrypt::No)
        );
        assert_eq!(c.user.as_deref(), Some("cdc"));
        assert_eq!(
            parse_connection("server=h;encrypt=strict").unwrap().encrypt,
            Encrypt::Strict
        );
        assert!(parse_connection("server=h;password=x")
            .unwrap_err()
            .contains("LAKEFOLD_SQLSERVER_PASSWORD"));
        assert!(parse_connection("database=x").is_err());
    }
}
