//! `${NAME}` substitution from the environment and `${file:PATH}` from secret files, in every
//! string of the parsed TOML, before it is deserialized. `$${` writes a literal `${`.

use std::path::PathBuf;

use super::LoadError;

/// Replaces `${NAME}` in every string of `value`, tracking the dotted key for errors.
pub(super) fn substitute(
    value: &mut toml::Value,
    key: &mut String,
    env: &impl Fn(&str) -> Option<String>,
    files: &mut Vec<PathBuf>,
) -> Result<(), LoadError> {
    match value {
        toml::Value::String(text) if text.contains('$') => {
            *text = expand(text, key, env, files)?;
        }
        toml::Value::Array(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                let len = key.len();
                key.push_str(&format!("[{index}]"));
                substitute(item, key, env, files)?;
                key.truncate(len);
            }
        }
        toml::Value::Table(table) => {
            for (name, item) in table.iter_mut() {
                let len = key.len();
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(name);
                substitute(item, key, env, files)?;
                key.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

pub(super) fn expand(
    text: &str,
    key: &str,
    env: &impl Fn(&str) -> Option<String>,
    files: &mut Vec<PathBuf>,
) -> Result<String, LoadError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        if let Some(literal) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = literal;
        } else if let Some(body) = after.strip_prefix("${") {
            let end = body.find('}').ok_or_else(|| LoadError::Shape {
                key: key.to_owned(),
                message: "unterminated ${ in value".into(),
            })?;
            let name = &body[..end];
            if let Some(path) = name.strip_prefix("file:") {
                let secret =
                    std::fs::read_to_string(path).map_err(|error| LoadError::SecretFile {
                        key: key.to_owned(),
                        path: path.to_owned(),
                        message: error.to_string(),
                    })?;
                // Mounted secrets usually end with a newline that is not part of the secret.
                out.push_str(secret.trim_end_matches(['\n', '\r']));
                files.push(PathBuf::from(path));
                rest = &body[end + 1..];
                continue;
            }
            let is_name = !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !name.as_bytes()[0].is_ascii_digit();
            if !is_name {
                return Err(LoadError::Shape {
                    key: key.to_owned(),
                    message: format!("`${{{name}}}` is not an environment variable name"),
                });
            }
            let value = env(name)
                .ok_or_else(|| LoadError::Env { key: key.to_owned(), name: name.to_owned() })?;
            out.push_str(&value);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}
