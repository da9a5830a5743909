//! The T-SQL the source sends, built in one place. Identifiers come from `cdc.change_tables` and
//! `cdc.captured_columns` (never from config text) and are bracket-quoted; values are parameters. The
//! fixture server recognises statements by rebuilding them with these same functions, so it answers
//! exactly what the source sends and refuses anything else.

/// `cdc.change_tables`: capture instance, source schema and table, start LSN.
pub const CHANGE_TABLES: &str = "SELECT ct.capture_instance, OBJECT_SCHEMA_NAME(ct.source_object_id) AS source_schema, OBJECT_NAME(ct.source_object_id) AS source_table, ct.start_lsn FROM cdc.change_tables AS ct ORDER BY ct.capture_instance";

/// Captured columns of instance `@P1`, in ordinal order, with precision, scale and nullability.
pub const CAPTURED_COLUMNS: &str = "SELECT cc.column_name, cc.column_type, COLUMNPROPERTY(ct.source_object_id, cc.column_name, 'Precision') AS column_precision, COLUMNPROPERTY(ct.source_object_id, cc.column_name, 'Scale') AS column_scale, COLUMNPROPERTY(ct.source_object_id, cc.column_name, 'AllowsNull') AS allows_null FROM cdc.captured_columns AS cc JOIN cdc.change_tables AS ct ON cc.object_id = ct.object_id WHERE ct.capture_instance = @P1 ORDER BY cc.column_ordinal";

/// The key columns (`cdc.index_columns`) of instance `@P1`.
pub const INDEX_COLUMNS: &str = "SELECT ic.column_name FROM cdc.index_columns AS ic JOIN cdc.change_tables AS ct ON ic.object_id = ct.object_id WHERE ct.capture_instance = @P1 ORDER BY ic.index_ordinal";

/// `sys.fn_cdc_get_min_lsn(@P1)`.
pub const MIN_LSN: &str = "SELECT sys.fn_cdc_get_min_lsn(@P1) AS min_lsn";

/// `sys.fn_cdc_get_max_lsn()`.
pub const MAX_LSN: &str = "SELECT sys.fn_cdc_get_max_lsn() AS max_lsn";

/// `sys.fn_cdc_increment_lsn(@P1)`.
pub const INCREMENT_LSN: &str = "SELECT sys.fn_cdc_increment_lsn(@P1) AS next_lsn";

/// The end of a window: the LSN of the `@P1`-th transaction at or after `@P2` (Debezium's
/// `max.iteration.transactions`), NULL when there is none.
pub const WINDOW_END: &str = "SELECT MAX(w.start_lsn) AS window_end FROM (SELECT TOP (@P1) m.start_lsn FROM cdc.lsn_time_mapping AS m WHERE m.start_lsn >= @P2 AND m.tran_id <> 0x00 ORDER BY m.start_lsn) AS w";

/// The rows of table `@P1` (`[schema].[table]`) as the catalog counts them (heap or clustered index): the
/// snapshot's progress total. An estimate; NULL when the table is not visible.
pub const ROW_COUNT: &str = "SELECT SUM(p.rows) AS row_count FROM sys.partitions AS p WHERE p.object_id = OBJECT_ID(@P1) AND p.index_id IN (0, 1)";

/// `[schema].[table]`, as `OBJECT_ID` takes it.
pub fn table_name(schema: &str, table: &str) -> String {
    format!("{}.{}", quote(schema), quote(table))
}

/// The commit times (`tran_end_time`) of the transactions with start LSNs in `[@P1, @P2]`: Debezium's
/// `source.ts_ms`, what freshness and lag are measured from.
pub const TRANSACTION_TIMES: &str = "SELECT m.start_lsn, m.tran_end_time FROM cdc.lsn_time_mapping AS m WHERE m.start_lsn >= @P1 AND m.start_lsn <= @P2 AND m.tran_id <> 0x00 ORDER BY m.start_lsn";

/// Whether snapshot isolation is allowed in the current database (1 = ON).
pub const SNAPSHOT_ISOLATION_STATE: &str =
    "SELECT snapshot_isolation_state FROM sys.databases WHERE name = DB_NAME()";

/// The current database.
pub const DATABASE_NAME: &str = "SELECT DB_NAME() AS database_name";

pub const SET_SNAPSHOT_ISOLATION: &str = "SET TRANSACTION ISOLATION LEVEL SNAPSHOT";
pub const SET_REPEATABLE_READ: &str = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ";
pub const SET_READ_COMMITTED: &str = "SET TRANSACTION ISOLATION LEVEL READ COMMITTED";
pub const BEGIN_TRANSACTION: &str = "BEGIN TRANSACTION";
pub const COMMIT_TRANSACTION: &str = "COMMIT TRANSACTION";

/// The columns every change row starts with.
pub const META_COLUMNS: [&str; 3] = ["__$start_lsn", "__$seqval", "__$operation"];

/// `[name]`, with `]` doubled.
pub fn quote(identifier: &str) -> String {
    format!("[{}]", identifier.replace(']', "]]"))
}

fn column_list(columns: &[&str]) -> String {
    columns
        .iter()
        .map(|c| quote(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The changes of `instance` with LSNs in `[@P1, @P2]`, updates as before/after pairs, in log order.
pub fn changes(instance: &str, columns: &[&str]) -> String {
    let meta = column_list(&META_COLUMNS);
    let cols = column_list(columns);
    let function = quote(&format!("fn_cdc_get_all_changes_{instance}"));
    format!(
        "SELECT {meta}, {cols} FROM cdc.{function}(@P1, @P2, N'all update old') ORDER BY [__$start_lsn], [__$seqval], [__$operation]"
    )
}

/// Up to `@P1` rows of `schema.table` in key order; with `after`, only rows whose key is greater than the
/// key given as `@P2…` (row-value comparison written out, so any index on the key can seek).
pub fn snapshot_chunk(
    schema: &str,
    table: &str,
    columns: &[&str],
    keys: &[&str],
    after: bool,
) -> String {
    let cols = column_list(columns);
    let order = column_list(keys);
    let from = format!("{}.{}", quote(schema), quote(table));
    if !after {
        return format!("SELECT TOP (@P1) {cols} FROM {from} ORDER BY {order}");
    }
    let mut alternatives = Vec::with_capacity(keys.len());
    for i in 0..keys.len() {
        let mut terms: Vec<String> = (0..i)
            .map(|j| format!("{} = @P{}", quote(keys[j]), j + 2))
            .collect();
        terms.push(format!("{} > @P{}", quote(keys[i]), i + 2));
        alternatives.push(format!("({})", terms.join(" AND ")));
    }
    format!(
        "SELECT TOP (@P1) {cols} FROM {from} WHERE {} ORDER BY {order}",
        alternatives.join(" OR ")
    )
}

/// Text compared the way the fixture compares statements: whitespace runs collapsed, outer blanks and a
/// final `;` dropped, keywords and identifiers case-insensitive.
pub fn normalise(sql: &str) -> String {
    let collapsed = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed.trim_end_matches(';').trim().to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_bracket_quoted_and_brackets_doubled() {
        assert_eq!(quote("a]b"), "[a]]b]");
        let sql = changes("dbo_SALES", &["SaleId", "Name"]);
        assert!(sql.contains("cdc.[fn_cdc_get_all_changes_dbo_SALES](@P1, @P2, N'all update old')"));
        assert!(
            sql.starts_with("SELECT [__$start_lsn], [__$seqval], [__$operation], [SaleId], [Name]")
        );
    }

    #[test]
    fn a_composite_key_chunk_seeks_past_the_last_key() {
        let sql = snapshot_chunk("dbo", "T", &["A", "B", "C"], &["A", "B"], true);
        assert!(
            sql.ends_with("WHERE ([A] > @P2) OR ([A] = @P2 AND [B] > @P3) ORDER BY [A], [B]"),
            "{sql}"
        );
        assert_eq!(normalise("  SELECT  1 ;\n"), "select 1");
    }
}
