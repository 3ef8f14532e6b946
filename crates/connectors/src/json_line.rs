//! One JSON line of a file or an object: checked to be JSON, its event time read. The
//! file and objects sources share it, so they judge a line the same way.

use serde_json::Value;

/// Check that `line` is JSON and read its event time from `field` (0 without one);
/// the error says what is wrong with the line.
pub(crate) fn event_time_of(line: &[u8], field: Option<&str>) -> Result<i64, String> {
    let Some(field) = field else {
        serde_json::from_slice::<serde::de::IgnoredAny>(line).map_err(|e| format!("not JSON: {e}"))?;
        return Ok(0);
    };
    let doc: Value = serde_json::from_slice(line).map_err(|e| format!("not JSON: {e}"))?;
    time_field(&doc, field)
}

/// The event time in `doc`'s `field` (a dotted path reaches into objects): an integer, a
/// float (truncated) or a string holding an integer.
pub(crate) fn time_field(doc: &Value, field: &str) -> Result<i64, String> {
    match rivulet_dataflow::partition::json_path(doc, field) {
        Some(Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)).ok_or_else(|| format!("field '{field}' is not an integer")),
        Some(Value::String(s)) => s.trim().parse::<i64>().map_err(|_| format!("field '{field}' ('{s}') is not an integer")),
        _ => Err(format!("event-time field '{field}' is missing")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_judged_alike() {
        assert_eq!(event_time_of(b"{\"a\":1}", None), Ok(0));
        assert_eq!(event_time_of(b"{\"t\":5}", Some("t")), Ok(5));
        assert_eq!(event_time_of(b"{\"t\":\"7\"}", Some("t")), Ok(7));
        assert_eq!(event_time_of(b"{\"e\":{\"t\":9}}", Some("e.t")), Ok(9), "a dotted path");
        assert!(event_time_of(b"{oops", None).is_err_and(|e| e.starts_with("not JSON")));
        assert!(event_time_of(b"{\"a\":1}", Some("t")).is_err_and(|e| e.contains("'t' is missing")));
    }
}
