//! The Dockerfile as dockerd's classic builder reads it: `parse` turns the text into stages of
//! typed instructions with their line numbers and the text docker prints in
//! `Step N/M : <instruction>`, and `expand` is docker's shell-word processing (variables and
//! quotes) for the instructions the builder expands. Both follow buildkit's
//! `frontend/dockerfile/parser`, `instructions` and `shell` packages, which dockerd vendors,
//! down to their error wording.
//!
//! This is our own parser, not a crate: `dockerfile-parser` (docs.rs) parses with a pest
//! grammar into byte spans, has no `# escape=` directive, and neither docker's error wording
//! nor its syntax-versus-instruction error split, and we also need BuildKit-only syntax
//! (heredocs, `RUN --mount`, `COPY --link`…) refused by name rather than misread.
//!
//! Pure: no I/O, nothing expanded at parse time. The builder expands arguments with
//! `expand::expand_word` / `expand::expand_words` as it runs each step, because the values
//! (ENV, ARG, build args) are only known then.

pub mod expand;
pub mod goish;
pub mod parse;

pub use expand::{expand_word, expand_words, ExpandError};
pub use parse::{
    parse, parse_trigger, CmdForm, CopyArgs, Dockerfile, Healthcheck, Instruction, ParseError,
    ParseErrorKind, Stage, Step,
};

#[cfg(test)]
mod tests;
