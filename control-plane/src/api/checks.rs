//! What the executor checks before any resolver runs, with codes a client
//! can act on, as common GraphQL servers give them:
//!
//! - a document that does not parse: `GRAPHQL_PARSE_FAILED`;
//! - one that breaks the schema's rules, or the depth and complexity
//!   bounds: `GRAPHQL_VALIDATION_FAILED`;
//! - a value that does not fit its type (an Int out of range, a bad enum
//!   literal): `BAD_USER_INPUT`.
//!
//! It also bounds introspection apart from data: a document that selects
//! only `__schema`, `__type` and `__typename` (what GraphiQL's explorer and
//! code generators send) may nest to [`INTROSPECTION_DEPTH`]; everything
//! else to [`DATA_DEPTH`]. Introspection being off (`--production`) is the
//! schema's own switch and is not relaxed here.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextValidation,
};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ServerError, ServerResult, ValidationResult, Variables};

/// Deepest selection a data query may nest.
pub(crate) const DATA_DEPTH: usize = 12;
/// Deepest an introspection-only document may nest: graphql-core's and
/// GraphiQL's standard query reaches about 15 through its `ofType` chain.
pub(crate) const INTROSPECTION_DEPTH: usize = 32;

pub(crate) const PARSE_FAILED: &str = "GRAPHQL_PARSE_FAILED";
pub(crate) const VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";
pub(crate) const BAD_USER_INPUT: &str = "BAD_USER_INPUT";

pub(crate) struct Checks;

impl ExtensionFactory for Checks {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(RequestChecks::default())
    }
}

/// One request's checks.
#[derive(Default)]
struct RequestChecks {
    introspection_only: AtomicBool,
}

fn with_code(mut e: ServerError, code: &str) -> ServerError {
    let ext = e.extensions.get_or_insert_with(Default::default);
    if ext.get("code").is_none() {
        ext.set("code", code);
    }
    e
}

/// The code of an error the validation step raised.
pub(crate) fn validation_code(message: &str) -> &'static str {
    // async-graphql's wording for a literal that does not fit its type.
    if message.starts_with("Invalid value for argument") || message.starts_with("Failed to parse") {
        BAD_USER_INPUT
    } else {
        VALIDATION_FAILED
    }
}

/// The error's code, given one first if it has none: an argument that did
/// not coerce at execution is the caller's input, anything else ours.
pub(crate) fn code_of(e: &mut ServerError) -> String {
    let given = e
        .extensions
        .as_ref()
        .and_then(|x| x.get("code"))
        .and_then(|v| match v {
            async_graphql::Value::String(s) => Some(s.clone()),
            _ => None,
        });
    if let Some(code) = given {
        return code;
    }
    let code = match validation_code(&e.message) {
        BAD_USER_INPUT => BAD_USER_INPUT,
        _ => "INTERNAL",
    };
    e.extensions
        .get_or_insert_with(Default::default)
        .set("code", code);
    code.to_string()
}

/// Whether every operation of the document selects only meta fields.
pub(crate) fn introspection_only(doc: &ExecutableDocument) -> bool {
    fn only_meta(doc: &ExecutableDocument, set: &SelectionSet, seen: &mut HashSet<String>) -> bool {
        set.items.iter().all(|s| match &s.node {
            Selection::Field(f) => f.node.name.node.starts_with("__"),
            Selection::InlineFragment(i) => only_meta(doc, &i.node.selection_set.node, seen),
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.to_string();
                if !seen.insert(name.clone()) {
                    return true;
                }
                doc.fragments
                    .get(&spread.node.fragment_name.node)
                    .is_some_and(|f| only_meta(doc, &f.node.selection_set.node, seen))
            }
        })
    }
    let mut any = false;
    let all = doc.operations.iter().all(|(_, op)| {
        any = true;
        only_meta(doc, &op.node.selection_set.node, &mut HashSet::new())
    });
    any && all
}

#[async_graphql::async_trait::async_trait]
impl Extension for RequestChecks {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next
            .run(ctx, query, variables)
            .await
            .map_err(|e| with_code(e, PARSE_FAILED))?;
        self.introspection_only
            .store(introspection_only(&doc), Ordering::Relaxed);
        Ok(doc)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await.map_err(|errors| {
            errors
                .into_iter()
                .map(|e| {
                    let code = validation_code(&e.message);
                    with_code(e, code)
                })
                .collect::<Vec<_>>()
        })?;
        let limit = if self.introspection_only.load(Ordering::Relaxed) {
            INTROSPECTION_DEPTH
        } else {
            DATA_DEPTH
        };
        if result.depth > limit {
            return Err(vec![with_code(
                ServerError::new("Query is nested too deep.", None),
                VALIDATION_FAILED,
            )]);
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;

    #[test]
    fn introspection_documents_are_told_apart() {
        let table = [
            ("{ __schema { types { name } } }", true),
            (
                "query Q { __type(name: \"Bot\") { name } __typename }",
                true,
            ),
            (
                "query { ...F } fragment F on QueryRoot { __schema { queryType { name } } }",
                true,
            ),
            ("{ __schema { types { name } } viewer { role } }", false),
            ("{ viewer { role } }", false),
            (
                "query { ...F } fragment F on QueryRoot { viewer { role } }",
                false,
            ),
            (
                "query A { __typename } query B { bots { totalCount } }",
                false,
            ),
        ];
        for (q, want) in table {
            let doc = parse_query(q).unwrap();
            assert_eq!(introspection_only(&doc), want, "{q}");
        }
    }

    #[test]
    fn validation_codes() {
        assert_eq!(
            validation_code("Invalid value for argument \"first\", expected type \"Int\""),
            BAD_USER_INPUT
        );
        assert_eq!(
            validation_code("Unknown argument \"nope\" on field \"bots\""),
            VALIDATION_FAILED
        );
        assert_eq!(
            validation_code("Query is nested too deep."),
            VALIDATION_FAILED
        );
    }
}
