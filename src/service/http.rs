//! The HTTP endpoints (hyper, HTTP/1.1, GET only).

use super::status::board;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::PrometheusHandle;
use std::convert::Infallible;
use std::time::Duration;
use tokio::net::TcpListener;

pub(super) async fn serve(listener: TcpListener, handle: PrometheusHandle, alive_within: Duration) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "metrics endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let response = respond(&req, &handle, alive_within);
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond(
    req: &Request<Incoming>,
    handle: &PrometheusHandle,
    alive_within: Duration,
) -> Response<Full<Bytes>> {
    if req.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
    }
    match req.uri().path() {
        "/metrics" => {
            crate::metrics::update_process_gauges();
            let mut r = text(StatusCode::OK, handle.render());
            set_type(&mut r, "text/plain; version=0.0.4; charset=utf-8");
            r
        }
        "/healthz" if board().healthy(alive_within) => text(StatusCode::OK, "ok\n".into()),
        "/healthz" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the run loop has not turned for {alive_within:?}\n"),
        ),
        "/readyz" if board().ready() => text(StatusCode::OK, "ready\n".into()),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n".into()),
        "/status" => {
            let body = serde_json::to_string_pretty(&board().to_json()).unwrap_or_default();
            let mut r = text(StatusCode::OK, body);
            set_type(&mut r, "application/json");
            r
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: /metrics, /healthz, /readyz, /status\n".into(),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    set_type(&mut r, "text/plain; charset=utf-8");
    r
}

fn set_type(r: &mut Response<Full<Bytes>>, value: &'static str) {
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(value),
    );
}
