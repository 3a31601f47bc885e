//! How every inspect command prints what the engine sent: docker's indented JSON array (the
//! engine's key order kept, which a serde round trip would lose), `--format json` compacted,
//! or a template per object.

use anyhow::Result;
use serde_json::Value;

use crate::output::{outln, render};
use crate::SkiffError;

/// Where a scan of JSON text stands with respect to strings, whose characters (whitespace,
/// brackets, commas) both Indent and Compact must copy as they are.
#[derive(Default)]
struct Strings {
    inside: bool,
    escaped: bool,
}

impl Strings {
    /// Take in `c`; true if it belongs to a string (its quotes included).
    fn step(&mut self, c: char) -> bool {
        if self.inside {
            if self.escaped {
                self.escaped = false;
            } else if c == '\\' {
                self.escaped = true;
            } else if c == '"' {
                self.inside = false;
            }
            return true;
        }
        if c == '"' {
            self.inside = true;
            return true;
        }
        false
    }
}

/// Go's json.Indent with four spaces (key order kept as the engine sent it).
pub fn indent_json(src: &[u8]) -> String {
    let mut out = String::with_capacity(src.len() * 2);
    let mut depth = 0usize;
    let mut strings = Strings::default();
    let mut need_indent = false;
    let text = String::from_utf8_lossy(src);
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("    ");
        }
    };
    for c in text.chars() {
        let in_string = strings.step(c);
        if !in_string && c.is_ascii_whitespace() {
            continue;
        }
        if need_indent && c != ']' && c != '}' {
            newline(&mut out, depth);
            need_indent = false;
        }
        if in_string {
            out.push(c);
            continue;
        }
        match c {
            '{' | '[' => {
                out.push(c);
                depth += 1;
                need_indent = true;
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                if need_indent {
                    // An empty object or array stays on one line.
                    need_indent = false;
                } else {
                    newline(&mut out, depth);
                }
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            _ => out.push(c),
        }
    }
    out
}

/// Go's json.Compact.
fn compact_json(src: &[u8]) -> String {
    let text = String::from_utf8_lossy(src);
    let mut out = String::with_capacity(text.len());
    let mut strings = Strings::default();
    for c in text.chars() {
        if strings.step(c) || !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
    out
}

/// The objects, each as the engine sent it, in one JSON array.
fn json_array(raws: &[Vec<u8>]) -> Vec<u8> {
    let mut all = b"[".to_vec();
    for (i, r) in raws.iter().enumerate() {
        if i > 0 {
            all.push(b',');
        }
        all.extend_from_slice(r);
    }
    all.push(b']');
    all
}

/// Print inspected objects as docker does: an indented JSON array, `json` compact, or a
/// template per object.
pub fn print_inspected(raws: &[Vec<u8>], format: Option<&str>) -> Result<()> {
    match format {
        None | Some("") if raws.is_empty() => outln("[]"),
        None | Some("") => outln(&indent_json(&json_array(raws))),
        Some("json") => outln(&compact_json(&json_array(raws))),
        Some(t) => {
            let t = t.replace("\\n", "\n").replace("\\t", "\t");
            let mut out = String::new();
            for r in raws {
                let v: Value = serde_json::from_slice(r)?;
                out.push_str(&render(&t, &v).map_err(|e| {
                    SkiffError::with_code(format!("template parsing error: {e}"), 64)
                })?);
                out.push('\n');
            }
            if out.is_empty() {
                out.push('\n');
            }
            crate::output::out(&out);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_indents_like_go() {
        let src = br#"[{"Id":"abc","Args":["-f","x"],"Labels":{},"Empty":[],"State":{"Running":true,"Pid":1}}
]"#;
        let want = r#"[
    {
        "Id": "abc",
        "Args": [
            "-f",
            "x"
        ],
        "Labels": {},
        "Empty": [],
        "State": {
            "Running": true,
            "Pid": 1
        }
    }
]"#;
        assert_eq!(indent_json(src), want);
        assert_eq!(
            indent_json(br#"{"a":"x, {y}: \"z\""}"#),
            "{\n    \"a\": \"x, {y}: \\\"z\\\"\"\n}"
        );
        assert_eq!(
            compact_json(b"[{\"a\": 1,\n \"b\": \" c \"}]"),
            "[{\"a\":1,\"b\":\" c \"}]"
        );
    }
}
