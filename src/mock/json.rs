//! JSON text with keys in the order the API documents them (`serde_json` maps sort
//! their keys): the documented keys first, in the given order, then the others in
//! sorted order.

use serde_json::Value;

/// Key order of events: `{"type":..,"project_id":..,"app_url":..}` as documented.
pub(crate) const EVENT_KEYS: &[&str] = &[
    "type",
    "project_id",
    "app_url",
    "message",
    "percentage",
    "tool",
    "path",
    "action",
];

/// Key order of JSON answers: `{"status":..,"message":..}`,
/// `{"message":..,"errors":..}`, `{"status":..,"project_id":..,"app_url":..,
/// "project_status":..,"name":..}`.
pub(crate) const ANSWER_KEYS: &[&str] = &[
    "status",
    "message",
    "errors",
    "project_id",
    "app_url",
    "project_status",
    "name",
];

/// Appends `value` as JSON to `out`, the top-level keys ordered by `first`.
pub(crate) fn write(value: &Value, first: &[&str], out: &mut Vec<u8>) {
    // Writing JSON into a Vec cannot fail: the writer is infallible and `Value` keys
    // are always strings.
    let Value::Object(map) = value else {
        let _ = serde_json::to_writer(&mut *out, value);
        return;
    };
    out.push(b'{');
    let known = first.iter().filter_map(|key| map.get_key_value(*key));
    let others = map.iter().filter(|(key, _)| !first.contains(&key.as_str()));
    for (i, (key, field)) in known.chain(others).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let _ = serde_json::to_writer(&mut *out, key);
        out.push(b':');
        let _ = serde_json::to_writer(&mut *out, field);
    }
    out.push(b'}');
}

/// `value` as JSON text, the top-level keys ordered by `first`.
pub(crate) fn to_vec(value: &Value, first: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    write(value, first, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn documented_keys_come_first_in_order_then_the_rest_sorted() {
        let event = json!({"zeta": 1, "app_url": "u", "project_id": "p1", "type": "project_created", "alpha": [1]});
        assert_eq!(
            String::from_utf8(to_vec(&event, EVENT_KEYS)).unwrap(),
            r#"{"type":"project_created","project_id":"p1","app_url":"u","alpha":[1],"zeta":1}"#
        );
        assert_eq!(to_vec(&json!([1, "a"]), EVENT_KEYS), br#"[1,"a"]"#);
        let parsed: Value = serde_json::from_slice(&to_vec(&event, EVENT_KEYS)).unwrap();
        assert_eq!(parsed, event);
    }
}
