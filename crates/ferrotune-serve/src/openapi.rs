//! The OpenAPI 3 document of the server's routes (`GET /openapi.json`).

use serde_json::{json, Value};

/// Every route the server answers, as (method, path).
pub const ROUTES: [(&str, &str); 7] = [
    ("post", "/v1/ner"),
    ("post", "/v1/classify"),
    ("get", "/v1/models"),
    ("get", "/health"),
    ("get", "/ready"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
];

fn error_responses() -> Value {
    let error = json!({ "description": "error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
    json!({
        "400": error, "401": error, "404": error, "413": error, "415": error, "422": error,
        "429": error, "503": error
    })
}

fn predict_route(summary: &str, request: &str, record: &str) -> Value {
    let mut responses = error_responses();
    responses["200"] = json!({
        "description": "one record per input, in order (what `ferrotune predict` writes)",
        "content": { "application/json": { "schema": {
            "type": "object", "required": ["model", "results"],
            "properties": {
                "model": { "type": "string" },
                "results": { "type": "array", "items": { "$ref": format!("#/components/schemas/{record}") } }
            }
        } } }
    });
    json!({ "post": {
        "summary": summary,
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{request}") } } } },
        "responses": responses,
    } })
}

fn get_route(summary: &str, content_type: &str, public: bool) -> Value {
    let mut op = json!({ "get": { "summary": summary, "responses": {
        "200": { "description": "ok", "content": { content_type: {} } },
        "401": { "description": "missing or wrong API key" }
    } } });
    if public {
        op["get"]["security"] = json!([]);
        op["get"]["responses"].as_object_mut().expect("object").remove("401");
    }
    op
}

/// The document.
pub fn document() -> Value {
    json!({
        "openapi": "3.0.3",
        "info": { "title": "ferrotune serve", "version": env!("CARGO_PKG_VERSION") },
        "security": [{ "bearer": [] }],
        "paths": {
            "/v1/ner": predict_route("Tag entities in texts", "NerRequest", "NerRecord"),
            "/v1/classify": predict_route("Classify texts or text pairs", "ClassifyRequest", "ClassifyRecord"),
            "/v1/models": get_route("Loaded models: name, task, labels", "application/json", false),
            "/health": get_route("The process is alive", "application/json", true),
            "/ready": get_route("Every model is loaded (503 while not)", "application/json", false),
            "/metrics": get_route("Prometheus metrics", "text/plain", false),
            "/openapi.json": get_route("This document", "application/json", false),
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
}
