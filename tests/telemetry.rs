//! OpenTelemetry: one trace from `createBot` through dispatch and the
//! worker's session to the results' persistence. The control plane runs in
//! this process with the OTLP exporter the binary uses; the worker is the
//! `attache edge-worker` binary with `--otlp-endpoint` and `--log-format
//! json`. Both export to a receiver here that decodes OTLP/HTTP protobuf as
//! a collector does; the trace context crosses to the worker only inside
//! the Assign message, and the worker's JSON logs carry the trace id.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use prost::Message;
use serde_json::Value;
use support::*;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// One exported span, as the receiver decoded it.
#[derive(Debug, Clone)]
struct Got {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    attributes: HashMap<String, String>,
}

type Spans = Arc<Mutex<Vec<Got>>>;

/// An OTLP/HTTP receiver on 127.0.0.1: every span posted to `/v1/traces`.
async fn receiver() -> (String, Spans) {
    let spans: Spans = Arc::default();
    let kept = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: Bytes| {
            let kept = kept.clone();
            async move {
                let req = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                let mut kept = kept.lock().unwrap();
                for rs in req.resource_spans {
                    let service = rs
                        .resource
                        .iter()
                        .flat_map(|r| &r.attributes)
                        .find(|a| a.key == "service.name")
                        .and_then(|a| a.value.as_ref()?.value.clone())
                        .map(|v| match v {
                            AnyValue::StringValue(s) => s,
                            other => format!("{other:?}"),
                        })
                        .unwrap_or_default();
                    for s in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
                        let attributes = s
                            .attributes
                            .iter()
                            .filter_map(|a| {
                                let v = match a.value.as_ref()?.value.as_ref()? {
                                    AnyValue::StringValue(s) => s.clone(),
                                    AnyValue::IntValue(i) => i.to_string(),
                                    AnyValue::BoolValue(b) => b.to_string(),
                                    other => format!("{other:?}"),
                                };
                                Some((a.key.clone(), v))
                            })
                            .collect();
                        kept.push(Got {
                            service: service.clone(),
                            name: s.name,
                            trace_id: hex::encode(&s.trace_id),
                            span_id: hex::encode(&s.span_id),
                            parent: hex::encode(&s.parent_span_id),
                            attributes,
                        });
                    }
                }
                // An empty ExportTraceServiceResponse.
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, spans)
}

/// The control plane's exporter, as `attache control-plane --otlp-endpoint`
/// sets it up.
fn control_plane_traces(endpoint: &str) -> SdkTracerProvider {
    let exporter = SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("{endpoint}/v1/traces"))
        .build()
        .unwrap();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name("attache-control-plane")
                .build(),
        )
        .build();
    tracing_subscriber::registry()
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("attache"))
                .with_filter(EnvFilter::new("warn,attache_control_plane=info")),
        )
        .init();
    provider
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_runs_from_create_bot_through_the_worker_to_persistence() {
    let (endpoint, spans) = receiver().await;
    let provider = control_plane_traces(&endpoint);
    let cluster = Cluster::start().await;
    let dir = temp_dir("traced-worker");
    let mut worker = cluster
        .spawn_worker_process_with(
            dir.clone(),
            1,
            &["--otlp-endpoint", &endpoint, "--log-format", "json"],
        )
        .await;
    let api = cluster.tenant("acme").await;

    let meeting = "traced";
    let id = api
        .create_bot(
            &cluster.meeting(meeting, "admission=open&script=demo"),
            "Scribe",
        )
        .await;
    api.wait_status(&id, "IN_CALL", Duration::from_secs(40))
        .await;
    cluster.host(meeting, "end", None).await;
    api.wait_status(&id, "ENDED", Duration::from_secs(30)).await;
    // SIGTERM: the worker drains and exports what it still holds.
    assert!(
        worker.terminate(Duration::from_secs(30)).is_some(),
        "the worker exits on SIGTERM"
    );
    let flushed = tokio::task::spawn_blocking(move || {
        let r = provider.force_flush();
        (provider, r)
    })
    .await
    .unwrap();
    flushed.1.expect("the control plane's spans are exported");

    let start = Instant::now();
    let bot_spans = loop {
        let got = spans.lock().unwrap().clone();
        let of_bot: Vec<Got> = got
            .into_iter()
            .filter(|s| s.attributes.get("bot_id") == Some(&id))
            .collect();
        let has = |name: &str| of_bot.iter().any(|s| s.name == name);
        if has("assign") && has("bot") && has("persist results") {
            break of_bot;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "spans of the bot: {of_bot:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let all = spans.lock().unwrap().clone();

    // The request that created the bot is the trace's root.
    let assign = bot_spans.iter().find(|s| s.name == "assign").unwrap();
    let root = all
        .iter()
        .find(|s| s.span_id == assign.parent)
        .unwrap_or_else(|| panic!("the assign span's parent was exported: {assign:?}"));
    assert_eq!(root.name, "graphql");
    assert_eq!(root.parent, "", "createBot's request starts the trace");
    assert_eq!(root.service, "attache-control-plane");
    let trace = &root.trace_id;
    assert_eq!(&assign.trace_id, trace);

    // The worker's session continues it, from the Assign.
    let session = bot_spans.iter().find(|s| s.name == "bot").unwrap();
    assert_eq!(session.service, "attache-edge-worker");
    assert_eq!(&session.trace_id, trace);
    assert_eq!(session.parent, assign.span_id, "child of the dispatch");

    // And the results' persistence on the control plane joins it: the
    // stream's first write and every status the worker reported.
    let persisted: Vec<&Got> = bot_spans
        .iter()
        .filter(|s| s.name == "persist results")
        .collect();
    assert!(persisted.len() >= 3, "{persisted:#?}");
    for p in &persisted {
        assert_eq!(&p.trace_id, trace, "{p:?}");
        assert_eq!(p.service, "attache-control-plane");
    }
    assert!(
        persisted
            .iter()
            .any(|p| p.attributes.get("status").map(String::as_str) == Some("true")),
        "{persisted:#?}"
    );

    // The worker's JSON logs of the session carry the trace id.
    let log = std::fs::read_to_string(dir.join("worker.log")).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(!lines.is_empty(), "JSON logs: {log}");
    let traced = lines
        .iter()
        .filter(|l| {
            l["spans"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["trace_id"] == trace.as_str()))
        })
        .count();
    assert!(traced > 0, "no log line names trace {trace}: {log}");
    for l in &lines {
        assert!(l["timestamp"].is_string() && l["level"].is_string(), "{l}");
    }
}
