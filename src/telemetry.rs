//! Logs and traces. Logs go to standard error, filtered by `RUST_LOG`:
//! human-readable (colours only on a terminal) or one JSON object per line
//! with every enclosing span's fields, `trace_id` among them. With an OTLP
//! endpoint, the services' spans are exported too, over OTLP/HTTP in
//! batches, whatever `RUST_LOG` says of the logs.

use std::io::IsTerminal;

use anyhow::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::cli::LogFormat;

/// The spans exported: the services' own, at info and above.
const TRACED: &str = "warn,attache=info,attache_control_plane=info,attache_edge_worker=info";

/// Installs the subscriber; the provider to shut down at exit when traces
/// are exported.
pub(crate) fn init(
    format: LogFormat,
    otlp_endpoint: Option<&str>,
    service: &'static str,
) -> anyhow::Result<Option<SdkTracerProvider>> {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,chromiumoxide=off,sqlx=warn,quinn=warn".into());
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = match format {
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_filter(filter)
            .boxed(),
        // Colour codes only where a person reads them, not in files or pipes.
        LogFormat::Human => logs
            .with_ansi(std::io::stderr().is_terminal())
            .with_filter(filter)
            .boxed(),
    };
    let provider = otlp_endpoint.map(|e| provider(e, service)).transpose()?;
    let traces = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("attache"))
            .with_filter(EnvFilter::new(TRACED))
    });
    tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .init();
    Ok(provider)
}

fn provider(endpoint: &str, service: &'static str) -> anyhow::Result<SdkTracerProvider> {
    let url = traces_url(endpoint)?;
    let exporter = SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url)
        .build()
        .context("the OTLP exporter")?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(service).build())
        .build())
}

/// The collector's traces URL: as given, or with `/v1/traces` when the
/// endpoint names no path.
fn traces_url(endpoint: &str) -> anyhow::Result<String> {
    let mut url = url::Url::parse(endpoint)
        .with_context(|| format!("--otlp-endpoint {endpoint:?} is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        anyhow::bail!("--otlp-endpoint {endpoint:?}: only http and https are spoken");
    }
    if url.path() == "/" || url.path().is_empty() {
        url.set_path("/v1/traces");
    }
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::traces_url;

    #[test]
    fn the_traces_path_is_added_only_when_none_is_given() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318").unwrap(),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("https://otel.example.com/custom/traces").unwrap(),
            "https://otel.example.com/custom/traces"
        );
        assert!(traces_url("127.0.0.1:4318").is_err());
        assert!(traces_url("grpc://127.0.0.1:4317").is_err());
    }
}
