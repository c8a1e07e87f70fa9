//! A JSON schema check written for the tests, independent of llguidance: the keywords the
//! constrained-decoding tests' schemas use (`type`, `enum`, `const`, `properties`, `required`,
//! `additionalProperties: false`, `items`, `minItems`/`maxItems`, `minLength`/`maxLength`,
//! `minimum`/`maximum`). A schema with any other keyword is refused, so a test cannot pass by
//! a keyword being ignored.

use serde_json::Value;

/// Keywords [`violation`] checks; any other in a schema is an error.
const KNOWN: &[&str] = &[
    "type",
    "enum",
    "const",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "title",
    "description",
];

/// Why `value` is not valid under `schema` (with a JSON-pointer-like path), or `None`.
pub fn violation(value: &Value, schema: &Value) -> Option<String> {
    check(value, schema, "$").err()
}

fn check(v: &Value, s: &Value, at: &str) -> Result<(), String> {
    let s = s
        .as_object()
        .ok_or_else(|| format!("{at}: schema is not an object"))?;
    if let Some(k) = s.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(format!(
            "{at}: the test's checker does not know keyword {k:?}"
        ));
    }
    let fail = |why: String| Err(format!("{at}: {why} (value {v})"));
    if let Some(t) = s.get("type").and_then(Value::as_str) {
        let ok = match t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            other => return fail(format!("unknown type {other}")),
        };
        if !ok {
            return fail(format!("not of type {t}"));
        }
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        if !e.contains(v) {
            return fail("not one of the enum".into());
        }
    }
    if let Some(c) = s.get("const") {
        if c != v {
            return fail(format!("not the const {c}"));
        }
    }
    let count = |key: &str| s.get(key).and_then(Value::as_u64).map(|n| n as usize);
    if let Some(text) = v.as_str() {
        let chars = text.chars().count();
        if count("minLength").is_some_and(|n| chars < n) {
            return fail("shorter than minLength".into());
        }
        if count("maxLength").is_some_and(|n| chars > n) {
            return fail("longer than maxLength".into());
        }
    }
    if let Some(x) = v.as_f64() {
        if s.get("minimum")
            .and_then(Value::as_f64)
            .is_some_and(|m| x < m)
        {
            return fail("below minimum".into());
        }
        if s.get("maximum")
            .and_then(Value::as_f64)
            .is_some_and(|m| x > m)
        {
            return fail("above maximum".into());
        }
    }
    if let Some(items) = v.as_array() {
        if count("minItems").is_some_and(|n| items.len() < n) {
            return fail("fewer than minItems".into());
        }
        if count("maxItems").is_some_and(|n| items.len() > n) {
            return fail("more than maxItems".into());
        }
        if let Some(item_schema) = s.get("items") {
            for (i, item) in items.iter().enumerate() {
                check(item, item_schema, &format!("{at}[{i}]"))?;
            }
        }
    }
    if let Some(obj) = v.as_object() {
        let props = s.get("properties").and_then(Value::as_object);
        for key in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = key.as_str().unwrap_or_default();
            if !obj.contains_key(key) {
                return fail(format!("missing required {key:?}"));
            }
        }
        for (key, field) in obj {
            match props.and_then(|p| p.get(key)) {
                Some(field_schema) => check(field, field_schema, &format!("{at}.{key}"))?,
                None if s.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    return fail(format!("property {key:?} not allowed"))
                }
                None => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::violation;
    use serde_json::json;

    #[test]
    fn the_checker_catches_what_it_claims_to() {
        let schema = json!({
            "type": "object",
            "properties": {
                "kind": {"enum": ["cat", "dog"]},
                "tags": {"type": "array", "items": {"type": "string", "maxLength": 3},
                         "minItems": 1, "maxItems": 2},
                "age": {"type": "integer", "minimum": 0, "maximum": 30}
            },
            "required": ["kind"],
            "additionalProperties": false
        });
        assert_eq!(
            violation(&json!({"kind": "cat", "tags": ["a"], "age": 3}), &schema),
            None
        );
        for bad in [
            json!({"kind": "cow"}),
            json!({"tags": ["a"]}),
            json!({"kind": "cat", "tags": []}),
            json!({"kind": "cat", "tags": ["a", "b", "c"]}),
            json!({"kind": "cat", "tags": ["long"]}),
            json!({"kind": "cat", "age": 31}),
            json!({"kind": "cat", "age": 1.5}),
            json!({"kind": "cat", "other": 1}),
            json!(["cat"]),
        ] {
            assert!(violation(&bad, &schema).is_some(), "{bad} passed");
        }
        assert!(violation(&json!(1), &json!({"pattern": "x"})).is_some());
    }
}
