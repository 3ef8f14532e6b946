//! `${NAME}` placeholders in a spec's text.

use std::collections::BTreeMap;

use crate::error::SpecError;

/// Replace every `${NAME}` in `text` by `params[NAME]`.
/// Whole-line YAML comments are left alone, so a comment may mention `${NAME}`.
pub fn substitute_params(text: &str, params: &BTreeMap<String, String>) -> Result<String, SpecError> {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
        } else {
            substitute_line(line, params, &mut out)?;
        }
    }
    Ok(out)
}

fn substitute_line(text: &str, params: &BTreeMap<String, String>, out: &mut String) -> Result<(), SpecError> {
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(SpecError::invalid("params", "unterminated `${` placeholder"));
        };
        let name = &after[..end];
        match params.get(name) {
            Some(v) => out.push_str(v),
            None => return Err(SpecError::MissingParam { name: name.to_owned() }),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_substituted_and_missing_ones_named() {
        let mut p = BTreeMap::new();
        p.insert("input".to_owned(), "a.txt".to_owned());
        assert_eq!(substitute_params("path: ${input}", &p).expect("ok"), "path: a.txt");
        assert_eq!(substitute_params("# ${nope}\npath: ${input}", &p).expect("ok"), "# ${nope}\npath: a.txt");
        let e = substitute_params("path: ${output}", &p).expect_err("missing");
        assert!(e.to_string().contains("--param output=VALUE"), "{e}");
    }
}
