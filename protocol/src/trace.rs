//! W3C trace context across the fleet protocol: the control plane puts the
//! `traceparent` of the span it dispatches in into `Assign`, and the worker
//! makes it the parent of the bot's session, so one trace runs from
//! `createBot` to the worker and back to the results' persistence.
//!
//! Spans become OpenTelemetry spans through `tracing-opentelemetry`'s layer;
//! without that layer (no `--otlp-endpoint`) nothing is carried.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The `traceparent` of `span`, if it belongs to a trace.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove("traceparent")
}

/// Makes `traceparent` (if any, and well-formed) the parent of `span`,
/// which must not have been entered yet, and records its trace id in the
/// span's `trace_id` field, for the logs.
pub fn follow(span: &tracing::Span, traceparent: Option<&str>) {
    if let Some(tp) = traceparent {
        let carrier = HashMap::from([("traceparent".to_string(), tp.to_string())]);
        let parent = TraceContextPropagator::new().extract(&carrier);
        if parent.span().span_context().is_valid() {
            let _ = span.set_parent(parent);
        }
    }
    record_trace_id(span);
}

/// Records `span`'s trace id in its `trace_id` field (declared empty by
/// the span), so JSON logs within it carry it.
pub fn record_trace_id(span: &tracing::Span) {
    let id = span.context().span().span_context().trace_id();
    if id != opentelemetry::trace::TraceId::INVALID {
        span.record("trace_id", tracing::field::display(format!("{id:032x}")));
    }
}
