//! Dockerfile text to stages and typed instructions, in two passes as docker makes them:
//! first the syntax (directives, comments, line continuations, JSON arrays, the per-instruction
//! argument split, buildkit's `parser` package), then the instructions (argument counts, flags,
//! stages, buildkit's `instructions` package). The pass an error comes from decides how docker
//! words it, so `ParseErrorKind` records it.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use super::expand::expand_words;
use super::goish::{go_quote, parse_go_duration, parse_go_int32, suggest};

/// A parsed Dockerfile: its escape character, the ARGs before the first FROM, and the stages.
#[derive(Debug, Clone, PartialEq)]
pub struct Dockerfile {
    /// `\` unless a `# escape=` directive chose `` ` ``.
    pub escape: char,
    /// ARG instructions before the first FROM (always `Instruction::Arg`).
    pub global_args: Vec<Step>,
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// The FROM step (always `Instruction::From`).
    pub from: Step,
    /// The instructions after FROM, in order.
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// 1-based line where the instruction starts.
    pub line: usize,
    /// The instruction as docker prints it in `Step N/M : <original>`: continuation lines
    /// joined (escape and newline removed, the text around them kept as written), comment and
    /// empty lines inside a continuation dropped, surrounding whitespace trimmed.
    pub original: String,
    pub instruction: Instruction,
}

/// RUN, CMD and ENTRYPOINT arguments: a JSON array of strings is the exec form, anything else
/// is the shell form, kept as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdForm {
    Shell(String),
    Exec(Vec<String>),
}

/// COPY and ADD: raw (unexpanded) words; the JSON-array form is accepted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CopyArgs {
    pub sources: Vec<String>,
    pub dest: String,
    /// `--from=` (COPY only).
    pub from: Option<String>,
    pub chown: Option<String>,
    /// `--chmod=`; dockerd's classic builder refuses it when it runs the step, so the
    /// parser leaves that decision to the builder.
    pub chmod: Option<String>,
}

/// What docker stores in `Config.Healthcheck`. Zero or absent durations and retries are
/// `None` (docker stores 0, meaning "the default").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Healthcheck {
    /// `None` for `HEALTHCHECK NONE` (docker's `["NONE"]`); otherwise `["CMD", args…]` for
    /// the exec form or `["CMD-SHELL", "command"]`. `docker_test()` gives docker's value.
    pub test: Option<Vec<String>>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub start_period: Option<Duration>,
    pub start_interval: Option<Duration>,
    pub retries: Option<u32>,
}

impl Healthcheck {
    /// `Config.Healthcheck.Test` as docker stores it.
    pub fn docker_test(&self) -> Vec<String> {
        self.test
            .clone()
            .unwrap_or_else(|| vec!["NONE".to_string()])
    }
}

/// One instruction with raw, unexpanded arguments (the builder expands the ones docker
/// expands, with `expand`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    /// `name` is lowercased, as docker does.
    From {
        image: String,
        name: Option<String>,
        platform: Option<String>,
    },
    Run(CmdForm),
    Cmd(CmdForm),
    Entrypoint(CmdForm),
    /// `ENV k v` (one pair, the value is the rest of the line) or `ENV k=v k2="v 2"`; quotes
    /// are still in place (expansion removes them, as docker's does).
    Env(Vec<(String, String)>),
    Arg(Vec<(String, Option<String>)>),
    Label(Vec<(String, String)>),
    /// Sorted as docker sorts them (as strings, before expansion).
    Expose(Vec<String>),
    Volume(Vec<String>),
    Workdir(String),
    User(String),
    StopSignal(String),
    Maintainer(String),
    /// JSON array only.
    Shell(Vec<String>),
    Healthcheck(Healthcheck),
    /// The trigger as docker stores it in `Config.OnBuild`, e.g. `RUN echo hi`.
    Onbuild(String),
    Copy(CopyArgs),
    Add(CopyArgs),
}

/// Which of docker's passes an error belongs to; it decides docker's wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// The file has no bytes at all.
    Empty,
    /// The syntax pass: docker says `failed to parse Dockerfile: <message>`.
    Syntax,
    /// The instruction pass: docker says `dockerfile parse error on line N: <message>`.
    Instruction,
    /// An instruction before any FROM: docker gives the bare message, without the line.
    NoStage,
    /// An ONBUILD trigger run by a later build (`parse_trigger`): docker gives the bare
    /// message.
    Trigger,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line of the instruction (for `Syntax` errors about the whole file, the number
    /// of lines; 0 for an empty file).
    pub line: usize,
    pub message: String,
    pub kind: ParseErrorKind,
}

impl ParseError {
    fn new(kind: ParseErrorKind, line: usize, message: impl Into<String>) -> Self {
        ParseError {
            line,
            message: message.into(),
            kind,
        }
    }

    /// The error as dockerd's classic builder reports it for a Dockerfile called `file_name`.
    pub fn docker_message(&self, file_name: &str) -> String {
        match self.kind {
            ParseErrorKind::Empty => format!("the Dockerfile ({file_name}) cannot be empty"),
            ParseErrorKind::Syntax => format!("failed to parse {file_name}: {}", self.message),
            ParseErrorKind::Instruction => format!(
                "dockerfile parse error on line {}: {}",
                self.line, self.message
            ),
            ParseErrorKind::NoStage | ParseErrorKind::Trigger => self.message.clone(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.docker_message("Dockerfile"))
    }
}

impl std::error::Error for ParseError {}

const INSTRUCTIONS: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// The BuildKit-only refusal, worded after dockerd's own ("the --mount option requires
/// BuildKit") and saying that skiff has no BuildKit to switch to.
fn needs_buildkit(what: &str) -> String {
    format!("{what} requires BuildKit, which skiff's classic builder does not support")
}

/// Parses a whole Dockerfile.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    if text.is_empty() {
        return Err(ParseError::new(
            ParseErrorKind::Empty,
            0,
            "file with no instructions",
        ));
    }
    let (escape, nodes) = syntax_pass(text)?;
    instruction_pass(escape, nodes)
}

/// Parses one ONBUILD trigger from a base image's `Config.OnBuild`, as dockerd does when a
/// build starts FROM that image: the text alone, with the default escape character.
pub fn parse_trigger(trigger: &str) -> Result<Step, ParseError> {
    let fail = |m: String| ParseError::new(ParseErrorKind::Trigger, 1, m);
    if trigger.is_empty() {
        return Err(fail("file with no instructions".to_string()));
    }
    let (_, mut nodes) = syntax_pass(trigger).map_err(|e| fail(e.message))?;
    let Some(node) = nodes.pop().filter(|_| nodes.is_empty()) else {
        return Err(fail(
            "onbuild trigger should be a single expression".to_string(),
        ));
    };
    let instruction = instruction(&node).map_err(fail)?;
    if matches!(instruction, Instruction::From { .. }) {
        // A FROM is a stage, not a command, to docker; this is its wording.
        return Err(fail(
            "*instructions.Stage is not a command type".to_string(),
        ));
    }
    Ok(Step {
        line: node.line,
        original: node.original.trim().to_string(),
        instruction,
    })
}

// ---------------------------------------------------------------------------------------
// Syntax pass

/// One logical line after the syntax pass: what buildkit's parser keeps in a `Node`.
#[derive(Debug, Clone)]
struct Node {
    line: usize,
    /// Untrimmed joined text (ONBUILD's trigger is cut from it).
    original: String,
    /// The keyword as written.
    cmd: String,
    flags: Vec<String>,
    /// The arguments as buildkit's `nodeArgs` lists them for this instruction.
    args: Vec<String>,
    /// The arguments were a JSON array.
    json: bool,
}

/// Go's `unicode.IsSpace` is Rust's `char::is_whitespace`; buildkit's `reWhitespace` is
/// narrower, `[\t\v\f\r ]`.
fn is_re_whitespace(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ')
}

fn split_re_whitespace(s: &str) -> Vec<String> {
    if s.is_empty() {
        return Vec::new();
    }
    s.split(is_re_whitespace)
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

struct Directives {
    escape: char,
    done: bool,
    seen: HashSet<String>,
}

impl Directives {
    /// Looks at a line for a `# name=value` parser directive; they count only before the
    /// first line that is not one.
    fn check(&mut self, line: &str) -> Result<(), String> {
        if self.done {
            return Ok(());
        }
        let Some(rest) = line.strip_prefix('#') else {
            self.done = true;
            return Ok(());
        };
        let Some((key, value)) = directive_key_value(rest.trim_start()) else {
            self.done = true;
            return Ok(());
        };
        let key = key.to_ascii_lowercase();
        if !matches!(key.as_str(), "syntax" | "escape" | "check") {
            self.done = true;
            return Ok(());
        }
        if !self.seen.insert(key.clone()) {
            return Err(format!("only one {key} parser directive can be used"));
        }
        if key == "escape" {
            self.escape = match value {
                "\\" => '\\',
                "`" => '`',
                _ => {
                    return Err(format!(
                        "invalid escape token '{value}' does not match ` or \\"
                    ))
                }
            };
        }
        Ok(())
    }
}

/// buildkit's `^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$` (Go's `\s` is ASCII, without `\v`).
fn directive_key_value(s: &str) -> Option<(&str, &str)> {
    let is_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\u{c}' | '\r');
    let first = s.chars().next()?;
    if !first.is_ascii_alphabetic() {
        return None;
    }
    let key_len = s
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(s.len());
    let (key, rest) = s.split_at(key_len);
    let rest = rest.trim_start_matches(is_space).strip_prefix('=')?;
    let value = rest.trim_start_matches(is_space).trim_end_matches(is_space);
    if value.is_empty() {
        return None;
    }
    Some((key, value))
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// Removes a trailing escape character (and blanks after it) that continues the line, as
/// buildkit's continuation regex does: an escape preceded by another escape is not one.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    let Some(before) = t.strip_suffix(escape) else {
        return (line, true);
    };
    match before.chars().last() {
        None => ("", false),
        Some(c) if c != escape => (before, false),
        Some(_) => (line, true),
    }
}

fn syntax_pass(text: &str) -> Result<(char, Vec<Node>), ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text
        .split_inclusive('\n')
        .map(|l| l.trim_end_matches(['\r', '\n']));
    let mut directives = Directives {
        escape: '\\',
        done: false,
        seen: HashSet::new(),
    };
    let mut nodes = Vec::new();
    let mut current = 0;
    while let Some(raw) = lines.next() {
        current += 1;
        let start = current;
        let line = raw.trim_start();
        directives
            .check(line)
            .map_err(|m| ParseError::new(ParseErrorKind::Syntax, current, m))?;
        let line = if is_comment(line) { "" } else { line };
        let (first, mut ended) = trim_continuation(line, directives.escape);
        if ended && first.is_empty() {
            continue;
        }
        let mut joined = first.to_string();
        while !ended {
            let Some(raw) = lines.next() else { break };
            current += 1;
            directives
                .check(raw)
                .map_err(|m| ParseError::new(ParseErrorKind::Syntax, current, m))?;
            // Comment and blank lines inside a continuation are dropped (docker warns about
            // the blank ones and will refuse them one day).
            if is_comment(raw) || raw.trim_start().is_empty() {
                continue;
            }
            let (part, end) = trim_continuation(raw, directives.escape);
            ended = end;
            joined.push_str(part);
        }
        let node = node_from_line(&joined, start, directives.escape)
            .map_err(|m| ParseError::new(ParseErrorKind::Syntax, start, m))?;
        if let Some(message) = heredoc_refusal(&node, &joined, directives.escape) {
            return Err(ParseError::new(ParseErrorKind::Instruction, start, message));
        }
        nodes.push(node);
    }
    if nodes.is_empty() {
        return Err(ParseError::new(
            ParseErrorKind::Syntax,
            current,
            "file with no instructions",
        ));
    }
    Ok((directives.escape, nodes))
}

/// buildkit's `splitCommand` and its per-instruction line parsers. The only error this pass
/// gives here is docker's syntax error text.
fn node_from_line(line: &str, start: usize, escape: char) -> Result<Node, String> {
    let trimmed = line.trim();
    let (cmd, rest) = match trimmed.find(is_re_whitespace) {
        Some(i) => {
            let rest = trimmed[i..].trim_start_matches(is_re_whitespace);
            (&trimmed[..i], rest)
        }
        None => (trimmed, ""),
    };
    let (rest, flags) = extract_builder_flags(rest, escape);
    let rest = rest.trim();
    let mut node = Node {
        line: start,
        original: line.to_string(),
        cmd: cmd.to_string(),
        flags,
        args: Vec::new(),
        json: false,
    };
    match cmd.to_ascii_lowercase().as_str() {
        "add" | "copy" | "volume" => match parse_json(rest)? {
            Some(items) => {
                node.args = items;
                node.json = true;
            }
            None => node.args = split_re_whitespace(rest),
        },
        "cmd" | "entrypoint" | "run" | "shell" if !rest.is_empty() => match parse_json(rest)? {
            Some(items) => {
                node.args = items;
                node.json = true;
            }
            None => node.args = vec![rest.to_string()],
        },
        "arg" => node.args = parse_words(rest, escape),
        "env" => node.args = parse_name_val(rest, "ENV", escape)?,
        "label" => node.args = parse_name_val(rest, "LABEL", escape)?,
        "expose" | "from" => node.args = split_re_whitespace(rest),
        "maintainer" | "stopsignal" | "user" | "workdir" if !rest.is_empty() => {
            node.args = vec![rest.to_string()];
        }
        "healthcheck" => {
            let sep = rest.find(char::is_whitespace).unwrap_or(rest.len());
            if sep > 0 {
                let typ = &rest[..sep];
                let cmd_text = rest[sep..].trim_start();
                node.args.push(typ.to_string());
                if !cmd_text.is_empty() {
                    match parse_json(cmd_text)? {
                        Some(items) => {
                            node.args.extend(items);
                            node.json = true;
                        }
                        None => node.args.push(cmd_text.to_string()),
                    }
                }
            }
        }
        "onbuild" if !rest.is_empty() => {
            let child = node_from_line(rest, start, escape)?;
            node.args.push(child.cmd);
            node.args.extend(child.args);
            // Only the heredoc check looks at this: it follows the trigger's form.
            node.json = child.json;
        }
        // Unknown instructions are refused by the instruction pass, as docker does; known
        // ones without arguments by their argument count.
        _ => {}
    }
    Ok(node)
}

/// A JSON array of strings, `None` when the text is not a JSON array at all (shell form);
/// an array holding anything but strings is docker's syntax error.
fn parse_json(rest: &str) -> Result<Option<Vec<String>>, String> {
    let t = rest.trim_start();
    if !t.starts_with('[') {
        return Ok(None);
    }
    let Ok(serde_json::Value::Array(items)) = serde_json::from_str::<serde_json::Value>(t) else {
        return Ok(None);
    };
    items
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            _ => Err(
                "when using JSON array syntax, arrays must be comprised of strings only"
                    .to_string(),
            ),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// buildkit's `extractBuilderFlags`: leading words that start with `--`, with quotes and
/// escapes removed; `--` alone ends them. Returns the rest of the line and the flags.
fn extract_builder_flags(line: &str, escape: char) -> (&str, Vec<String>) {
    let mut flags = Vec::new();
    let mut pos = 0;
    loop {
        let rest = &line[pos..];
        let skipped = rest.len() - rest.trim_start().len();
        pos += skipped;
        let rest = &line[pos..];
        if rest.is_empty() {
            return ("", flags);
        }
        if !rest.starts_with("--") {
            return (rest, flags);
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        let mut blank_ok = false;
        let mut chars = rest.char_indices().peekable();
        let mut end = rest.len();
        while let Some((i, c)) = chars.next() {
            match quote {
                None => {
                    if c.is_whitespace() {
                        end = i;
                        break;
                    }
                    if c == '\'' || c == '"' {
                        quote = Some(c);
                        blank_ok = true;
                        continue;
                    }
                    if c == escape {
                        match chars.next() {
                            Some((_, n)) => word.push(n),
                            None => continue,
                        }
                        continue;
                    }
                    word.push(c);
                }
                Some(q) => {
                    if c == q {
                        quote = None;
                        continue;
                    }
                    if c == escape {
                        match chars.next() {
                            Some((_, n)) => word.push(n),
                            None => quote = None,
                        }
                        continue;
                    }
                    word.push(c);
                }
            }
        }
        pos += end;
        if word == "--" {
            return (&line[pos..], flags);
        }
        if blank_ok || !word.is_empty() {
            flags.push(word);
        }
        if end == rest.len() {
            return ("", flags);
        }
    }
}

/// buildkit's `parseWords`: whitespace-separated words with quotes and escapes kept as
/// written (expansion removes them later).
fn parse_words(rest: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut blank_ok = false;
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            if c == escape && q != '\'' {
                match chars.next() {
                    Some(n) => {
                        word.push(c);
                        word.push(n);
                    }
                    // An escape at the end is dropped.
                    None => quote = None,
                }
                continue;
            }
            word.push(c);
            continue;
        }
        if !in_word {
            if c.is_whitespace() {
                continue;
            }
            in_word = true;
        }
        if c.is_whitespace() {
            if blank_ok || !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            in_word = false;
            blank_ok = false;
            continue;
        }
        if c == '\'' || c == '"' {
            quote = Some(c);
            blank_ok = true;
        }
        if c == escape {
            // An escape at the end is dropped.
            if let Some(n) = chars.next() {
                word.push(c);
                word.push(n);
            }
            continue;
        }
        word.push(c);
    }
    if in_word && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    words
}

/// ENV and LABEL: `KEY value…` (old form, one pair) or `k=v …`. Returns buildkit's triples
/// `[key, value, separator]`.
fn parse_name_val(rest: &str, key: &str, escape: char) -> Result<Vec<String>, String> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
        let Some(i) = rest.find(is_re_whitespace) else {
            return Err(format!("{key} must have two arguments"));
        };
        let value = rest[i..].trim_start_matches(is_re_whitespace);
        return Ok(vec![
            rest[..i].to_string(),
            value.to_string(),
            String::new(),
        ]);
    }
    let mut out = Vec::new();
    for word in &words {
        let Some((k, v)) = word.split_once('=') else {
            return Err(format!(
                "Syntax error - can't find = in {}. Must be of the form: name=value",
                go_quote(word)
            ));
        };
        out.extend([k.to_string(), v.to_string(), "=".to_string()]);
    }
    Ok(out)
}

/// Heredocs (`RUN <<EOF`, `COPY <<EOF /x`) are BuildKit's; they are recognised where buildkit
/// recognises them (RUN, COPY, ADD, also under ONBUILD, not in JSON form) so that their body
/// lines are never taken for instructions.
fn heredoc_refusal(node: &Node, line: &str, escape: char) -> Option<String> {
    let lower = node.cmd.to_ascii_lowercase();
    let target = if lower == "onbuild" {
        node.args.first()?.to_ascii_lowercase()
    } else {
        lower
    };
    if !matches!(target.as_str(), "run" | "copy" | "add") || node.json || !line.contains("<<") {
        return None;
    }
    let words = parse_words(line, escape);
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        i += 1;
        let digits = word.len() - word.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let Some(after) = word[digits..].strip_prefix("<<") else {
            continue;
        };
        let after = after.strip_prefix('-').unwrap_or(after);
        // buildkit keeps `<< EOF` together as one word; so do we.
        let name = if after.is_empty() {
            match words.get(i) {
                Some(next) => {
                    i += 1;
                    next.as_str()
                }
                None => continue,
            }
        } else {
            after
        };
        if name.is_empty() || name.contains('<') {
            continue;
        }
        if let Ok(parts) = expand_words(name, '\\', &|_| None) {
            if parts.len() == 1 {
                return Some(needs_buildkit("a heredoc (<<)"));
            }
        }
    }
    None
}

// ---------------------------------------------------------------------------------------
// Instruction pass

#[derive(Clone, Copy, PartialEq)]
enum FlagKind {
    Bool,
    Str,
    Strs,
}

/// The flags one instruction accepts, and the values given (buildkit's `BFlags`).
struct Flags {
    spec: Vec<(&'static str, FlagKind)>,
    /// (name, value) in the order written; a bool flag's value is "true" or "false".
    used: Vec<(&'static str, String)>,
}

impl Flags {
    fn parse(args: &[String], spec: &[(&'static str, FlagKind)]) -> Result<Flags, String> {
        let mut flags = Flags {
            spec: spec.to_vec(),
            used: Vec::new(),
        };
        for a in args {
            if a == "--" {
                break;
            }
            let Some(body) = a.strip_prefix("--") else {
                return Err(format!("arg should start with -- : {a}"));
            };
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let flag_name = format!("--{name}");
            let Some(&(known, kind)) = spec.iter().find(|(n, _)| *n == name) else {
                let names: Vec<&str> = spec.iter().map(|(n, _)| *n).collect();
                let mut message = format!("unknown flag: {flag_name}");
                if let Some(s) = suggest(name, &names, true) {
                    message.push_str(&format!(" (did you mean {s}?)"));
                }
                return Err(message);
            };
            if kind != FlagKind::Strs && flags.used.iter().any(|(n, _)| *n == known) {
                return Err(format!("duplicate flag specified: {flag_name}"));
            }
            let value = match kind {
                FlagKind::Bool => match value {
                    Some("") => return Err(format!("missing a value on flag: {flag_name}")),
                    None => "true".to_string(),
                    Some(v) if v.eq_ignore_ascii_case("true") => "true".to_string(),
                    Some(v) if v.eq_ignore_ascii_case("false") => "false".to_string(),
                    Some(v) => {
                        return Err(format!(
                            "expecting boolean value for flag {flag_name}, not: {v}"
                        ))
                    }
                },
                FlagKind::Str | FlagKind::Strs => match value {
                    Some(v) => v.to_string(),
                    None => return Err(format!("missing a value on flag: {flag_name}")),
                },
            };
            flags.used.push((known, value));
        }
        Ok(flags)
    }

    /// The last value given for a string flag (`None` when absent).
    fn string(&self, name: &str) -> Option<String> {
        self.used
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    }

    /// The first of `names` that was given a value that does anything (a bool flag set to
    /// false changes nothing and is let through).
    fn first_used(&self, names: &[&str]) -> Option<&'static str> {
        self.used.iter().find_map(|(n, v)| {
            let kind = self.spec.iter().find(|(s, _)| s == n).map(|(_, k)| *k);
            let effective = kind != Some(FlagKind::Bool) || v == "true";
            (names.contains(n) && effective).then_some(*n)
        })
    }
}

fn no_flags(node: &Node) -> Result<(), String> {
    Flags::parse(&node.flags, &[]).map(|_| ())
}

fn at_least_one(cmd: &str) -> String {
    format!("{cmd} requires at least one argument")
}

fn exactly_one(cmd: &str) -> String {
    format!("{cmd} requires exactly one argument")
}

fn cmd_form(node: &Node) -> CmdForm {
    if node.json {
        CmdForm::Exec(node.args.clone())
    } else {
        CmdForm::Shell(node.args.join(" "))
    }
}

fn key_values(node: &Node, cmd: &str) -> Result<Vec<(String, String)>, String> {
    no_flags(node)?;
    if node.args.is_empty() {
        return Err(at_least_one(cmd));
    }
    node.args
        .chunks(3)
        .map(|kv| match kv {
            [k, _, _] if k.is_empty() => Err(format!("{cmd} names can not be blank")),
            [k, v, _] => Ok((k.clone(), v.clone())),
            _ => Err(format!("Bad input to {cmd}, too many arguments")),
        })
        .collect()
}

fn single(node: &Node, cmd: &str) -> Result<String, String> {
    match node.args.as_slice() {
        [one] => {
            no_flags(node)?;
            Ok(one.clone())
        }
        _ => Err(exactly_one(cmd)),
    }
}

fn copy_args(node: &Node, cmd: &str) -> Result<CopyArgs, String> {
    use FlagKind::*;
    let (sources, dest) = match node.args.split_last() {
        Some((dest, sources)) if !sources.is_empty() => (sources.to_vec(), dest.clone()),
        _ => {
            return Err(format!(
                "{cmd} requires at least two arguments, but only one was provided. Destination could not be determined"
            ))
        }
    };
    let (spec, buildkit_only): (&[(&str, FlagKind)], &[&str]) = if cmd == "COPY" {
        (
            &[
                ("chown", Str),
                ("from", Str),
                ("chmod", Str),
                ("link", Bool),
                ("exclude", Strs),
                ("parents", Bool),
            ],
            &["link", "exclude", "parents"],
        )
    } else {
        (
            &[
                ("chown", Str),
                ("chmod", Str),
                ("link", Bool),
                ("keep-git-dir", Bool),
                ("checksum", Str),
                ("unpack", Bool),
                ("exclude", Strs),
            ],
            &["link", "keep-git-dir", "checksum", "unpack", "exclude"],
        )
    };
    let flags = Flags::parse(&node.flags, spec)?;
    if let Some(flag) = flags.first_used(buildkit_only) {
        return Err(needs_buildkit(&format!("the --{flag} option")));
    }
    Ok(CopyArgs {
        sources,
        dest,
        from: flags.string("from"),
        chown: flags.string("chown"),
        chmod: flags.string("chmod"),
    })
}

fn opt_interval(flags: &Flags, name: &str) -> Result<Option<Duration>, String> {
    let Some(value) = flags.string(name).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    match parse_go_duration(&value)? {
        Some(d) if d.is_zero() => Ok(None),
        Some(d) if d >= Duration::from_millis(1) => Ok(Some(d)),
        _ => Err(format!(
            "Interval {} cannot be less than 1ms",
            go_quote(name)
        )),
    }
}

fn healthcheck(node: &Node) -> Result<Healthcheck, String> {
    use FlagKind::Str;
    let Some((typ, args)) = node.args.split_first() else {
        return Err(at_least_one("HEALTHCHECK"));
    };
    let typ = typ.to_uppercase();
    if typ == "NONE" {
        // Docker does not look at the flags of HEALTHCHECK NONE.
        if !args.is_empty() {
            return Err("HEALTHCHECK NONE takes no arguments".to_string());
        }
        return Ok(Healthcheck::default());
    }
    let flags = Flags::parse(
        &node.flags,
        &[
            ("interval", Str),
            ("timeout", Str),
            ("start-period", Str),
            ("start-interval", Str),
            ("retries", Str),
        ],
    )?;
    if typ != "CMD" {
        return Err(format!(
            "Unknown type {} in HEALTHCHECK (try CMD)",
            go_quote(&typ)
        ));
    }
    if args.is_empty() {
        return Err("Missing command after HEALTHCHECK CMD".to_string());
    }
    let test = if node.json {
        std::iter::once("CMD".to_string())
            .chain(args.iter().cloned())
            .collect()
    } else {
        vec!["CMD-SHELL".to_string(), args.join(" ")]
    };
    let mut hc = Healthcheck {
        test: Some(test),
        interval: opt_interval(&flags, "interval")?,
        timeout: opt_interval(&flags, "timeout")?,
        start_period: opt_interval(&flags, "start-period")?,
        start_interval: opt_interval(&flags, "start-interval")?,
        retries: None,
    };
    if let Some(value) = flags.string("retries").filter(|v| !v.is_empty()) {
        let n = parse_go_int32(&value)?;
        if n < 0 {
            return Err(format!("--retries cannot be negative ({n})"));
        }
        hc.retries = u32::try_from(n).ok().filter(|n| *n > 0);
    }
    Ok(hc)
}

fn from(node: &Node) -> Result<Instruction, String> {
    let (image, name) = match node.args.as_slice() {
        [image, kw, name] if kw.eq_ignore_ascii_case("as") => {
            let lower = name.to_lowercase();
            let valid = lower.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && lower.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')
                });
            if !valid {
                return Err(format!(
                    "invalid name for build stage: {}, name can't start with a number or contain symbols",
                    go_quote(name)
                ));
            }
            (image, Some(lower))
        }
        [image] => (image, None),
        _ => return Err("FROM requires either one or three arguments".to_string()),
    };
    let flags = Flags::parse(&node.flags, &[("platform", FlagKind::Str)])?;
    Ok(Instruction::From {
        image: image.clone(),
        name,
        platform: flags.string("platform"),
    })
}

fn onbuild(node: &Node) -> Result<Instruction, String> {
    let Some(trigger) = node.args.first() else {
        return Err(at_least_one("ONBUILD"));
    };
    no_flags(node)?;
    let trigger = trigger.trim().to_uppercase();
    match trigger.as_str() {
        "ONBUILD" => return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".to_string()),
        "MAINTAINER" | "FROM" => {
            return Err(format!("{trigger} isn't allowed as an ONBUILD trigger"))
        }
        _ => {}
    }
    // Docker cuts `(?i)^\s*ONBUILD\s*` from the original text and keeps the rest as is.
    let is_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\u{c}' | '\r');
    let text = node.original.trim_start_matches(is_space);
    let text = match text.get(..7) {
        Some(kw) if kw.eq_ignore_ascii_case("onbuild") => &text[7..],
        _ => text,
    };
    Ok(Instruction::Onbuild(
        text.trim_start_matches(is_space).to_string(),
    ))
}

fn instruction(node: &Node) -> Result<Instruction, String> {
    use FlagKind::*;
    let lower = node.cmd.to_ascii_lowercase();
    Ok(match lower.as_str() {
        "env" => Instruction::Env(key_values(node, "ENV")?),
        "label" => Instruction::Label(key_values(node, "LABEL")?),
        "maintainer" => Instruction::Maintainer(single(node, "MAINTAINER")?),
        "workdir" => Instruction::Workdir(single(node, "WORKDIR")?),
        "user" => Instruction::User(single(node, "USER")?),
        "stopsignal" => Instruction::StopSignal(single(node, "STOPSIGNAL")?),
        "add" => Instruction::Add(copy_args(node, "ADD")?),
        "copy" => Instruction::Copy(copy_args(node, "COPY")?),
        "from" => from(node)?,
        "onbuild" => onbuild(node)?,
        "run" => {
            let flags = Flags::parse(
                &node.flags,
                &[
                    ("mount", Strs),
                    ("network", Str),
                    ("security", Str),
                    ("device", Strs),
                ],
            )?;
            // dockerd's classic builder takes no RUN flag at all.
            if let Some(flag) = flags.used.first() {
                return Err(needs_buildkit(&format!("the --{} option", flag.0)));
            }
            Instruction::Run(cmd_form(node))
        }
        "cmd" => {
            no_flags(node)?;
            Instruction::Cmd(cmd_form(node))
        }
        "entrypoint" => {
            no_flags(node)?;
            Instruction::Entrypoint(cmd_form(node))
        }
        "healthcheck" => Instruction::Healthcheck(healthcheck(node)?),
        "expose" => {
            if node.args.is_empty() {
                return Err(at_least_one("EXPOSE"));
            }
            no_flags(node)?;
            let mut ports = node.args.clone();
            ports.sort();
            Instruction::Expose(ports)
        }
        "volume" => {
            if node.args.is_empty() {
                return Err(at_least_one("VOLUME"));
            }
            no_flags(node)?;
            let mut volumes = Vec::new();
            for v in &node.args {
                let v = v.trim();
                if v.is_empty() {
                    return Err("VOLUME specified can not be an empty string".to_string());
                }
                volumes.push(v.to_string());
            }
            Instruction::Volume(volumes)
        }
        "arg" => {
            if node.args.is_empty() {
                return Err(at_least_one("ARG"));
            }
            no_flags(node)?;
            let mut pairs = Vec::new();
            for arg in &node.args {
                match arg.split_once('=') {
                    Some(("", _)) => return Err("ARG names can not be blank".to_string()),
                    Some((k, v)) => pairs.push((k.to_string(), Some(v.to_string()))),
                    None => pairs.push((arg.clone(), None)),
                }
            }
            Instruction::Arg(pairs)
        }
        "shell" => {
            no_flags(node)?;
            if node.args.is_empty() {
                return Err(at_least_one("SHELL"));
            }
            if !node.json {
                return Err("SHELL requires the arguments to be in JSON form".to_string());
            }
            Instruction::Shell(node.args.clone())
        }
        _ => {
            let mut message = format!("unknown instruction: {}", node.cmd);
            if let Some(s) = suggest(&node.cmd, &INSTRUCTIONS, false) {
                message.push_str(&format!(" (did you mean {s}?)"));
            }
            return Err(message);
        }
    })
}

fn instruction_pass(escape: char, nodes: Vec<Node>) -> Result<Dockerfile, ParseError> {
    let mut df = Dockerfile {
        escape,
        global_args: Vec::new(),
        stages: Vec::new(),
    };
    for node in nodes {
        let instruction = instruction(&node)
            .map_err(|m| ParseError::new(ParseErrorKind::Instruction, node.line, m))?;
        let step = Step {
            line: node.line,
            original: node.original.trim().to_string(),
            instruction,
        };
        match (&step.instruction, df.stages.last_mut()) {
            (Instruction::From { .. }, _) => df.stages.push(Stage {
                from: step,
                steps: Vec::new(),
            }),
            (Instruction::Arg(_), None) => df.global_args.push(step),
            (_, Some(stage)) => stage.steps.push(step),
            (_, None) => {
                return Err(ParseError::new(
                    ParseErrorKind::NoStage,
                    node.line,
                    "no build stage in current context",
                ))
            }
        }
    }
    Ok(df)
}
