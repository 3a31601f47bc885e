//! `.dockerignore` as docker's CLI reads and applies it: buildkit's `dockerignore.ReadAll`
//! for the file, moby's `patternmatcher` for the patterns (their match kinds, `**`, the
//! `!` exceptions and the parent-directory rules), word for word in behaviour, because a
//! context that differs from docker's builds a different image.

use crate::gopath::clean as go_clean;

/// The patterns of a `.dockerignore` file, as buildkit's `ReadAll` returns them: `#`
/// comment lines (only at the start of the line) and blank lines dropped, a UTF-8 BOM on
/// the first line dropped, surrounding space trimmed, each pattern cleaned (`filepath.Clean`)
/// with a leading `/` removed, `!` kept in front.
pub fn read_patterns(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = if i == 0 {
            line.strip_prefix('\u{feff}').unwrap_or(line)
        } else {
            line
        };
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut p = String::new();
        if !pattern.is_empty() {
            p = go_clean(pattern);
            if p.len() > 1 && p.starts_with('/') {
                p.remove(0);
            }
        }
        out.push(if invert { format!("!{p}") } else { p });
    }
    out
}

/// A bad pattern, in Go's words (`filepath.ErrBadPattern`, or the lone `!`).
#[derive(Debug, Clone, PartialEq)]
pub struct PatternError(pub String);

impl std::fmt::Display for PatternError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad_pattern() -> PatternError {
    PatternError("syntax error in pattern".into())
}

/// One element of a compiled pattern (what moby's regexp would hold).
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Lit(char),
    /// `*`: anything but `/`.
    Star,
    /// `?`: one character but `/`.
    One,
    /// `**` followed by more: `(.*/)?`.
    AnyDirs,
    /// `**` at the end after a wildcard: `.*`.
    AnyAll,
    /// `[…]`: (negated, single characters, ranges).
    Class(bool, Vec<(char, char)>),
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Exact,
    /// `dir/**`: the pattern without its trailing `**` is a prefix.
    Prefix,
    /// `**/x`, `**x`: the pattern without its leading `**` is a suffix.
    Suffix,
    Regexp(Vec<Tok>),
}

#[derive(Debug, Clone)]
pub struct Pattern {
    cleaned: String,
    exclusion: bool,
    kind: Kind,
}

impl Pattern {
    pub fn exclusion(&self) -> bool {
        self.exclusion
    }
    /// The cleaned pattern without its `!`.
    pub fn text(&self) -> &str {
        &self.cleaned
    }

    fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact => path == self.cleaned,
            Kind::Prefix => path.starts_with(&self.cleaned[..self.cleaned.len() - 2]),
            Kind::Suffix => {
                let suffix = &self.cleaned[2..];
                if path.ends_with(suffix) {
                    return true;
                }
                // `**/foo` matches "foo".
                suffix.starts_with('/') && path == &suffix[1..]
            }
            Kind::Regexp(toks) => {
                let chars: Vec<char> = path.chars().collect();
                match_toks(toks, &chars)
            }
        }
    }
}

/// moby's `PatternMatcher`: patterns in order, later ones overriding earlier ones.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    patterns: Vec<Pattern>,
    exclusions: bool,
}

/// Which patterns matched a directory (moby's `MatchInfo`), handed to its children.
#[derive(Debug, Clone, Default)]
pub struct MatchInfo(Vec<bool>);

impl Matcher {
    /// `patternmatcher.New`: trimmed, empty ones dropped, cleaned, syntax-checked.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Matcher, PatternError> {
        let mut m = Matcher::default();
        for p in patterns {
            let p = p.as_ref().trim();
            if p.is_empty() {
                continue;
            }
            let mut p = go_clean(p);
            let mut exclusion = false;
            if let Some(rest) = p.strip_prefix('!') {
                if rest.is_empty() {
                    return Err(PatternError("illegal exclusion pattern: \"!\"".into()));
                }
                exclusion = true;
                m.exclusions = true;
                p = rest.to_string();
            }
            check_syntax(&p)?;
            let kind = compile(&p)?;
            m.patterns.push(Pattern {
                cleaned: p,
                exclusion,
                kind,
            });
        }
        Ok(m)
    }

    pub fn exclusions(&self) -> bool {
        self.exclusions
    }

    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// The deprecated `Matches` docker's CLI still uses to decide whether the Dockerfile and
    /// `.dockerignore` need re-including: only the parent as deep as the pattern is tried.
    pub fn matches_legacy(&self, file: &str) -> bool {
        let file = go_clean(file);
        if file == "." {
            return false;
        }
        let parent = go_dir(&file);
        let parent_dirs: Vec<&str> = parent.split('/').collect();
        let mut matched = false;
        for p in &self.patterns {
            if p.exclusion != matched {
                continue;
            }
            let mut m = p.matches(&file);
            let depth = p.cleaned.split('/').count();
            if !m && parent != "." && depth <= parent_dirs.len() {
                m = p.matches(&parent_dirs[..depth].join("/"));
            }
            if m {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// `MatchesUsingParentResults`, as go-archive walks a tree: `parent` is what the
    /// directory holding `file` got (empty for the context's top level).
    pub fn matches_using_parent(&self, file: &str, parent: &MatchInfo) -> (bool, MatchInfo) {
        let mut matched = false;
        let mut info = vec![false; self.patterns.len()];
        for (i, p) in self.patterns.iter().enumerate() {
            let mut m = parent.0.get(i).copied().unwrap_or(false);
            if !m {
                if p.exclusion != matched {
                    continue;
                }
                m = p.matches(file);
                if !m && parent.0.is_empty() {
                    let dir = go_dir(file);
                    if dir != "." {
                        let dirs: Vec<&str> = dir.split('/').collect();
                        m = (0..dirs.len()).any(|k| p.matches(&dirs[..=k].join("/")));
                    }
                }
            }
            info[i] = m;
            if m {
                matched = !p.exclusion;
            }
        }
        (matched, MatchInfo(info))
    }
}

/// Go's `filepath.Dir` for the relative, clean paths we match.
fn go_dir(p: &str) -> String {
    match p.rfind('/') {
        Some(i) => go_clean(&p[..i]),
        None => ".".into(),
    }
}

/// What `filepath.Match(p, ".")` refuses: an unclosed or malformed class, a trailing `\`.
fn check_syntax(p: &str) -> Result<(), PatternError> {
    let chars: Vec<char> = p.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                if i + 1 >= chars.len() {
                    return Err(bad_pattern());
                }
                i += 2;
            }
            '[' => {
                let (_, next) = parse_class(&chars, i, true)?;
                i = next;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// A parsed `[…]`: negated, and its single characters and ranges.
type Class = (bool, Vec<(char, char)>);

/// A character class starting at `chars[start] == '['`; returns it and the index after
/// its `]`. `strict` applies Go's `filepath.Match` rules (no empty class, no `-` at either
/// end of a range).
fn parse_class(chars: &[char], start: usize, strict: bool) -> Result<(Class, usize), PatternError> {
    let mut i = start + 1;
    let mut negated = false;
    if i < chars.len() && chars[i] == '^' {
        negated = true;
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        if i >= chars.len() {
            return Err(bad_pattern());
        }
        if chars[i] == ']' && !first {
            return Ok(((negated, ranges), i + 1));
        }
        if chars[i] == ']' && first && strict {
            return Err(bad_pattern());
        }
        first = false;
        let (lo, next) = class_char(chars, i, strict)?;
        i = next;
        let mut hi = lo;
        if i < chars.len() && chars[i] == '-' {
            if i + 1 < chars.len() && chars[i + 1] != ']' {
                let (h, next) = class_char(chars, i + 1, strict)?;
                hi = h;
                i = next;
            } else if strict {
                return Err(bad_pattern());
            }
        }
        ranges.push((lo, hi));
    }
}

fn class_char(chars: &[char], i: usize, strict: bool) -> Result<(char, usize), PatternError> {
    match chars.get(i) {
        Some('\\') => match chars.get(i + 1) {
            Some(c) => Ok((*c, i + 2)),
            None => Err(bad_pattern()),
        },
        Some('-') if strict => Err(bad_pattern()),
        Some(c) => Ok((*c, i + 1)),
        None => Err(bad_pattern()),
    }
}

/// moby's `Pattern.compile`: the match kind and, for a regexp, its elements.
fn compile(pattern: &str) -> Result<Kind, PatternError> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut toks = Vec::new();
    let mut detected = 'e'; // e: exact, p: prefix, s: suffix, r: regexp
    let mut i = 0;
    let mut iteration = 0;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        if ch == '*' {
            if chars.get(i) == Some(&'*') {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= chars.len() {
                    if detected == 'e' {
                        detected = 'p';
                    } else {
                        toks.push(Tok::AnyAll);
                        detected = 'r';
                    }
                } else {
                    toks.push(Tok::AnyDirs);
                    detected = 'r';
                }
                if iteration == 0 {
                    detected = 's';
                }
            } else {
                toks.push(Tok::Star);
                detected = 'r';
            }
        } else if ch == '?' {
            toks.push(Tok::One);
            detected = 'r';
        } else if ch == '\\' {
            if i < chars.len() {
                toks.push(Tok::Lit(chars[i]));
                i += 1;
                detected = 'r';
            } else {
                toks.push(Tok::Lit('\\'));
            }
        } else if ch == '[' {
            let ((neg, ranges), next) = parse_class(&chars, i - 1, false)?;
            toks.push(Tok::Class(neg, ranges));
            i = next;
            detected = 'r';
        } else if ch == ']' {
            toks.push(Tok::Lit(']'));
            detected = 'r';
        } else {
            toks.push(Tok::Lit(ch));
        }
        iteration += 1;
    }
    Ok(match detected {
        'e' => Kind::Exact,
        'p' => Kind::Prefix,
        's' => Kind::Suffix,
        _ => Kind::Regexp(toks),
    })
}

/// Whether the elements match the whole of `s` (backtracking, as the anchored regexp would).
fn match_toks(toks: &[Tok], s: &[char]) -> bool {
    let Some((t, rest)) = toks.split_first() else {
        return s.is_empty();
    };
    match t {
        Tok::Lit(c) => s.first() == Some(c) && match_toks(rest, &s[1..]),
        Tok::One => s.first().is_some_and(|c| *c != '/') && match_toks(rest, &s[1..]),
        Tok::Class(neg, ranges) => {
            s.first()
                .is_some_and(|c| ranges.iter().any(|(lo, hi)| lo <= c && c <= hi) != *neg)
                && match_toks(rest, &s[1..])
        }
        Tok::Star => {
            let mut k = 0;
            loop {
                if match_toks(rest, &s[k..]) {
                    return true;
                }
                if k >= s.len() || s[k] == '/' {
                    return false;
                }
                k += 1;
            }
        }
        Tok::AnyAll => (0..=s.len()).any(|k| match_toks(rest, &s[k..])),
        Tok::AnyDirs => {
            // Nothing, or anything ending in a slash.
            if match_toks(rest, s) {
                return true;
            }
            (0..s.len()).any(|k| s[k] == '/' && match_toks(rest, &s[k + 1..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// moby's `MatchesUsingParentResults` without a walk's context (which then tries the
    /// parent directories itself, as `MatchesOrParentMatches`).
    fn excluded(patterns: &[&str], file: &str) -> bool {
        Matcher::new(patterns)
            .unwrap()
            .matches_using_parent(file, &MatchInfo::default())
            .0
    }

    /// moby's `TestMatches` table (without context: exact or inexact pass).
    #[test]
    fn moby_match_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("**", "file", true),
            ("**", "file/", true),
            ("**/", "file", true),
            ("**/", "file/", true),
            ("**", "/", true),
            ("**/", "/", true),
            ("**", "dir/file", true),
            ("**/", "dir/file", true),
            ("**", "dir/file/", true),
            ("**/**", "dir/file", true),
            ("**/**", "dir/file/", true),
            ("dir/**", "dir/file", true),
            ("dir/**", "dir/file/", true),
            ("dir/**", "dir/dir2/file", true),
            ("**/dir", "dir", true),
            ("**/dir", "dir/file", true),
            ("**/dir2/*", "dir/dir2/file", true),
            ("**/dir2/*", "dir/dir2/file/", true),
            ("**/dir2/**", "dir/dir2/dir3/file", true),
            ("**file", "file", true),
            ("**file", "dir/file", true),
            ("**/file", "dir/file", true),
            ("**file", "dir/dir/file", true),
            ("**/file*", "dir/dir/file.txt", true),
            ("**/file*txt", "dir/dir/file.txt", true),
            ("**/file*.txt*", "dir/dir/file.txt", true),
            ("**/**/*.txt", "dir/dir/file.txt", true),
            ("**/**/*.txt2", "dir/dir/file.txt", false),
            ("**/*.txt", "file.txt", true),
            ("**/**/*.txt", "file.txt", true),
            ("a**/*.txt", "a/file.txt", true),
            ("a**/*.txt", "a/dir/file.txt", true),
            ("a**/*.txt", "a/dir/dir/file.txt", true),
            ("a/*.txt", "a/dir/file.txt", false),
            ("a/*.txt", "a/file.txt", true),
            ("a/*.txt**", "a/file.txt", true),
            ("a[b-d]e", "ae", false),
            ("a[b-d]e", "ace", true),
            ("a[b-d]e", "aae", false),
            ("a[^b-d]e", "aze", true),
            (".*", ".foo", true),
            (".*", "foo", false),
            ("abc.def", "abcdef", false),
            ("abc.def", "abc.def", true),
            ("abc.def", "abcZdef", false),
            ("abc?def", "abcZdef", true),
            ("abc?def", "abcdef", false),
            ("**/foo/bar", "foo/bar", true),
            ("**/foo/bar", "dir/foo/bar", true),
            ("**/foo/bar", "dir/dir2/foo/bar", true),
            ("abc/**", "abc", false),
            ("abc/**", "abc/def", true),
            ("abc/**", "abc/def/ghi", true),
            ("**/.foo", ".foo", true),
            ("**/.foo", "bar.foo", false),
            ("a(b)c/def", "a(b)c/def", true),
            ("a(b)c/def", "a(b)c/xyz", false),
            ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
            (
                "dist/*.whl",
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                true,
            ),
            ("a\\\\", "a\\", true),
            ("a\\*b", "a*b", true),
        ];
        for (pattern, file, want) in cases {
            assert_eq!(
                excluded(&[pattern], file),
                *want,
                "pattern {pattern:?} file {file:?}"
            );
        }
    }

    #[test]
    fn exceptions_and_directories() {
        // A folder, then an exception inside it.
        assert!(!excluded(&["docs", "!docs/README.md"], "docs/README.md"));
        assert!(!excluded(&["docs/", "!docs/README.md"], "docs/README.md"));
        assert!(!excluded(&["docs/*", "!docs/README.md"], "docs/README.md"));
        assert!(excluded(&["docs", "!docs/README.md"], "docs/other.md"));
        // Order matters: a later pattern wins.
        assert!(excluded(&["!fileutils.go", "*.go"], "fileutils.go"));
        assert!(!excluded(&["*.go", "!fileutils.go"], "fileutils.go"));
        // `*.md` is the context's top level only; `**/*.md` is everywhere.
        assert!(excluded(&["*.md"], "README.md"));
        assert!(!excluded(&["*.md"], "docs/README.md"));
        assert!(excluded(&["**/*.md"], "docs/README.md"));
        // Everything but one directory.
        assert!(excluded(&["**", "!util/docker/web"], "util/docker/other"));
        assert!(!excluded(
            &["**", "!util/docker/web"],
            "util/docker/web/foo"
        ));
        assert!(excluded(
            &["**", "!util/docker/web", "util/docker/web/foo"],
            "util/docker/web/foo"
        ));
        // A pattern names a directory: everything under it goes.
        assert!(excluded(&["node_modules"], "node_modules/a/b.js"));
        assert!(!excluded(&["node_modules"], "src/node_modules"));
        assert!(excluded(&["**/node_modules"], "src/node_modules/x"));
    }

    #[test]
    fn bad_patterns_are_refused_in_gos_words() {
        assert_eq!(
            Matcher::new(&["!"]).unwrap_err().0,
            "illegal exclusion pattern: \"!\""
        );
        for p in ["[", "a[", "[^bc", "[]a]", "[x-]", "\\"] {
            assert_eq!(
                Matcher::new(&[p]).unwrap_err().0,
                "syntax error in pattern",
                "{p:?}"
            );
        }
        assert!(Matcher::new(&["[\\]a]"]).is_ok());
    }

    #[test]
    fn the_file_reads_like_buildkit() {
        let text = "\u{feff}# comment\n  \n/abs/path\n./rel/../other\n!  /keep.txt \n # not a comment\n*.md\n!\n";
        assert_eq!(
            read_patterns(text),
            vec![
                "abs/path",
                "other",
                "!keep.txt",
                "# not a comment",
                "*.md",
                "!"
            ]
        );
    }

    #[test]
    fn parent_results_carry_down_a_walk() {
        let m = Matcher::new(&["docs", "!docs/keep"]).unwrap();
        let (dir, info) = m.matches_using_parent("docs", &MatchInfo::default());
        assert!(dir);
        let (keep, _) = m.matches_using_parent("docs/keep", &info);
        assert!(!keep);
        let (other, _) = m.matches_using_parent("docs/other", &info);
        assert!(other);
        // The legacy check only looks as deep as the pattern.
        let legacy = Matcher::new(&["a"]).unwrap();
        assert!(legacy.matches_legacy("a/Dockerfile"));
        assert!(!legacy.matches_legacy("."));
    }
}
