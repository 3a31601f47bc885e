//! Docker's shell-word processing for the builder (buildkit's `shell.Lex`, which dockerd's
//! classic builder uses): `$v`, `${v}`, `${v:-d}`, `${v-d}`, `${v:+a}`, `${v+a}`, `${v:?msg}`,
//! `${v?msg}`, `${v#pat}`, `${v##pat}`, `${v%pat}`, `${v%%pat}`, `${v/pat/repl}`,
//! `${v//pat/repl}`; quotes removed (`'…'` literal, `"…"` expands); the escape character
//! escapes the next character outside quotes and only `"`, `$` and itself inside double quotes.
//!
//! The builder applies this to ADD, COPY, ENV, EXPOSE, FROM, LABEL, STOPSIGNAL, USER, VOLUME,
//! WORKDIR and ARG values, never to RUN, CMD or ENTRYPOINT (the shell does that).
//!
//! Where we differ from buildkit on purpose: buildkit (since dockerfile 1.10) shares one
//! word buffer between a word and a `${v:-…}` nested in it, so `ProcessWords("a${x:-b}")`
//! loses the `a`; `expand_words` keeps it. Go's regexp `ReplaceAllString` expands `$1` in a
//! `${v/pat/repl}` replacement; we insert the replacement as written (a pattern has no groups).

use std::fmt;

use super::goish::go_quote;

/// A word docker's builder could not expand. Displays as docker does:
/// `failed to process "word": message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandError {
    pub word: String,
    pub message: String,
}

impl fmt::Display for ExpandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "failed to process {}: {}",
            go_quote(&self.word),
            self.message
        )
    }
}

impl std::error::Error for ExpandError {}

/// One word expanded: variables substituted and quotes removed, whitespace kept (docker's
/// `ProcessWord`). Unset variables expand to the empty string.
pub fn expand_word(
    word: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    let mut lexer = Lexer::new(word, escape, lookup);
    lexer
        .process_stop_on(None, false)
        .map(|(result, _)| result)
        .map_err(|message| ExpandError {
            word: word.to_string(),
            message,
        })
}

/// Text expanded and split on whitespace that was not quoted (docker's `ProcessWords`, used for
/// EXPOSE): `EXPOSE $PORTS` with `PORTS="80 443"` gives two words. An empty quoted word is
/// dropped, as docker drops it.
pub fn expand_words(
    text: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, ExpandError> {
    let mut lexer = Lexer::new(text, escape, lookup);
    lexer
        .process_stop_on(None, false)
        .map(|(_, words)| words)
        .map_err(|message| ExpandError {
            word: text.to_string(),
            message,
        })
}

/// Words as buildkit's `wordsStruct` builds them: text that came from a variable or plain
/// characters splits on whitespace, text from quotes never does.
#[derive(Default)]
struct Words {
    buf: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if c.is_whitespace() {
            if self.in_word && !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(c);
        }
    }

    fn add_raw_char(&mut self, c: char) {
        self.buf.push(c);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        for c in s.chars() {
            self.add_char(c);
        }
    }

    fn add_raw_string(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(std::mem::take(&mut self.buf));
        }
        self.words
    }
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    /// Inside `${v#…}`, `${v%…}` and `${v/…/…}` escapes are kept, because the pattern
    /// matcher interprets them.
    raw_escapes: bool,
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Lexer<'a> {
    fn new(text: &str, escape: char, lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Lexer {
            chars: text.chars().collect(),
            pos: 0,
            escape,
            raw_escapes: false,
            lookup,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Processes up to `stop` (consumed) or the end when `stop` is None; the expanded text and
    /// its words.
    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), String> {
        let saved = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let out = self.process_stop_on_inner(stop);
        self.raw_escapes = saved;
        out
    }

    fn process_stop_on_inner(
        &mut self,
        stop: Option<char>,
    ) -> Result<(String, Vec<String>), String> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.pos += 1;
                return Ok((result, words.finish()));
            }
            match c {
                '$' => {
                    let value = self.process_dollar()?;
                    result.push_str(&value);
                    words.add_string(&value);
                }
                '<' => {
                    let text = self.process_possible_heredoc();
                    result.push_str(&text);
                    words.add_raw_string(&text);
                }
                '\'' => {
                    let text = self.process_single_quote()?;
                    result.push_str(&text);
                    words.add_raw_string(&text);
                }
                '"' => {
                    let text = self.process_double_quote()?;
                    result.push_str(&text);
                    words.add_raw_string(&text);
                }
                _ => {
                    self.pos += 1;
                    if c == self.escape {
                        if self.raw_escapes {
                            words.add_raw_char(c);
                            result.push(c);
                        }
                        // An escape at the very end is dropped.
                        let Some(escaped) = self.next() else { break };
                        words.add_raw_char(escaped);
                        result.push(escaped);
                    } else {
                        words.add_char(c);
                        result.push(c);
                    }
                }
            }
        }
        if let Some(stop) = stop {
            return Err(format!(
                "unexpected end of statement while looking for matching {stop}"
            ));
        }
        Ok((result, words.finish()))
    }

    fn process_single_quote(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .to_string(),
                    )
                }
                Some('\'') => return Ok(out),
                Some(c) => out.push(c),
            }
        }
    }

    fn process_double_quote(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .to_string(),
                    )
                }
                Some('"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some('$') => out.push_str(&self.process_dollar()?),
                Some(c) => {
                    self.pos += 1;
                    let mut c = c;
                    if c == self.escape {
                        if self.raw_escapes {
                            out.push(c);
                        }
                        match self.peek() {
                            // The escape before the end is dropped; the loop then reports
                            // the missing quote.
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.escape => {
                                self.pos += 1;
                                c = n;
                            }
                            // Any other escaped character keeps its escape.
                            Some(_) => {}
                        }
                    }
                    out.push(c);
                }
            }
        }
    }

    /// `<<` followed by blanks is passed through whole, so that a heredoc marker stays one
    /// word as buildkit keeps it.
    fn process_possible_heredoc(&mut self) -> String {
        self.pos += 1;
        if self.peek() != Some('<') {
            return "<".to_string();
        }
        self.pos += 1;
        let mut out = "<<".to_string();
        while let Some(c @ (' ' | '\t' | '\r')) = self.peek() {
            out.push(c);
            self.pos += 1;
        }
        out
    }

    fn get_env(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
    }

    fn process_dollar(&mut self) -> Result<String, String> {
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(self.get_env(&name).unwrap_or_default());
        }
        self.pos += 1;
        match self.peek() {
            None => return Err("syntax error: missing '}'".to_string()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".to_string()),
            Some(_) => {}
        }
        let name = self.process_name();
        // Go's scanner returns EOF (-1) here, which prints as U+FFFD in the message.
        let mut modifier = self.next().unwrap_or('\u{fffd}');
        let mut shown = modifier.to_string();
        let mut null_is_unset = false;
        match modifier {
            '}' => return Ok(self.get_env(&name).unwrap_or_default()),
            '/' => return self.process_replace(&name),
            ':' => {
                null_is_unset = true;
                modifier = self.next().unwrap_or('\u{fffd}');
                shown.push(modifier);
            }
            '+' | '-' | '?' | '#' | '%' => {}
            _ => return Err(format!("unsupported modifier ({shown}) in substitution")),
        }
        let raw = modifier == '#' || modifier == '%';
        if null_is_unset && raw {
            return Err(format!("unsupported modifier ({shown}) in substitution"));
        }
        let word = match self.process_stop_on(Some('}'), raw) {
            Ok((word, _)) => word,
            Err(e) => {
                if self.peek().is_none() {
                    return Err("syntax error: missing '}'".to_string());
                }
                return Err(e);
            }
        };
        let value = self.get_env(&name);
        let empty_or_unset = match &value {
            None => true,
            Some(v) => null_is_unset && v.is_empty(),
        };
        match modifier {
            '-' => Ok(if empty_or_unset {
                word
            } else {
                value.unwrap_or_default()
            }),
            '+' => Ok(if empty_or_unset { String::new() } else { word }),
            '?' => match value {
                None => Err(format!(
                    "{name}: {}",
                    if word.is_empty() {
                        "is not allowed to be unset"
                    } else {
                        &word
                    }
                )),
                Some(v) if null_is_unset && v.is_empty() => Err(format!(
                    "{name}: {}",
                    if word.is_empty() {
                        "is not allowed to be empty"
                    } else {
                        &word
                    }
                )),
                Some(v) => Ok(v),
            },
            '#' | '%' => {
                let value = value.unwrap_or_default();
                let (greedy, pattern) = match word.strip_prefix(modifier) {
                    Some(rest) => (true, rest.to_string()),
                    None => (false, word.clone()),
                };
                let tokens = compile_pattern(&pattern)?;
                if modifier == '#' {
                    Ok(trim_prefix(&tokens, &value, greedy))
                } else {
                    Ok(trim_suffix(&tokens, &value, greedy))
                }
            }
            _ => Err(format!("unsupported modifier ({shown}) in substitution")),
        }
    }

    fn process_replace(&mut self, name: &str) -> Result<String, String> {
        let replace_all = self.peek() == Some('/');
        if replace_all {
            self.pos += 1;
        }
        let pattern = match self.process_stop_on(Some('/'), true) {
            Ok((p, _)) => p,
            Err(e) => {
                if self.peek().is_none() {
                    return Err("syntax error: missing '/' in ${}".to_string());
                }
                return Err(e);
            }
        };
        let replacement = match self.process_stop_on(Some('}'), true) {
            Ok((r, _)) => r,
            Err(e) => {
                if self.peek().is_none() {
                    return Err("syntax error: missing '}'".to_string());
                }
                return Err(e);
            }
        };
        let value = self.get_env(name).unwrap_or_default();
        let tokens = compile_pattern(&pattern)?;
        let value: Vec<char> = value.chars().collect();
        let find_from = |from: usize| {
            (from..=value.len())
                .find_map(|start| match_at(&tokens, &value, start, true).map(|end| (start, end)))
        };
        let mut out = String::new();
        if !replace_all {
            match find_from(0) {
                Some((start, end)) => {
                    out.extend(&value[..start]);
                    out.push_str(&replacement);
                    out.extend(&value[end..]);
                }
                None => out.extend(&value),
            }
            return Ok(out);
        }
        // Go's ReplaceAllString: no replacement for an empty match right after a match, and
        // the search always moves on by at least one character.
        let mut last_match_end = 0;
        let mut search = 0;
        while search <= value.len() {
            let Some((start, end)) = find_from(search) else {
                break;
            };
            out.extend(&value[last_match_end..start]);
            if end > last_match_end || start == 0 {
                out.push_str(&replacement);
            }
            last_match_end = end;
            search = if search + 1 > end { search + 1 } else { end };
        }
        out.extend(&value[last_match_end.min(value.len())..]);
        Ok(out)
    }

    /// A variable name: letters, digits and `_`; or a run of digits (`$1`); or one of the
    /// shell's special parameters (`$@`, `$$`…), which the builder never sets.
    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && c.is_ascii_digit() {
                while let Some(d) = self.peek().filter(|d| d.is_ascii_digit()) {
                    name.push(d);
                    self.pos += 1;
                }
                return name;
            }
            if name.is_empty() && matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.pos += 1;
                return c.to_string();
            }
            if !c.is_alphanumeric() && c != '_' {
                break;
            }
            name.push(c);
            self.pos += 1;
        }
        name
    }
}

/// A shell pattern as buildkit turns it into a regular expression: `*` any run, `?` one
/// character (neither crosses a newline, as Go's `.` does not), `\` quotes `*`, `?` or `\`.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Star,
    Any,
    Lit(char),
}

fn compile_pattern(pattern: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => toks.push(Tok::Star),
            '?' => toks.push(Tok::Any),
            '\\' => match chars.get(i) {
                // `\}` and `\/` only kept the delimiter out of the way.
                Some('}' | '/') => {}
                Some(&n @ ('*' | '?' | '\\')) => {
                    toks.push(Tok::Lit(n));
                    i += 1;
                }
                other => {
                    let shown = other.map_or(String::new(), |c| c.to_string());
                    return Err(format!(
                        "invalid pattern ({pattern}) in substitution: invalid escape '\\{shown}'"
                    ));
                }
            },
            c => toks.push(Tok::Lit(c)),
        }
    }
    Ok(toks)
}

/// Where a match of `toks` starting at `start` ends, trying the alternatives in the order a
/// backtracking (leftmost-first) regex engine prefers them: the longest run for each `*` first
/// when greedy, the shortest first otherwise.
fn match_at(toks: &[Tok], s: &[char], start: usize, greedy: bool) -> Option<usize> {
    let Some((tok, rest)) = toks.split_first() else {
        return Some(start);
    };
    match tok {
        Tok::Lit(c) => {
            if s.get(start) == Some(c) {
                match_at(rest, s, start + 1, greedy)
            } else {
                None
            }
        }
        Tok::Any => match s.get(start) {
            Some(c) if *c != '\n' => match_at(rest, s, start + 1, greedy),
            _ => None,
        },
        Tok::Star => {
            let max = s[start..].iter().take_while(|c| **c != '\n').count();
            if greedy {
                (0..=max)
                    .rev()
                    .find_map(|n| match_at(rest, s, start + n, greedy))
            } else {
                (0..=max).find_map(|n| match_at(rest, s, start + n, greedy))
            }
        }
    }
}

fn trim_prefix(toks: &[Tok], value: &str, greedy: bool) -> String {
    let chars: Vec<char> = value.chars().collect();
    match match_at(toks, &chars, 0, greedy) {
        Some(end) => chars[end..].iter().collect(),
        None => value.to_string(),
    }
}

/// The shortest or longest matching suffix is the matching prefix of the reversed value
/// under the reversed pattern, which is how buildkit finds it too.
fn trim_suffix(toks: &[Tok], value: &str, greedy: bool) -> String {
    let reversed_toks: Vec<Tok> = toks.iter().rev().cloned().collect();
    let reversed: String = value.chars().rev().collect();
    trim_prefix(&reversed_toks, &reversed, greedy)
        .chars()
        .rev()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "A" => Some("alpha".into()),
            "EMPTY" => Some(String::new()),
            "SPACE" => Some("abc  def".into()),
            "LEADING" => Some("  ab c".into()),
            "PATH_" => Some("/usr/local/bin/app.tar.gz".into()),
            "é" => Some("accent".into()),
            _ => None,
        }
    }

    fn w(word: &str) -> Result<String, String> {
        expand_word(word, '\\', &env).map_err(|e| e.message)
    }

    fn ws(text: &str) -> Vec<String> {
        match expand_words(text, '\\', &env) {
            Ok(words) => words,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    #[test]
    fn plain_and_braced_variables() {
        assert_eq!(w("$A"), Ok("alpha".into()));
        assert_eq!(w("${A}"), Ok("alpha".into()));
        assert_eq!(w("x${A}y"), Ok("xalphay".into()));
        assert_eq!(w("$A.txt"), Ok("alpha.txt".into()));
        assert_eq!(w("$UNSET"), Ok(String::new()));
        assert_eq!(w("a$"), Ok("a$".into()));
        assert_eq!(w("$é"), Ok("accent".into()));
    }

    #[test]
    fn default_alternative_and_error_modifiers() {
        assert_eq!(w("${UNSET:-d}"), Ok("d".into()));
        assert_eq!(w("${EMPTY:-d}"), Ok("d".into()));
        assert_eq!(w("${EMPTY-d}"), Ok(String::new()));
        assert_eq!(w("${UNSET-d}"), Ok("d".into()));
        assert_eq!(w("${A:-d}"), Ok("alpha".into()));
        assert_eq!(w("${A:+set}"), Ok("set".into()));
        assert_eq!(w("${EMPTY:+set}"), Ok(String::new()));
        assert_eq!(w("${EMPTY+set}"), Ok("set".into()));
        assert_eq!(w("${UNSET+set}"), Ok(String::new()));
        assert_eq!(w("${UNSET:-${A}}"), Ok("alpha".into()));
        assert_eq!(w("${A:?oops}"), Ok("alpha".into()));
        assert_eq!(w("${UNSET:?need it}"), Err("UNSET: need it".into()));
        assert_eq!(
            w("${UNSET?}"),
            Err("UNSET: is not allowed to be unset".into())
        );
        assert_eq!(
            w("${EMPTY:?}"),
            Err("EMPTY: is not allowed to be empty".into())
        );
        assert_eq!(w("${EMPTY?}"), Ok(String::new()));
    }

    #[test]
    fn pattern_modifiers() {
        assert_eq!(w("${PATH_#*/}"), Ok("usr/local/bin/app.tar.gz".into()));
        assert_eq!(w("${PATH_##*/}"), Ok("app.tar.gz".into()));
        assert_eq!(w("${PATH_%.*}"), Ok("/usr/local/bin/app.tar".into()));
        assert_eq!(w("${PATH_%%.*}"), Ok("/usr/local/bin/app".into()));
        assert_eq!(w("${A/a/A}"), Ok("Alpha".into()));
        assert_eq!(w("${A//a/A}"), Ok("AlphA".into()));
        assert_eq!(w("${A/l?h/_}"), Ok("a_a".into()));
        assert_eq!(w("${A/x/y}"), Ok("alpha".into()));
        assert_eq!(
            w("${A:#a}"),
            Err("unsupported modifier (:#) in substitution".into())
        );
        assert_eq!(
            w("${A#\\x}"),
            Err("invalid pattern (\\x) in substitution: invalid escape '\\x'".into())
        );
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(w("'$A'"), Ok("$A".into()));
        assert_eq!(w("\"$A\""), Ok("alpha".into()));
        assert_eq!(w("\\$A"), Ok("$A".into()));
        assert_eq!(w("\"\\$A\""), Ok("$A".into()));
        assert_eq!(w("\"a\\tb\""), Ok("a\\tb".into()));
        assert_eq!(w("'a\\b'"), Ok("a\\b".into()));
        assert_eq!(w("a\\ b"), Ok("a b".into()));
        assert_eq!(w("ab\\"), Ok("ab".into()));
        assert_eq!(w("hello\" there  \""), Ok("hello there  ".into()));
    }

    #[test]
    fn backtick_escape_leaves_backslash_literal() {
        let bt = |s: &str| expand_word(s, '`', &env).map_err(|e| e.message);
        assert_eq!(bt("C:\\dir\\$A"), Ok("C:\\dir\\alpha".into()));
        assert_eq!(bt("`$A"), Ok("$A".into()));
        assert_eq!(bt("\"`\"q\""), Ok("\"q".into()));
    }

    #[test]
    fn positional_and_special_parameters_are_unset() {
        assert_eq!(w("$1x"), Ok("x".into()));
        assert_eq!(w("a$$b"), Ok("ab".into()));
        assert_eq!(w("${1}"), Ok(String::new()));
    }

    #[test]
    fn malformed_substitutions_fail_with_docker_text() {
        assert_eq!(w("${"), Err("syntax error: missing '}'".into()));
        assert_eq!(w("${}"), Err("syntax error: bad substitution".into()));
        assert_eq!(w("${:a}"), Err("syntax error: bad substitution".into()));
        assert_eq!(w("${A:-x"), Err("syntax error: missing '}'".into()));
        assert_eq!(
            w("${A"),
            Err("unsupported modifier (\u{fffd}) in substitution".into())
        );
        assert_eq!(
            w("${A!}"),
            Err("unsupported modifier (!) in substitution".into())
        );
        assert_eq!(
            w("'abc"),
            Err("unexpected end of statement while looking for matching single-quote".into())
        );
        assert_eq!(
            w("\"abc"),
            Err("unexpected end of statement while looking for matching double-quote".into())
        );
        let err = expand_word("${", '\\', &env).err();
        assert_eq!(
            err.map(|e| e.to_string()).as_deref(),
            Some("failed to process \"${\": syntax error: missing '}'")
        );
    }

    /// Cases from buildkit's shell/envVarTest, with its environment (PWD=/home, SHELL=bash,
    /// NULL=""); `None` is an error.
    #[test]
    fn buildkit_env_var_cases() {
        let env = |name: &str| match name {
            "PWD" => Some("/home".to_string()),
            "SHELL" => Some("bash".to_string()),
            "NULL" => Some(String::new()),
            _ => None,
        };
        let cases: &[(&str, Option<&str>)] = &[
            ("he'll'o", Some("hello")),
            ("he'llo", None),
            ("he\\'llo", Some("he'llo")),
            ("he\\\\'llo", None),
            ("abc\\tdef", Some("abctdef")),
            ("\"abc\\tdef\"", Some("abc\\tdef")),
            ("\"abc\\\\tdef\"", Some("abc\\tdef")),
            ("hello\\\\", Some("hello\\")),
            ("\"hello\\\"", None),
            ("'hello\\'", Some("hello\\")),
            ("'hello\\\\there'", Some("hello\\\\there")),
            ("\"''\"", Some("''")),
            ("$.", Some("$.")),
            ("he$.x", Some("he$.x")),
            ("he$pwd.", Some("he.")),
            ("he\\\\$PWD", Some("he\\/home")),
            ("\"he\\\\$PWD\"", Some("he\\/home")),
            ("\\${}aaa", Some("${}aaa")),
            ("he${}xx", None),
            ("he${.}", None),
            ("he${XXX:-${PWD:-yyy}}xx", Some("he/homexx")),
            ("he${XXX:YYY}", None),
            ("he${XXX?}", None),
            ("he${PWD:?}", Some("he/home")),
            ("he${NULL?}", Some("he")),
            ("he${NULL:?}", None),
            ("he${PWD:+${SHELL}}xx", Some("hebashxx")),
            ("\"he'$PWD'\"", Some("he'/home'")),
            ("'\\$PWD'", Some("\\$PWD")),
            ("he${PWD", None),
            ("he${PWD:=000}xx", None),
            ("he${PWD:+${PWD}:}xx", Some("he/home:xx")),
            ("he${XXX:-\\$PWD:}xx", Some("he$PWD:xx")),
            ("he${XXX:-\\${PWD}z}xx", Some("he${PWDz}xx")),
            ("안'녕'하세요", Some("안녕하세요")),
            ("${{aaa}", None),
            ("${aaa}}", Some("}")),
            ("${aaa:-bbb}}", Some("bbb}")),
            ("${aaa:-bbb ${foo}", None),
            ("${aaa:-bbb {foo}", Some("bbb {foo")),
            ("${:-bbb}", None),
            ("${999:-bbb}aaa", Some("bbbaaa")),
            ("$001aaa", Some("aaa")),
            ("$@@@", Some("@@")),
            ("${@:-bbb}aaa", Some("bbbaaa")),
            ("${#:-bbb}", Some("bbb")),
            ("${$:+bbb}", Some("")),
            ("${0:-bbb}", Some("bbb")),
        ];
        for (input, want) in cases {
            let got = expand_word(input, '\\', &env).ok();
            assert_eq!(got.as_deref(), *want, "{input}");
        }
    }

    #[test]
    fn words_split_like_process_words() {
        // Cases from buildkit's shell/wordsTest.
        assert_eq!(ws("hello${SPACE}bye"), ["helloabc", "defbye"]);
        assert_eq!(ws("hello\"${SPACE}\"bye"), ["helloabc  defbye"]);
        assert_eq!(ws("hello \"${SPACE}\"bye"), ["hello", "abc  defbye"]);
        assert_eq!(ws("hello${LEADING}def"), ["hello", "ab", "cdef"]);
        assert_eq!(ws("hello there     "), ["hello", "there"]);
        assert_eq!(ws("hello\\ there"), ["hello there"]);
        assert_eq!(ws("hello\\\" there"), ["hello\"", "there"]);
        assert_eq!(ws("hello'\\there'"), ["hello\\there"]);
        assert_eq!(ws("80 ${UNSET} \"\" 443"), ["80", "443"]);
        assert_eq!(ws("a${UNSET:-b}c"), ["abc"]);
    }
}
