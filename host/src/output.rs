//! Terminal output as docker prints it: Go tabwriter tables and a subset of Go templates
//! for `--format` (`{{.Field}}`, `{{.A.B}}`, `{{json .}}`, `{{json .Field}}`, `table …`).

use serde_json::Value;

/// Go's `tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`, which docker uses for its tables:
/// each column as wide as its widest cell plus 3, at least 10; the last column unpadded.
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i + 1 < r.len() {
                widths[i] = widths[i].max((c.chars().count() + 3).max(10));
            }
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            line.push_str(c);
            if i + 1 < r.len() {
                line.push_str(&" ".repeat(widths[i].saturating_sub(c.chars().count())));
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// A parsed `--format` value.
pub enum Format {
    /// docker's default table.
    Default,
    /// `json`: one JSON object per line.
    Json,
    /// A Go template; `table` ones get a header row and column alignment.
    Template { table: bool, text: String },
}

impl Format {
    pub fn parse(s: Option<&str>) -> Format {
        match s {
            None | Some("") | Some("table") => Format::Default,
            Some("json") => Format::Json,
            Some(t) => {
                let (table, text) = match t.strip_prefix("table") {
                    Some(rest) => (true, rest.trim_start().to_string()),
                    None => (false, t.to_string()),
                };
                Format::Template {
                    table,
                    text: text.replace("\\t", "\t").replace("\\n", "\n"),
                }
            }
        }
    }
}

/// Render one row of a template against a JSON value.
pub fn render(template: &str, v: &Value) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("template: unclosed action in {template:?}"))?;
        let action = after[..end]
            .trim()
            .trim_start_matches('-')
            .trim_end_matches('-')
            .trim();
        out.push_str(&eval(action, v)?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn eval(action: &str, v: &Value) -> Result<String, String> {
    let words: Vec<&str> = action.split_whitespace().collect();
    match words.as_slice() {
        [path] if path.starts_with('.') => Ok(go_print(lookup(v, path)?)),
        ["json", path] => Ok(serde_json::to_string(lookup(v, path)?).unwrap_or_default()),
        ["upper", path] => Ok(go_print(lookup(v, path)?).to_uppercase()),
        ["lower", path] => Ok(go_print(lookup(v, path)?).to_lowercase()),
        ["println", path] => Ok(go_print(lookup(v, path)?) + "\n"),
        _ => Err(format!("template: unsupported action {{{{{action}}}}}")),
    }
}

fn lookup<'a>(v: &'a Value, path: &str) -> Result<&'a Value, String> {
    if path == "." {
        return Ok(v);
    }
    let mut cur = v;
    for key in path.trim_start_matches('.').split('.') {
        cur = match cur {
            Value::Object(m) => m.get(key).unwrap_or(&Value::Null),
            Value::Null => &Value::Null,
            _ => return Err(format!("template: can't evaluate field {key}")),
        };
    }
    Ok(cur)
}

/// How Go's text/template prints a value.
fn go_print(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(go_print).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Object(m) => {
            let items: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}:{}", go_print(v)))
                .collect();
            format!("map[{}]", items.join(" "))
        }
    }
}

/// Print rows through a template (with a header for `table` templates).
pub fn print_template(
    table_mode: bool,
    text: &str,
    headers: &dyn Fn(&str) -> String,
    rows: &[Value],
) -> Result<(), String> {
    if table_mode {
        let header_row: Vec<String> = split_cells(text)
            .iter()
            .map(|c| {
                let mut h = c.clone();
                while let Some(s) = h.find("{{") {
                    let Some(e) = h[s..].find("}}") else { break };
                    let field = h[s + 2..s + e].trim().trim_start_matches('.').to_string();
                    h.replace_range(s..s + e + 2, &headers(&field));
                }
                h
            })
            .collect();
        let mut all = vec![header_row];
        for r in rows {
            all.push(split_cells(&render(text, r)?));
        }
        print!("{}", table(&all));
    } else {
        for r in rows {
            println!("{}", render(text, r)?);
        }
    }
    Ok(())
}

fn split_cells(s: &str) -> Vec<String> {
    s.split('\t').map(String::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_pad_like_go_tabwriter() {
        let t = table(&[vec![
            "REPOSITORY".into(),
            "TAG".into(),
            "IMAGE ID".into(),
            "CREATED".into(),
            "SIZE".into(),
        ]]);
        assert_eq!(t, "REPOSITORY   TAG       IMAGE ID   CREATED   SIZE\n");
    }

    #[test]
    fn templates_render_fields_and_json() {
        let v = json!({"Repository": "busybox", "Tag": "latest", "Config": {"Cmd": ["sh"]}});
        assert_eq!(
            render("{{.Repository}}:{{.Tag}}", &v).unwrap(),
            "busybox:latest"
        );
        assert_eq!(render("{{.Config.Cmd}}", &v).unwrap(), "[sh]");
        assert_eq!(render("{{json .Config.Cmd}}", &v).unwrap(), "[\"sh\"]");
        assert!(render("{{.Repository", &v).is_err());
    }
}
