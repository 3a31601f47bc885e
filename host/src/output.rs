//! Terminal output as docker prints it: Go tabwriter tables and a subset of Go templates
//! for `--format` (`{{.Field}}`, `{{.A.B}}`, `{{json .}}`, `{{json .Field}}`, `table …`).

use serde_json::Value;

/// Go's `tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`, which docker uses for its tables:
/// each column as wide as its widest cell plus 3, at least 10; the last column unpadded.
pub fn table(rows: &[Vec<String>]) -> String {
    table_min(rows, 10)
}

/// The same with another minimum cell width (`docker top` uses 20).
pub fn table_min(rows: &[Vec<String>], min_width: usize) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i + 1 < r.len() {
                widths[i] = widths[i].max((c.chars().count() + 3).max(min_width));
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

/// Text on stdout. A reader that went away (`| head`) ends skiff quietly, by SIGPIPE, as it
/// ends docker (Go dies of SIGPIPE on a broken stdout); Rust ignores SIGPIPE, so that
/// `println!` would panic and anything else would go on producing output nobody reads.
pub fn out(text: &str) {
    out_bytes(text.as_bytes())
}

/// Bytes on stdout, as `out`.
pub fn out_bytes(bytes: &[u8]) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    let written = o.write_all(bytes).and_then(|()| o.flush());
    if written.is_err_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) {
        // SAFETY: restoring the default action and raising the signal ends this process,
        // which is what a broken stdout means for a command-line tool.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            libc::raise(libc::SIGPIPE);
        }
    }
}

/// `println!` through `out`.
macro_rules! out_line {
    () => {
        $crate::output::out("\n")
    };
    ($($arg:tt)*) => {
        $crate::output::out(&format!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use out_line;

/// `print!` through `out`.
macro_rules! out_text {
    ($($arg:tt)*) => {
        $crate::output::out(&format!($($arg)*))
    };
}
pub(crate) use out_text;

/// A line on stdout, as `out`.
pub fn outln(text: &str) {
    out(&format!("{text}\n"));
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
    let owned = split_words(action);
    let words: Vec<&str> = owned.iter().map(String::as_str).collect();
    match words.as_slice() {
        [path] if path.starts_with('.') => Ok(go_print(lookup(v, path)?)),
        ["json", path] => Ok(serde_json::to_string(lookup(v, path)?).unwrap_or_default()),
        ["upper", path] => Ok(go_print(lookup(v, path)?).to_uppercase()),
        ["lower", path] => Ok(go_print(lookup(v, path)?).to_lowercase()),
        ["println", path] => Ok(go_print(lookup(v, path)?) + "\n"),
        // A method with an argument, such as ps's `.Label "key"`, or `index .Map "key"`.
        [path, key] | ["index", path, key] if path.starts_with('.') && is_quoted(key) => {
            Ok(go_print(index(lookup(v, path)?, key)))
        }
        ["json", path, key] if is_quoted(key) => {
            Ok(serde_json::to_string(index(lookup(v, path)?, key)).unwrap_or_default())
        }
        ["join", path, sep] if is_quoted(sep) => {
            let sep = unquote(sep);
            Ok(match lookup(v, path)? {
                Value::Array(a) => a.iter().map(go_print).collect::<Vec<_>>().join(&sep),
                other => go_print(other),
            })
        }
        _ => Err(format!("template: unsupported action {{{{{action}}}}}")),
    }
}

/// The words of an action; a quoted string is one word, spaces and all.
fn split_words(action: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in action.chars() {
        if quoted {
            cur.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                quoted = false;
            }
        } else if c.is_whitespace() {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
        } else {
            if c == '"' {
                quoted = true;
            }
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

fn is_quoted(s: &str) -> bool {
    s.len() >= 2 && s.starts_with('"') && s.ends_with('"')
}

fn unquote(s: &str) -> String {
    serde_json::from_str::<String>(s).unwrap_or_else(|_| s[1..s.len() - 1].to_string())
}

fn index<'a>(v: &'a Value, key: &str) -> &'a Value {
    static EMPTY: Value = Value::String(String::new());
    match v {
        Value::Object(m) => m.get(&unquote(key)).unwrap_or(&EMPTY),
        _ => &EMPTY,
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
    let mut out = Vec::new();
    write_template(&mut out, table_mode, text, headers, rows)?;
    out_bytes(&out);
    Ok(())
}

/// The same into a buffer (for screens redrawn in one write).
pub fn write_template(
    out: &mut Vec<u8>,
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
        out.extend_from_slice(table(&all).as_bytes());
    } else {
        for r in rows {
            out.extend_from_slice(render(text, r)?.as_bytes());
            out.push(b'\n');
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

    #[test]
    fn templates_index_and_join() {
        let v = json!({"Config": {"Labels": {"a.b": "1"}, "Cmd": ["sh", "-c"]}});
        assert_eq!(render("{{index .Config.Labels \"a.b\"}}", &v).unwrap(), "1");
        assert_eq!(render("{{index .Config.Labels \"zz\"}}", &v).unwrap(), "");
        assert_eq!(render("{{join .Config.Cmd \" \"}}", &v).unwrap(), "sh -c");
    }
}
