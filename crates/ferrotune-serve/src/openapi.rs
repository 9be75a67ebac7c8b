//! The OpenAPI 3 document of the server's routes (`GET /openapi.json`).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::error::ErrorKind;

/// What `/v1/ner` and `/v1/classify` can answer besides 200.
const PREDICT_ERRORS: &[ErrorKind] = &[
    ErrorKind::Unauthorized,
    ErrorKind::MethodNotAllowed,
    ErrorKind::BodyTooLarge,
    ErrorKind::BadBody,
    ErrorKind::UnsupportedMediaType,
    ErrorKind::MalformedJson,
    ErrorKind::InvalidRequest,
    ErrorKind::NoInputs,
    ErrorKind::TooManyTexts,
    ErrorKind::TextTooLong,
    ErrorKind::TooManyTokens,
    ErrorKind::RequestTimeout,
    ErrorKind::UnknownModel,
    ErrorKind::WrongTask,
    ErrorKind::Overloaded,
    ErrorKind::Unavailable,
    ErrorKind::Timeout,
    ErrorKind::InferenceFailed,
];

/// What `/v1/answer` can answer besides 200.
const ANSWER_ERRORS: &[ErrorKind] = &[
    ErrorKind::Unauthorized,
    ErrorKind::MethodNotAllowed,
    ErrorKind::BodyTooLarge,
    ErrorKind::BadBody,
    ErrorKind::UnsupportedMediaType,
    ErrorKind::MalformedJson,
    ErrorKind::InvalidRequest,
    ErrorKind::NoInputs,
    ErrorKind::EmptyText,
    ErrorKind::TooManyTexts,
    ErrorKind::TextTooLong,
    ErrorKind::TooManyTokens,
    ErrorKind::RequestTimeout,
    ErrorKind::UnknownIndex,
    ErrorKind::Overloaded,
    ErrorKind::Unavailable,
    ErrorKind::Timeout,
    ErrorKind::InferenceFailed,
];

/// What `/v1/embed` can answer besides 200.
const EMBED_ERRORS: &[ErrorKind] = &[
    ErrorKind::Unauthorized,
    ErrorKind::MethodNotAllowed,
    ErrorKind::BodyTooLarge,
    ErrorKind::BadBody,
    ErrorKind::UnsupportedMediaType,
    ErrorKind::MalformedJson,
    ErrorKind::InvalidRequest,
    ErrorKind::NoInputs,
    ErrorKind::TooManyTexts,
    ErrorKind::TextTooLong,
    ErrorKind::TooManyTokens,
    ErrorKind::RequestTimeout,
    ErrorKind::UnknownModel,
    ErrorKind::Overloaded,
    ErrorKind::Unavailable,
    ErrorKind::Timeout,
    ErrorKind::InferenceFailed,
];

/// What a `GET` route behind the API key can answer besides 200.
const KEYED_GET_ERRORS: &[ErrorKind] = &[ErrorKind::Unauthorized, ErrorKind::MethodNotAllowed];

/// What `POST /v1/adapters` can answer besides 201.
const ADD_ADAPTER_ERRORS: &[ErrorKind] = &[
    ErrorKind::Unauthorized,
    ErrorKind::MethodNotAllowed,
    ErrorKind::BodyTooLarge,
    ErrorKind::BadBody,
    ErrorKind::UnsupportedMediaType,
    ErrorKind::MalformedJson,
    ErrorKind::InvalidRequest,
    ErrorKind::RequestTimeout,
    ErrorKind::AdapterExists,
    ErrorKind::InvalidAdapter,
    ErrorKind::NoAdapterBase,
    ErrorKind::InferenceFailed,
];

/// What `DELETE /v1/adapters/{name}` can answer besides 200.
const REMOVE_ADAPTER_ERRORS: &[ErrorKind] =
    &[ErrorKind::Unauthorized, ErrorKind::MethodNotAllowed, ErrorKind::UnknownModel, ErrorKind::NoAdapterBase];

/// Every route the server answers: method, path and the error kinds it can
/// answer (a route without [`ErrorKind::Unauthorized`] needs no key).
pub const ROUTE_ERRORS: [(&str, &str, &[ErrorKind]); 11] = [
    ("post", "/v1/ner", PREDICT_ERRORS),
    ("post", "/v1/classify", PREDICT_ERRORS),
    ("post", "/v1/answer", ANSWER_ERRORS),
    ("post", "/v1/embed", EMBED_ERRORS),
    ("get", "/v1/models", KEYED_GET_ERRORS),
    ("post", "/v1/adapters", ADD_ADAPTER_ERRORS),
    ("delete", "/v1/adapters/{name}", REMOVE_ADAPTER_ERRORS),
    ("get", "/health", &[ErrorKind::MethodNotAllowed]),
    (
        "get",
        "/ready",
        &[ErrorKind::Unauthorized, ErrorKind::MethodNotAllowed, ErrorKind::Unavailable, ErrorKind::Draining],
    ),
    ("get", "/metrics", KEYED_GET_ERRORS),
    ("get", "/openapi.json", KEYED_GET_ERRORS),
];

/// Every route the server answers, as (method, path).
pub const ROUTES: [(&str, &str); 11] = {
    let mut routes = [("", ""); 11];
    let mut i = 0;
    while i < routes.len() {
        routes[i] = (ROUTE_ERRORS[i].0, ROUTE_ERRORS[i].1);
        i += 1;
    }
    routes
};

/// The error kinds a route can answer (none for an unknown route).
pub fn route_errors(path: &str) -> &'static [ErrorKind] {
    ROUTE_ERRORS.iter().find(|r| r.1 == path).map_or(&[], |r| r.2)
}

/// The error responses of `kinds`, one per status, naming its codes.
fn error_responses(kinds: &[ErrorKind]) -> serde_json::Map<String, Value> {
    let mut by_status: BTreeMap<u16, Vec<ErrorKind>> = BTreeMap::new();
    for kind in kinds {
        by_status.entry(kind.status().as_u16()).or_default().push(*kind);
    }
    by_status
        .into_iter()
        .map(|(status, kinds)| {
            let codes: Vec<&str> = kinds.iter().map(|k| k.code()).collect();
            let mut response = json!({
                "description": format!("error: {}", codes.join(", ")),
                "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
            });
            if kinds.iter().any(|k| k.retry_after().is_some()) {
                response["headers"] = json!({ "Retry-After": {
                    "description": "seconds to wait before retrying", "schema": { "type": "integer" }
                } });
            }
            (status.to_string(), response)
        })
        .collect()
}

/// A `POST` route answering one record per input: `{key, "results"}`.
fn predict_route(path: &str, summary: &str, request: &str, record: &str, key: &str, results: &str) -> Value {
    let mut responses = error_responses(route_errors(path));
    let ok = json!({
        "description": results,
        "content": { "application/json": { "schema": {
            "type": "object", "required": [key, "results"],
            "properties": {
                key: { "type": "string" },
                "results": { "type": "array", "items": { "$ref": format!("#/components/schemas/{record}") } }
            }
        } } }
    });
    responses.insert("200".into(), ok);
    json!({ "post": {
        "summary": summary,
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{request}") } } } },
        "responses": responses,
    } })
}

fn get_route(path: &str, summary: &str, content_type: &str) -> Value {
    let errors = route_errors(path);
    let mut responses = error_responses(errors);
    responses.insert("200".into(), json!({ "description": "ok", "content": { content_type: {} } }));
    let mut op = json!({ "get": { "summary": summary, "responses": responses } });
    if !errors.contains(&ErrorKind::Unauthorized) {
        op["get"]["security"] = json!([]);
    }
    op
}

/// `POST /v1/adapters`.
fn adapter_add_route() -> Value {
    let mut responses = error_responses(route_errors("/v1/adapters"));
    responses.insert(
        "201".into(),
        json!({ "description": "loaded: its name, task and labels",
        "content": { "application/json": { "schema": { "type": "object", "properties": {
            "name": { "type": "string" }, "task": { "type": "string" },
            "labels": { "type": "array", "items": { "type": "string" } } } } } } }),
    );
    json!({ "post": {
        "summary": "Load a LoRA adapter folder (PEFT's layout, on the server's disk) onto the served base",
        "requestBody": { "required": true, "content": { "application/json": { "schema": {
            "type": "object", "required": ["name", "path"], "additionalProperties": false, "properties": {
                "name": { "type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$", "description": "what requests name in \"model\"" },
                "path": { "type": "string", "description": "the adapter folder" } } } } } },
        "responses": responses,
    } })
}

/// `DELETE /v1/adapters/{name}`.
fn adapter_remove_route() -> Value {
    let mut responses = error_responses(route_errors("/v1/adapters/{name}"));
    responses.insert("200".into(), json!({ "description": "removed (requests already queued for it are answered)",
        "content": { "application/json": { "schema": { "type": "object", "properties": { "removed": { "type": "string" } } } } } }));
    json!({ "delete": {
        "summary": "Stop serving a LoRA adapter",
        "parameters": [{ "name": "name", "in": "path", "required": true, "schema": { "type": "string" } }],
        "responses": responses,
    } })
}

const PREDICT_RESULTS: &str = "one record per input, in order (what `ferrotune predict` writes)";

/// The document.
pub fn document() -> Value {
    json!({
        "openapi": "3.0.3",
        "info": { "title": "ferrotune serve", "version": env!("CARGO_PKG_VERSION") },
        "security": [{ "bearer": [] }],
        "paths": {
            "/v1/ner": predict_route("/v1/ner", "Tag entities in texts", "NerRequest", "NerRecord", "model", PREDICT_RESULTS),
            "/v1/classify": predict_route("/v1/classify", "Classify texts or text pairs", "ClassifyRequest", "ClassifyRecord", "model", PREDICT_RESULTS),
            "/v1/answer": predict_route("/v1/answer", "Answer questions from a FAQ index, or hand them over", "AnswerRequest", "Answer", "index",
                "one answer per query, in order (what `ferrotune faq ask` writes)"),
            "/v1/embed": predict_route("/v1/embed", "Embed texts with a FAQ index's embedding model", "EmbedRequest", "EmbedRecord", "model",
                "one embedding per text, in order"),
            "/v1/models": get_route("/v1/models", "Loaded models and adapters: name, task, labels", "application/json"),
            "/v1/adapters": adapter_add_route(),
            "/v1/adapters/{name}": adapter_remove_route(),
            "/health": get_route("/health", "The process is alive", "application/json"),
            "/ready": get_route("/ready", "Every model is loaded (503 while not)", "application/json"),
            "/metrics": get_route("/metrics", "Prometheus metrics", "text/plain"),
            "/openapi.json": get_route("/openapi.json", "This document", "application/json"),
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "NerRequest": { "type": "object", "required": ["texts"], "additionalProperties": false, "properties": {
                    "model": { "type": "string" },
                    "texts": { "type": "array", "items": { "type": "string" }, "minItems": 1 }
                } },
                "ClassifyRequest": { "type": "object", "additionalProperties": false, "properties": {
                    "model": { "type": "string" },
                    "texts": { "type": "array", "items": { "type": "string" }, "minItems": 1 },
                    "pairs": { "type": "array", "items": { "type": "array", "items": { "type": "string" }, "minItems": 2, "maxItems": 2 }, "minItems": 1 }
                }, "description": "exactly one of texts and pairs" },
                "NerRecord": { "type": "object", "properties": {
                    "text": { "type": "string" },
                    "entities": { "type": "array", "items": { "type": "object", "properties": {
                        "text": { "type": "string" }, "type": { "type": "string" },
                        "start": { "type": "integer" }, "end": { "type": "integer" }, "score": { "type": "number" } } } },
                    "tokens": { "type": "array", "items": { "type": "string" } },
                    "tags": { "type": "array", "items": { "type": "string" } }
                } },
                "ClassifyRecord": { "type": "object", "properties": {
                    "text": { "type": "string" }, "text_a": { "type": "string" }, "text_b": { "type": "string" },
                    "label": { "description": "class name, list of class names (multilabel) or number (regression)" },
                    "score": { "type": "number" },
                    "scores": { "type": "object", "additionalProperties": { "type": "number" } }
                } },
                "AnswerRequest": { "type": "object", "required": ["queries"], "additionalProperties": false, "properties": {
                    "index": { "type": "string", "description": "a FAQ index given to serve --faq [default: the first]" },
                    "queries": { "type": "array", "items": { "type": "string", "minLength": 1 }, "minItems": 1 }
                } },
                "Answer": { "type": "object", "required": ["query", "answer", "faq_id", "question", "score", "alternatives", "handoff"], "properties": {
                    "query": { "type": "string" }, "answer": { "type": "string" }, "faq_id": { "type": "string" },
                    "question": { "type": "string" }, "score": { "type": "number", "description": "cosine similarity" },
                    "alternatives": { "type": "array", "items": { "type": "object", "properties": {
                        "faq_id": { "type": "string" }, "question": { "type": "string" }, "score": { "type": "number" } } } },
                    "handoff": { "type": "boolean", "description": "hand the question to a person: the score is below the index's threshold, or its intent is not covered" },
                    "intent": { "type": "object", "properties": { "label": { "type": "string" }, "score": { "type": "number" } } }
                } },
                "EmbedRequest": { "type": "object", "required": ["texts"], "additionalProperties": false, "properties": {
                    "model": { "type": "string", "description": "the FAQ index whose embedding model to use [default: the first]" },
                    "texts": { "type": "array", "items": { "type": "string" }, "minItems": 1 }
                } },
                "EmbedRecord": { "type": "object", "properties": {
                    "text": { "type": "string" }, "embedding": { "type": "array", "items": { "type": "number" } }
                } },
                "Error": { "type": "object", "required": ["error"], "properties": { "error": {
                    "type": "object", "required": ["code", "message"],
                    "properties": { "code": { "type": "string" }, "message": { "type": "string" } } } } }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_lists_exactly_the_routes() {
        let doc = document();
        let paths = doc["paths"].as_object().unwrap();
        assert_eq!(paths.len(), ROUTES.len());
        for (method, path) in ROUTES {
            assert!(paths[path].get(method).is_some(), "{method} {path}");
        }
    }

    /// Each route documents exactly the statuses of its error kinds (405 on
    /// every route, 500 on every POST), each naming its codes, and 200 (201
    /// where an adapter is added).
    #[test]
    fn documented_statuses_are_those_of_the_route_kinds() {
        let doc = document();
        for (method, path, kinds) in ROUTE_ERRORS {
            let responses = doc["paths"][path][method]["responses"].as_object().unwrap();
            let mut documented: Vec<u16> = responses.keys().map(|s| s.parse().unwrap()).collect();
            documented.sort_unstable();
            let success = if (method, path) == ("post", "/v1/adapters") { 201 } else { 200 };
            let mut expected: Vec<u16> = kinds.iter().map(|k| k.status().as_u16()).chain([success]).collect();
            expected.sort_unstable();
            expected.dedup();
            assert_eq!(documented, expected, "{method} {path}");
            assert!(documented.contains(&405), "{method} {path}");
            if path.starts_with("/v1/") && method == "post" {
                assert!(documented.contains(&500), "{method} {path}");
            }
            for kind in kinds {
                let description = responses[&kind.status().as_u16().to_string()]["description"].as_str().unwrap();
                assert!(description.contains(kind.code()), "{method} {path}: {description}");
            }
            // The key is needed exactly where a 401 can be answered.
            let public = doc["paths"][path][method]["security"] == json!([]);
            assert_eq!(public, !documented.contains(&401), "{method} {path}");
        }
        // Every kind but the unknown route's is answered by some route.
        for kind in ErrorKind::ALL {
            let routes = ROUTE_ERRORS.iter().filter(|r| r.2.contains(&kind)).count();
            assert_eq!(routes == 0, kind == ErrorKind::NotFound, "{kind:?}");
        }
    }
}
