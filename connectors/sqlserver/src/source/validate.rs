//! The checks `lakefold validate` runs against a SQL Server source.

use super::{CdcOptions, SqlServerSource};
use crate::cdc::{CdcDatabase, INVALID_RANGE_ERROR};
use lakefold_api::SourceError;

impl SqlServerSource {
    /// What `validate` checks: the server answers, CDC is enabled for every route table, the configured
    /// capture instances exist, and the user may call the CDC functions for each. Every problem is listed.
    pub async fn check(db: Box<dyn CdcDatabase>, options: CdcOptions) -> Vec<String> {
        let mut src = SqlServerSource::unopened(db, options);
        if let Err(e) = src.call(|db| Box::pin(db.database_name())).await {
            return vec![e.to_string()];
        }
        let captures = match src.resolve_captures().await {
            Ok(c) => c,
            Err(e) => return vec![e.to_string()],
        };
        let mut problems = Vec::new();
        if let Err(e) = src.call(|db| Box::pin(db.max_lsn())).await {
            problems.push(format!("cannot call sys.fn_cdc_get_max_lsn(): {e}"));
        }
        for c in &captures {
            let name = c.instance().to_string();
            let min = src
                .call(|db| {
                    let n = name.clone();
                    Box::pin(async move { db.min_lsn(&n).await })
                })
                .await;
            match min {
                Err(e) => {
                    problems.push(format!("cannot call sys.fn_cdc_get_min_lsn('{name}'): {e}"))
                }
                Ok(min) => {
                    let table = c.table.clone();
                    let read = src
                        .call(|db| {
                            let t = table.clone();
                            Box::pin(async move { db.changes(&t, min, min).await })
                        })
                        .await;
                    if let Err(e) = read {
                        if !matches!(&e, SourceError::Cdc { message, .. } if message.contains(&format!("error {INVALID_RANGE_ERROR} ")))
                        {
                            problems.push(format!(
                                "cannot read cdc.fn_cdc_get_all_changes_{name}: {e}"
                            ));
                        }
                    }
                }
            }
        }
        problems
    }
}
