//! `lakefold-mssql-fixture --listen 127.0.0.1:PORT --data FILE [--password P]`: a TDS server answering
//! the SQL Server source's CDC statements from a history file (tests; see connectors/sqlserver).

fn main() -> std::process::ExitCode {
    let options = match lakefold_sqlserver::fixture::parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("lakefold-mssql-fixture: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("lakefold-mssql-fixture: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    match runtime.block_on(lakefold_sqlserver::fixture::serve(options)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lakefold-mssql-fixture: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
