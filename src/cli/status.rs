//! `lakefold status` and `lakefold top`: per table the last commit, checkpoint, lag, freshness and dead
//! letters, from the running daemon's `/status` when one answers on `[metrics] listen`, else from the
//! tables' timelines (a stopped lake).

use super::output;
use crate::config::Config;
use crate::pipeline::{Lake, PipelineError, DEAD_LETTER_TABLE};
use crate::sink::delta::DeltaSinkTable;
use crate::sink::hudi::HudiTable;
use crate::sink::SinkError;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use serde_json::Value as Json;
use std::io::Write;
use std::time::Duration;

/// Prints the status once.
pub async fn status(config: &Config) -> Result<(), PipelineError> {
    println!("{}", render(config).await?);
    Ok(())
}

/// Prints the status every `interval`, `count` times (or until interrupted).
pub async fn top(
    config: &Config,
    interval: Duration,
    count: Option<u64>,
) -> Result<(), PipelineError> {
    let mut shown = 0u64;
    loop {
        let text = render(config).await?;
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "\x1b[2J\x1b[H{text}\n");
        let _ = out.flush();
        shown += 1;
        if count.is_some_and(|c| shown >= c) {
            return Ok(());
        }
        tokio::time::sleep(interval).await;
    }
}

async fn render(config: &Config) -> Result<String, PipelineError> {
    if let Some(doc) = daemon_status(config).await {
        return Ok(from_daemon(&doc));
    }
    let mut text = from_timelines(config).await?;
    match &config.metrics {
        Some(m) => text.push_str(&format!(
            "\n(no daemon answers on {}: read from the tables' timelines)",
            m.listen
        )),
        None => text.push_str("\n(read from the tables' timelines; set [metrics] listen for a running daemon's lag and freshness)"),
    }
    Ok(text)
}

/// The running daemon's `/status`, if one answers within 2 s.
async fn daemon_status(config: &Config) -> Option<Json> {
    let listen = config
        .metrics
        .as_ref()?
        .listen
        .replace("0.0.0.0", "127.0.0.1");
    tokio::time::timeout(Duration::from_secs(2), get_json(&listen, "/status"))
        .await
        .ok()?
        .ok()
}

/// `lakefold health`: the daemon's `/healthz` (exit 0 on 200, 1 otherwise, with the reason).
pub async fn health(config: &Config) -> u8 {
    let Some(m) = &config.metrics else {
        eprintln!("lakefold health: set [metrics] listen (the daemon serves /healthz there)");
        return super::EXIT_FAILURE;
    };
    let addr = m.listen.replace("0.0.0.0", "127.0.0.1");
    match tokio::time::timeout(Duration::from_secs(5), get(&addr, "/healthz")).await {
        Ok(Ok((200, _))) => super::EXIT_OK,
        Ok(Ok((code, body))) => {
            eprintln!(
                "lakefold health: /healthz answered {code}: {}",
                String::from_utf8_lossy(&body).trim()
            );
            super::EXIT_FAILURE
        }
        Ok(Err(e)) => {
            eprintln!("lakefold health: {addr}: {e}");
            super::EXIT_FAILURE
        }
        Err(_) => {
            eprintln!("lakefold health: {addr}: no answer within 5 s");
            super::EXIT_FAILURE
        }
    }
}

async fn get_json(addr: &str, path: &str) -> Result<Json, String> {
    let (_, body) = get(addr, path).await?;
    serde_json::from_slice(&body).map_err(|e| e.to_string())
}

/// GET `path` from `addr`: the status code and the body.
async fn get(addr: &str, path: &str) -> Result<(u16, Bytes), String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, addr)
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let code = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((code, body))
}

const HEADER: [&str; 8] = [
    "table",
    "last commit",
    "committed at",
    "checkpoint",
    "lag",
    "freshness",
    "rows i/u/d",
    "dead letters",
];

fn from_daemon(doc: &Json) -> String {
    let text = |v: &Json| match v {
        Json::Null => "-".to_string(),
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut rows = vec![HEADER.map(String::from).to_vec()];
    for r in doc["routes"].as_array().into_iter().flatten() {
        let lag = r["lag"]
            .as_object()
            .filter(|m| !m.is_empty())
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{} {k}", text(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_else(|| "-".into());
        let freshness = r["freshness_seconds"]
            .as_f64()
            .map(|f| format!("{f:.1} s"))
            .unwrap_or_else(|| "-".into());
        rows.push(vec![
            text(&r["table"]),
            text(&r["last_instant"]),
            text(&r["last_commit_time"]),
            text(&r["checkpoint"]),
            lag,
            freshness,
            format!(
                "{}/{}/{}",
                text(&r["rows_inserted"]),
                text(&r["rows_updated"]),
                text(&r["rows_deleted"])
            ),
            text(&r["dead_letters"]),
        ]);
    }
    let state = if doc["ready"].as_bool() == Some(true) {
        "ready".to_string()
    } else {
        format!("not ready {}", text(&doc["degraded"]))
    };
    format!(
        "{}\n(daemon {state}, up {:.0} s)",
        output::table(&rows).trim_end(),
        doc["uptime_seconds"].as_f64().unwrap_or(0.0)
    )
}

async fn from_timelines(config: &Config) -> Result<String, PipelineError> {
    let lake = Lake::open(config).await?;
    let mut rows = vec![HEADER.map(String::from).to_vec()];
    let tables = config
        .routes
        .iter()
        .map(|r| r.table.as_str())
        .chain([DEAD_LETTER_TABLE]);
    for name in tables {
        if let Some(row) = delta_row(config, &lake, name).await? {
            rows.push(row);
            continue;
        }
        let table = HudiTable::open(lake.store.clone(), lake.table_path(name), name).await?;
        let last = match &table {
            Some(t) => t.last_commit().await?,
            None => None,
        };
        let (instant, at, checkpoint) = match (&table, last) {
            (None, _) => ("(not created)".into(), "-".into(), "-".into()),
            (Some(_), None) => ("(no commit)".into(), "-".into(), "-".into()),
            (Some(_), Some((instant, meta))) => (
                instant.to_string(),
                instant_time(&instant.to_string()),
                output::checkpoints(&meta),
            ),
        };
        rows.push(timeline_row(name, instant, at, checkpoint));
    }
    Ok(output::table(&rows).trim_end().to_string())
}

/// The status row of a Delta route's table (`None` for Hudi tables): its version, commit time and the
/// checkpoints it stores.
async fn delta_row(
    config: &Config,
    lake: &Lake,
    name: &str,
) -> Result<Option<Vec<String>>, PipelineError> {
    let Some(route) = config.route(name) else {
        return Ok(None);
    };
    if route.table_format(&config.lake) != crate::config::LakeFormat::Delta {
        return Ok(None);
    }
    let spec = crate::fold::RouteSpec::new(route, None);
    let t = DeltaSinkTable::open(lake, name, &spec.key_names(), &spec.partition_names())
        .await
        .map_err(SinkError::from)?;
    let newest = t
        .history()
        .await
        .map_err(SinkError::from)?
        .into_iter()
        .next();
    let (version, at) = match &newest {
        None => ("(not created)".to_string(), "-".to_string()),
        Some(c) => (
            format!("v{}", c.version),
            output::epoch_ms_text(c.timestamp),
        ),
    };
    let checkpoints = t.stored_checkpoints().map_err(SinkError::from)?;
    let checkpoint = match checkpoints.is_empty() {
        true => "-".to_string(),
        false => output::describe(&checkpoints),
    };
    Ok(Some(timeline_row(name, version, at, checkpoint)))
}

/// A status row read from a table (no daemon: lag, freshness, rows and dead letters unknown).
fn timeline_row(name: &str, commit: String, at: String, checkpoint: String) -> Vec<String> {
    let dash = || "-".to_string();
    vec![
        name.to_string(),
        commit,
        at,
        checkpoint,
        dash(),
        dash(),
        dash(),
        dash(),
    ]
}

/// `20261203121501234` → `2026-12-03T12:15:01.234Z` (Hudi instants are UTC here).
fn instant_time(instant: &str) -> String {
    let d = instant.as_bytes();
    if d.len() < 14 || !d.iter().all(u8::is_ascii_digit) {
        return "-".into();
    }
    let ms = instant.get(14..17).unwrap_or("000");
    format!(
        "{}-{}-{}T{}:{}:{}.{ms}Z",
        &instant[0..4],
        &instant[4..6],
        &instant[6..8],
        &instant[8..10],
        &instant[10..12],
        &instant[12..14]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_read_as_utc_times() {
        assert_eq!(
            instant_time("20261203121501234"),
            "2026-12-03T12:15:01.234Z"
        );
        assert_eq!(instant_time("20261203121501"), "2026-12-03T12:15:01.000Z");
        assert_eq!(instant_time("x"), "-");
    }
}
