//! `${NAME}` placeholders in a spec, filled after the spec is parsed.
//!
//! Params are data: a value goes into the string scalar that holds its placeholder and
//! can never add a field, an item or a document, whatever characters it holds. A scalar
//! that is one placeholder and nothing else (`count: ${count}`) takes the value's type
//! when it is a number or `true`/`false`, so numeric and boolean settings can be params.
//! Secret references (`${env:NAME}`, `${file:PATH}`) are no params: they are left as
//! written, for the connector that uses them ([`crate::secrets`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

use crate::error::SpecError;

/// Spec fields that hold a file path: a param that fills one of them on the command
/// line is a path the user typed in a shell.
const PATH_FIELDS: &[&str] = &["path", "plugin", "spool_dir", "dir"];

/// Values for a spec's `${NAME}` placeholders, and where relative paths among them point.
#[derive(Debug, Clone, Default)]
pub struct Params {
    values: BTreeMap<String, String>,
    paths_relative_to: Option<PathBuf>,
}

impl Params {
    /// Params whose values are plain data (a REST submission): a relative path among
    /// them resolves, like any path in the spec, against the spec's folder.
    pub fn new(values: BTreeMap<String, String>) -> Self {
        Params { values, paths_relative_to: None }
    }

    /// Params typed on a command line: a value that alone fills a path field
    /// (`path: ${input}`) and is relative resolves against `dir`, the shell's working
    /// directory, as every command-line tool does. Paths written in the spec itself
    /// still resolve against the spec's folder.
    pub fn from_command_line(values: BTreeMap<String, String>, dir: PathBuf) -> Self {
        Params { values, paths_relative_to: Some(dir) }
    }

    /// Fill every placeholder inside the string scalars of `doc` (mapping keys are left
    /// alone: a placeholder there is an unknown field).
    pub fn fill(&self, doc: &mut Value) -> Result<(), SpecError> {
        self.fill_value(doc, None)
    }

    fn fill_value(&self, v: &mut Value, field: Option<&str>) -> Result<(), SpecError> {
        match v {
            Value::String(s) if s.contains("${") => *v = self.fill_scalar(s, field)?,
            Value::Sequence(items) => items.iter_mut().try_for_each(|x| self.fill_value(x, None))?,
            Value::Mapping(m) => {
                for (k, x) in m.iter_mut() {
                    self.fill_value(x, k.as_str())?;
                }
            }
            Value::Tagged(t) => self.fill_value(&mut t.value, field)?,
            _ => {}
        }
        Ok(())
    }

    fn fill_scalar(&self, s: &str, field: Option<&str>) -> Result<Value, SpecError> {
        if let Some(name) = whole_placeholder(s).filter(|n| !is_secret_reference(n)) {
            let value = self.get(name)?;
            if let (Some(dir), Some(f)) = (&self.paths_relative_to, field)
                && PATH_FIELDS.contains(&f)
                && !value.contains("://")
                && Path::new(value).is_relative()
                && !value.is_empty()
            {
                return Ok(Value::String(dir.join(value).display().to_string()));
            }
            return Ok(typed(value));
        }
        Ok(Value::String(substitute_params(s, &self.values)?))
    }

    fn get(&self, name: &str) -> Result<&str, SpecError> {
        self.values.get(name).map(String::as_str).ok_or_else(|| SpecError::MissingParam { name: name.to_owned() })
    }
}

/// Whether a placeholder's name is a secret reference's (`env:NAME`, `file:PATH`: see
/// [`crate::secrets`]), which params leave alone.
fn is_secret_reference(name: &str) -> bool {
    name.starts_with("env:") || name.starts_with("file:")
}

/// `NAME` when `s` is exactly `${NAME}`.
fn whole_placeholder(s: &str) -> Option<&str> {
    let name = s.strip_prefix("${")?.strip_suffix('}')?;
    (!name.contains('}') && !name.contains("${")).then_some(name)
}

/// A number or boolean keeps its type; anything else is a string. Only a value that a
/// number prints back as exactly (`42`, `-3`, `0.5`, not `007` or `1e3`) is a number,
/// so a string field filled with a numeric-looking value gets the same characters.
fn typed(value: &str) -> Value {
    match value {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(n) = value.parse::<u64>()
        && n.to_string() == value
    {
        return Value::Number(n.into());
    }
    if let Ok(n) = value.parse::<i64>()
        && n.to_string() == value
    {
        return Value::Number(n.into());
    }
    match value.parse::<f64>() {
        Ok(f) if f.is_finite() && value.contains('.') && f.to_string() == value => Value::Number(f.into()),
        _ => Value::String(value.to_owned()),
    }
}

/// Replace every `${NAME}` in the string `text` by `params[NAME]`.
fn substitute_params(text: &str, params: &BTreeMap<String, String>) -> Result<String, SpecError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(SpecError::invalid("params", "unterminated `${` placeholder"));
        };
        let name = &after[..end];
        if is_secret_reference(name) {
            // `${env:NAME}` / `${file:PATH}`: resolved by the connector that uses it.
            out.push_str(&rest[start..start + 2 + end + 1]);
            rest = &after[end + 1..];
            continue;
        }
        match params.get(name) {
            Some(v) => out.push_str(v),
            None => return Err(SpecError::MissingParam { name: name.to_owned() }),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::new(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
    }

    fn filled(p: &Params, yaml: &str) -> Result<Value, SpecError> {
        let mut doc: Value = serde_yaml::from_str(yaml).expect("yaml");
        p.fill(&mut doc)?;
        Ok(doc)
    }

    #[test]
    fn params_are_substituted_and_missing_ones_named() {
        let p = params(&[("input", "a.txt")]);
        let doc = filled(&p, "# ${nope}\npath: ${input}\nname: job-${input}\n").expect("ok");
        assert_eq!(doc["path"], Value::String("a.txt".into()));
        assert_eq!(doc["name"], Value::String("job-a.txt".into()));
        let e = filled(&p, "path: ${output}").expect_err("missing");
        assert!(e.to_string().contains("--param output=VALUE"), "{e}");
    }

    #[test]
    fn a_value_cannot_add_structure() {
        let hostile = "/tmp/a\", inputs: [gen]}\n  - {id: extra, type: stdout, inputs: [gen]}\n";
        let p = params(&[("output", hostile)]);
        let doc = filled(&p, "sinks:\n  - {id: out, type: file, path: \"${output}\", inputs: [gen]}\n").expect("ok");
        let sinks = doc["sinks"].as_sequence().expect("list");
        assert_eq!(sinks.len(), 1);
        assert_eq!(sinks[0]["path"], Value::String(hostile.into()));
        let doc = filled(&params(&[("n", "1\nextra: 2")]), "count: ${n}\n").expect("ok");
        assert_eq!(doc.as_mapping().expect("map").len(), 1);
    }

    #[test]
    fn whole_placeholders_keep_numbers_and_booleans() {
        let p = params(&[("n", "42"), ("b", "true"), ("f", "0.5"), ("s", "1 2"), ("z", "007")]);
        let doc = filled(&p, "n: ${n}\nb: ${b}\nf: ${f}\ns: ${s}\nq: 'x${n}'\nz: ${z}\n").expect("ok");
        assert_eq!(doc["z"], Value::String("007".into()));
        assert_eq!(doc["n"], Value::Number(42u64.into()));
        assert_eq!(doc["b"], Value::Bool(true));
        assert_eq!(doc["f"], Value::Number(0.5.into()));
        assert_eq!(doc["s"], Value::String("1 2".into()));
        assert_eq!(doc["q"], Value::String("x42".into()));
    }

    #[test]
    fn command_line_paths_resolve_against_the_working_directory() {
        let values = [("input", "tiny.jsonl"), ("abs", "/data/x"), ("topic", "t")].iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let p = Params::from_command_line(values, PathBuf::from("/home/me"));
        let doc = filled(&p, "path: ${input}\nother: ${abs}\ntopic: ${topic}\nplugin: ${abs}\ndir: s3://${topic}\n").expect("ok");
        assert_eq!(doc["path"], Value::String("/home/me/tiny.jsonl".into()));
        assert_eq!(doc["plugin"], Value::String("/data/x".into()));
        assert_eq!(doc["topic"], Value::String("t".into()));
        assert_eq!(doc["dir"], Value::String("s3://t".into()));
    }
}
