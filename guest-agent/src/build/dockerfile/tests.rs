//! Parser tests; the expected texts are docker's (buildkit's parser and instructions packages
//! as dockerd vendors them).

use std::time::Duration;

use super::*;

fn ok(text: &str) -> Dockerfile {
    match parse(text) {
        Ok(df) => df,
        Err(e) => panic!("{text:?}: {e}"),
    }
}

fn err(text: &str) -> ParseError {
    match parse(text) {
        Ok(df) => panic!("{text:?} parsed: {df:?}"),
        Err(e) => e,
    }
}

/// The steps of the only stage.
fn steps(text: &str) -> Vec<Step> {
    let df = ok(text);
    assert_eq!(df.stages.len(), 1, "{text:?}");
    df.stages.into_iter().flat_map(|s| s.steps).collect()
}

fn one(text: &str) -> Instruction {
    let mut s = steps(&format!("FROM x\n{text}"));
    assert_eq!(s.len(), 1, "{text:?}");
    s.remove(0).instruction
}

fn msg(text: &str) -> String {
    err(text).to_string()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn stages_global_args_and_lines() {
    let df = ok("# a comment\nARG BASE=debian\n\nFROM $BASE AS Build\nRUN make\n\nfrom scratch\ncopy --from=build /out /out\n");
    assert_eq!(df.escape, '\\');
    assert_eq!(df.global_args.len(), 1);
    assert_eq!(df.global_args[0].line, 2);
    assert_eq!(
        df.global_args[0].instruction,
        Instruction::Arg(vec![("BASE".into(), Some("debian".into()))])
    );
    assert_eq!(df.stages.len(), 2);
    assert_eq!(df.stages[0].from.line, 4);
    assert_eq!(df.stages[0].from.original, "FROM $BASE AS Build");
    assert_eq!(
        df.stages[0].from.instruction,
        Instruction::From {
            image: "$BASE".into(),
            name: Some("build".into()),
            platform: None
        }
    );
    assert_eq!(df.stages[0].steps[0].line, 5);
    assert_eq!(df.stages[1].from.line, 7);
    assert_eq!(
        df.stages[1].steps[0].original,
        "copy --from=build /out /out"
    );
    let Instruction::Copy(c) = &df.stages[1].steps[0].instruction else {
        panic!("not a COPY")
    };
    assert_eq!(c.from.as_deref(), Some("build"));
}

#[test]
fn keywords_are_case_insensitive() {
    let s = steps("FrOm x\nrun echo hi\nWorkDir /a\n");
    assert_eq!(
        s[0].instruction,
        Instruction::Run(CmdForm::Shell("echo hi".into()))
    );
    assert_eq!(s[1].instruction, Instruction::Workdir("/a".into()));
}

#[test]
fn continuation_joins_text_as_docker_prints_it() {
    let s = steps("FROM x\nRUN a \\\n  && b\n");
    assert_eq!(s[0].original, "RUN a   && b");
    assert_eq!(s[0].line, 2);
    assert_eq!(
        s[0].instruction,
        Instruction::Run(CmdForm::Shell("a   && b".into()))
    );
    // No blank is added between the lines.
    assert_eq!(steps("FROM x\nRUN ab\\\ncd\n")[0].original, "RUN abcd");
    // Blanks after the escape still continue the line.
    assert_eq!(steps("FROM x\nRUN a \\  \t\nb\n")[0].original, "RUN a b");
}

#[test]
fn comments_and_blank_lines_inside_continuations_are_dropped() {
    let s = steps("FROM x\nRUN apt-get update \\\n  # install things\n\n    && apt-get install -y curl\nUSER me\n");
    assert_eq!(
        s[0].original,
        "RUN apt-get update     && apt-get install -y curl"
    );
    assert_eq!(s[1].line, 6);
}

#[test]
fn escaped_escape_at_end_is_not_a_continuation() {
    let s = steps("FROM x\nRUN echo \\\\\nUSER me\n");
    assert_eq!(s[0].original, "RUN echo \\\\");
    assert_eq!(s[1].instruction, Instruction::User("me".into()));
}

#[test]
fn continuation_at_end_of_file_ends_the_instruction() {
    let s = steps("FROM x\nRUN echo hi \\");
    assert_eq!(s[0].original, "RUN echo hi");
}

#[test]
fn crlf_and_bom_are_ignored() {
    let s = steps("\u{feff}FROM x\r\nRUN a \\\r\n b\r\n");
    assert_eq!(s[0].original, "RUN a  b");
}

#[test]
fn escape_directive_backtick() {
    let df = ok("# escape=`\nFROM x\nRUN dir c:\\ `\n  /s\nCOPY a\\b c:\\dest\\\n");
    assert_eq!(df.escape, '`');
    let s = &df.stages[0].steps;
    assert_eq!(s[0].original, "RUN dir c:\\   /s");
    let Instruction::Copy(c) = &s[1].instruction else {
        panic!("not a COPY")
    };
    assert_eq!(c.sources, ["a\\b"]);
    assert_eq!(c.dest, "c:\\dest\\");
}

#[test]
fn syntax_directive_is_accepted_and_directives_stop_at_first_other_line() {
    let df = ok("# syntax=docker/dockerfile:1\n#ESCAPE = `\nFROM x\n");
    assert_eq!(df.escape, '`');
    // After a comment (or blank line) an escape directive is only a comment.
    let df = ok("# hello\n# escape=`\nFROM x\n");
    assert_eq!(df.escape, '\\');
    let df = ok("\n# escape=`\nFROM x\n");
    assert_eq!(df.escape, '\\');
}

#[test]
fn bad_directives_are_syntax_errors() {
    let e = err("# escape=x\nFROM a\n");
    assert_eq!(e.kind, ParseErrorKind::Syntax);
    assert_eq!(
        e.to_string(),
        "failed to parse Dockerfile: invalid escape token 'x' does not match ` or \\"
    );
    assert_eq!(
        msg("# escape=`\n# escape=\\\nFROM a\n"),
        "failed to parse Dockerfile: only one escape parser directive can be used"
    );
}

#[test]
fn empty_files() {
    let e = err("");
    assert_eq!(e.kind, ParseErrorKind::Empty);
    assert_eq!(e.line, 0);
    assert_eq!(e.message, "file with no instructions");
    assert_eq!(
        e.docker_message("Dockerfile.dev"),
        "the Dockerfile (Dockerfile.dev) cannot be empty"
    );
    let e = err("# only a comment\n\n   \n");
    assert_eq!(e.kind, ParseErrorKind::Syntax);
    assert_eq!(e.message, "file with no instructions");
    assert_eq!(
        e.docker_message("Dockerfile"),
        "failed to parse Dockerfile: file with no instructions"
    );
}

#[test]
fn unknown_instruction_names_it_and_its_line() {
    let e = err("FROM x\n\nBOGUS bar\n");
    assert_eq!(e.kind, ParseErrorKind::Instruction);
    assert_eq!(e.line, 3);
    assert_eq!(
        e.to_string(),
        "dockerfile parse error on line 3: unknown instruction: BOGUS"
    );
    assert_eq!(
        msg("FROM x\nRUNN a\n"),
        "dockerfile parse error on line 2: unknown instruction: RUNN (did you mean RUN?)"
    );
    // Within two edits buildkit suggests, even for a short word.
    assert_eq!(
        msg("FROM x\nFOO\n"),
        "dockerfile parse error on line 2: unknown instruction: FOO (did you mean FROM?)"
    );
    assert_eq!(
        msg("FROM x\ncopyy a b\n"),
        "dockerfile parse error on line 2: unknown instruction: copyy (did you mean copy?)"
    );
}

#[test]
fn syntax_errors_come_before_instruction_errors() {
    // Docker parses the whole file before it looks at any instruction.
    assert_eq!(
        msg("FROM x\nFOO\nRUN [\"a\", 1]\n"),
        "failed to parse Dockerfile: when using JSON array syntax, arrays must be comprised of strings only"
    );
}

#[test]
fn instructions_before_from() {
    let e = err("# c\nRUN echo hi\nFROM x\n");
    assert_eq!(e.kind, ParseErrorKind::NoStage);
    assert_eq!(e.line, 2);
    assert_eq!(e.to_string(), "no build stage in current context");
    // ARG is fine there, and only there is it global.
    let df = ok("ARG A\nFROM x\nARG B\n");
    assert_eq!(df.global_args.len(), 1);
    assert_eq!(df.stages[0].steps.len(), 1);
}

#[test]
fn json_or_shell_form() {
    assert_eq!(
        one("CMD [\"a\", \"b c\"]"),
        Instruction::Cmd(CmdForm::Exec(strings(&["a", "b c"])))
    );
    assert_eq!(
        one("ENTRYPOINT   [ \"/bin/app\" ]  "),
        Instruction::Entrypoint(CmdForm::Exec(strings(&["/bin/app"])))
    );
    // Not valid JSON: the raw text, as a shell command.
    assert_eq!(
        one("CMD ['a', 'b']"),
        Instruction::Cmd(CmdForm::Shell("['a', 'b']".into()))
    );
    assert_eq!(
        one("RUN [\"a\" \"b\"]"),
        Instruction::Run(CmdForm::Shell("[\"a\" \"b\"]".into()))
    );
    assert_eq!(one("CMD []"), Instruction::Cmd(CmdForm::Exec(vec![])));
    assert_eq!(
        one("RUN echo \"$HOME\" 'x'"),
        Instruction::Run(CmdForm::Shell("echo \"$HOME\" 'x'".into()))
    );
}

#[test]
fn json_array_of_non_strings_is_refused() {
    let e = err("FROM x\nCMD [\"a\", [\"b\"]]\n");
    assert_eq!(e.kind, ParseErrorKind::Syntax);
    assert_eq!(e.line, 2);
    assert_eq!(
        e.message,
        "when using JSON array syntax, arrays must be comprised of strings only"
    );
}

#[test]
fn env_both_forms_keep_quotes() {
    assert_eq!(
        one("ENV PATH /usr/local/bin:$PATH with spaces"),
        Instruction::Env(vec![(
            "PATH".into(),
            "/usr/local/bin:$PATH with spaces".into()
        )])
    );
    assert_eq!(
        one("ENV a=1 b=\"two words\" c='x y' d=e\\ f g="),
        Instruction::Env(vec![
            ("a".into(), "1".into()),
            ("b".into(), "\"two words\"".into()),
            ("c".into(), "'x y'".into()),
            ("d".into(), "e\\ f".into()),
            ("g".into(), String::new()),
        ])
    );
}

#[test]
fn env_errors() {
    assert_eq!(
        msg("FROM x\nENV\n"),
        "dockerfile parse error on line 2: ENV requires at least one argument"
    );
    assert_eq!(
        msg("FROM x\nENV ONLYKEY\n"),
        "failed to parse Dockerfile: ENV must have two arguments"
    );
    assert_eq!(
        msg("FROM x\nENV a=b c\n"),
        "failed to parse Dockerfile: Syntax error - can't find = in \"c\". Must be of the form: name=value"
    );
    assert_eq!(
        msg("FROM x\nENV =b\n"),
        "dockerfile parse error on line 2: ENV names can not be blank"
    );
    assert_eq!(
        msg("FROM x\nLABEL\n"),
        "dockerfile parse error on line 2: LABEL requires at least one argument"
    );
}

#[test]
fn label_and_arg() {
    assert_eq!(
        one("LABEL version=\"1.0\" \"com.example.x\"=y"),
        Instruction::Label(vec![
            ("version".into(), "\"1.0\"".into()),
            ("\"com.example.x\"".into(), "y".into()),
        ])
    );
    assert_eq!(
        one("ARG A B=2 C="),
        Instruction::Arg(vec![
            ("A".into(), None),
            ("B".into(), Some("2".into())),
            ("C".into(), Some(String::new())),
        ])
    );
    assert_eq!(
        msg("ARG =x\nFROM a\n"),
        "dockerfile parse error on line 1: ARG names can not be blank"
    );
    assert_eq!(
        msg("FROM a\nARG\n"),
        "dockerfile parse error on line 2: ARG requires at least one argument"
    );
}

#[test]
fn from_forms_and_errors() {
    assert_eq!(
        ok("FROM --platform=$BUILDPLATFORM golang:1.22 as b-1.x\n").stages[0]
            .from
            .instruction,
        Instruction::From {
            image: "golang:1.22".into(),
            name: Some("b-1.x".into()),
            platform: Some("$BUILDPLATFORM".into()),
        }
    );
    assert_eq!(
        msg("FROM\n"),
        "dockerfile parse error on line 1: FROM requires either one or three arguments"
    );
    assert_eq!(
        msg("FROM a b\n"),
        "dockerfile parse error on line 1: FROM requires either one or three arguments"
    );
    assert_eq!(
        msg("FROM a AS 1st\n"),
        "dockerfile parse error on line 1: invalid name for build stage: \"1st\", name can't start with a number or contain symbols"
    );
    assert_eq!(
        msg("FROM --plaform=x a\n"),
        "dockerfile parse error on line 1: unknown flag: --plaform (did you mean platform?)"
    );
}

#[test]
fn copy_and_add() {
    assert_eq!(
        one("COPY --chown=1:1 --chmod=644 a b /dst/"),
        Instruction::Copy(CopyArgs {
            sources: strings(&["a", "b"]),
            dest: "/dst/".into(),
            from: None,
            chown: Some("1:1".into()),
            chmod: Some("644".into()),
        })
    );
    assert_eq!(
        one("ADD [\"a b\", \"/d e/\"]"),
        Instruction::Add(CopyArgs {
            sources: strings(&["a b"]),
            dest: "/d e/".into(),
            ..CopyArgs::default()
        })
    );
    assert_eq!(
        one("COPY --link=false a /b"),
        Instruction::Copy(CopyArgs {
            sources: strings(&["a"]),
            dest: "/b".into(),
            ..CopyArgs::default()
        })
    );
    assert_eq!(
        msg("FROM x\nCOPY a\n"),
        "dockerfile parse error on line 2: COPY requires at least two arguments, but only one was provided. Destination could not be determined"
    );
    assert_eq!(
        msg("FROM x\nADD\n"),
        "dockerfile parse error on line 2: ADD requires at least two arguments, but only one was provided. Destination could not be determined"
    );
    assert_eq!(
        msg("FROM x\nADD --from=a b c\n"),
        "dockerfile parse error on line 2: unknown flag: --from"
    );
}

#[test]
fn flag_errors() {
    assert_eq!(
        msg("FROM x\nCOPY --chown a b\n"),
        "dockerfile parse error on line 2: missing a value on flag: --chown"
    );
    assert_eq!(
        msg("FROM x\nCOPY --from=a --from=b c d\n"),
        "dockerfile parse error on line 2: duplicate flag specified: --from"
    );
    assert_eq!(
        msg("FROM x\nCOPY --link=maybe a b\n"),
        "dockerfile parse error on line 2: expecting boolean value for flag --link, not: maybe"
    );
    assert_eq!(
        msg("FROM x\nWORKDIR --foo /a\n"),
        "dockerfile parse error on line 2: unknown flag: --foo"
    );
    // Flags are words with quotes removed; `--` ends them.
    assert_eq!(
        one("COPY --chown=\"a b\" x y"),
        Instruction::Copy(CopyArgs {
            sources: strings(&["x"]),
            dest: "y".into(),
            chown: Some("a b".into()),
            ..CopyArgs::default()
        })
    );
    assert_eq!(
        one("COPY -- --weird /d"),
        Instruction::Copy(CopyArgs {
            sources: strings(&["--weird"]),
            dest: "/d".into(),
            ..CopyArgs::default()
        })
    );
}

#[test]
fn buildkit_only_flags_are_refused() {
    let cases = [
        (
            "RUN --mount=type=cache,target=/root/.cache pip install x",
            "mount",
        ),
        ("RUN --network=none true", "network"),
        ("RUN --security=insecure true", "security"),
        ("COPY --link a /b", "link"),
        ("COPY --parents a/b /c", "parents"),
        ("COPY --exclude=*.md . /src", "exclude"),
        ("ADD --checksum=sha256:abc https://x/y /y", "checksum"),
        ("ADD --keep-git-dir=true https://g/r.git /r", "keep-git-dir"),
        ("ADD --unpack=true a.tar /a", "unpack"),
    ];
    for (line, flag) in cases {
        let e = err(&format!("FROM x\n{line}\n"));
        assert_eq!(e.kind, ParseErrorKind::Instruction, "{line}");
        assert_eq!(e.line, 2);
        assert_eq!(
            e.message,
            format!(
                "the --{flag} option requires BuildKit, which skiff's classic builder does not support"
            ),
            "{line}"
        );
    }
    assert_eq!(
        msg("FROM x\nRUN --mout=x true\n"),
        "dockerfile parse error on line 2: unknown flag: --mout (did you mean mount?)"
    );
}

#[test]
fn heredocs_are_refused_and_their_bodies_not_parsed() {
    for text in [
        "FROM x\nRUN <<EOF\nset -e\nEOF\n",
        "FROM x\nRUN cat <<-EOT > /f\n\thello\nEOT\n",
        "FROM x\nCOPY <<EOF /etc/conf\nkey=value\nEOF\n",
        "FROM x\nRUN python3 << 'PY'\nprint(1)\nPY\n",
        "FROM x\nONBUILD RUN <<EOF\nx\nEOF\n",
    ] {
        let e = err(text);
        assert_eq!(e.line, 2, "{text:?}");
        assert_eq!(
            e.message,
            "a heredoc (<<) requires BuildKit, which skiff's classic builder does not support",
            "{text:?}"
        );
    }
    // Not heredocs: a shift, a quoted `<<`, the JSON form.
    ok("FROM x\nRUN echo $((1<<2))\nRUN echo \"<<EOF\"\nRUN [\"cat\", \"<<EOF\"]\n");
}

#[test]
fn healthcheck_forms() {
    let Instruction::Healthcheck(h) =
        one("HEALTHCHECK --interval=5s --timeout=3s --retries=3 CMD curl -f http://x/ || exit 1")
    else {
        panic!("not a HEALTHCHECK")
    };
    assert_eq!(
        h.test,
        Some(strings(&["CMD-SHELL", "curl -f http://x/ || exit 1"]))
    );
    assert_eq!(h.interval, Some(Duration::from_secs(5)));
    assert_eq!(h.timeout, Some(Duration::from_secs(3)));
    assert_eq!(h.retries, Some(3));
    assert_eq!(h.start_period, None);

    let Instruction::Healthcheck(h) =
        one("healthcheck --start-period=1m30s --start-interval=500ms cmd [\"a\",\"b\"]")
    else {
        panic!("not a HEALTHCHECK")
    };
    assert_eq!(h.test, Some(strings(&["CMD", "a", "b"])));
    assert_eq!(h.start_period, Some(Duration::from_secs(90)));
    assert_eq!(h.start_interval, Some(Duration::from_millis(500)));

    let Instruction::Healthcheck(h) = one("HEALTHCHECK NONE") else {
        panic!("not a HEALTHCHECK")
    };
    assert_eq!(h.test, None);
    assert_eq!(h.docker_test(), ["NONE"]);
}

#[test]
fn healthcheck_errors() {
    let m = |line: &str| msg(&format!("FROM x\n{line}\n"));
    assert_eq!(
        m("HEALTHCHECK"),
        "dockerfile parse error on line 2: HEALTHCHECK requires at least one argument"
    );
    assert_eq!(
        m("HEALTHCHECK NONE x"),
        "dockerfile parse error on line 2: HEALTHCHECK NONE takes no arguments"
    );
    assert_eq!(
        m("HEALTHCHECK CMD"),
        "dockerfile parse error on line 2: Missing command after HEALTHCHECK CMD"
    );
    assert_eq!(
        m("HEALTHCHECK EXEC true"),
        "dockerfile parse error on line 2: Unknown type \"EXEC\" in HEALTHCHECK (try CMD)"
    );
    assert_eq!(
        m("HEALTHCHECK --interval=500us CMD true"),
        "dockerfile parse error on line 2: Interval \"interval\" cannot be less than 1ms"
    );
    assert_eq!(
        m("HEALTHCHECK --timeout=-1s CMD true"),
        "dockerfile parse error on line 2: Interval \"timeout\" cannot be less than 1ms"
    );
    assert_eq!(
        m("HEALTHCHECK --interval=5 CMD true"),
        "dockerfile parse error on line 2: time: missing unit in duration \"5\""
    );
    assert_eq!(
        m("HEALTHCHECK --retries=-1 CMD true"),
        "dockerfile parse error on line 2: --retries cannot be negative (-1)"
    );
    assert_eq!(
        m("HEALTHCHECK --retries=x CMD true"),
        "dockerfile parse error on line 2: strconv.ParseInt: parsing \"x\": invalid syntax"
    );
    // Zero means docker's default.
    let Instruction::Healthcheck(h) = one("HEALTHCHECK --interval=0s CMD true") else {
        panic!("not a HEALTHCHECK")
    };
    assert_eq!(h.interval, None);
}

#[test]
fn onbuild_triggers() {
    assert_eq!(
        one("ONBUILD RUN echo hi  "),
        Instruction::Onbuild("RUN echo hi  ".into())
    );
    assert_eq!(
        one("onbuild   copy . /app"),
        Instruction::Onbuild("copy . /app".into())
    );
    assert_eq!(
        msg("FROM x\nONBUILD ONBUILD RUN a\n"),
        "dockerfile parse error on line 2: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
    );
    assert_eq!(
        msg("FROM x\nONBUILD from y\n"),
        "dockerfile parse error on line 2: FROM isn't allowed as an ONBUILD trigger"
    );
    assert_eq!(
        msg("FROM x\nONBUILD MAINTAINER me\n"),
        "dockerfile parse error on line 2: MAINTAINER isn't allowed as an ONBUILD trigger"
    );
    assert_eq!(
        msg("FROM x\nONBUILD\n"),
        "dockerfile parse error on line 2: ONBUILD requires at least one argument"
    );
}

#[test]
fn single_argument_instructions() {
    assert_eq!(
        one("MAINTAINER Jane <j@x>"),
        Instruction::Maintainer("Jane <j@x>".into())
    );
    assert_eq!(one("USER app:app"), Instruction::User("app:app".into()));
    assert_eq!(
        one("STOPSIGNAL SIGTERM"),
        Instruction::StopSignal("SIGTERM".into())
    );
    assert_eq!(one("WORKDIR /a b"), Instruction::Workdir("/a b".into()));
    for cmd in ["WORKDIR", "USER", "MAINTAINER", "STOPSIGNAL"] {
        assert_eq!(
            msg(&format!("FROM x\n{cmd}\n")),
            format!("dockerfile parse error on line 2: {cmd} requires exactly one argument")
        );
    }
}

#[test]
fn expose_volume_shell() {
    assert_eq!(
        one("EXPOSE 8080/tcp 80 $P"),
        Instruction::Expose(strings(&["$P", "80", "8080/tcp"]))
    );
    assert_eq!(
        one("VOLUME /a /b"),
        Instruction::Volume(strings(&["/a", "/b"]))
    );
    assert_eq!(
        one("VOLUME [\" /data \"]"),
        Instruction::Volume(strings(&["/data"]))
    );
    assert_eq!(
        msg("FROM x\nVOLUME [\"\"]\n"),
        "dockerfile parse error on line 2: VOLUME specified can not be an empty string"
    );
    assert_eq!(
        msg("FROM x\nEXPOSE\n"),
        "dockerfile parse error on line 2: EXPOSE requires at least one argument"
    );
    assert_eq!(
        one("SHELL [\"/bin/bash\", \"-c\"]"),
        Instruction::Shell(strings(&["/bin/bash", "-c"]))
    );
    assert_eq!(
        msg("FROM x\nSHELL /bin/bash -c\n"),
        "dockerfile parse error on line 2: SHELL requires the arguments to be in JSON form"
    );
    assert_eq!(
        msg("FROM x\nSHELL []\n"),
        "dockerfile parse error on line 2: SHELL requires at least one argument"
    );
}

#[test]
fn parsed_words_expand_as_the_builder_will() {
    // The raw ENV value keeps its quotes; expansion removes them and substitutes.
    let Instruction::Env(pairs) = one("ENV GREETING=\"hello ${NAME:-world}\"") else {
        panic!("not an ENV")
    };
    let lookup = |_: &str| None;
    assert_eq!(
        expand_word(&pairs[0].1, '\\', &lookup).ok().as_deref(),
        Some("hello world")
    );
}

/// Line joining cases from buildkit's parser testfiles (continueIndent, trailing-backslash,
/// escapes, env).
#[test]
fn buildkit_continuation_and_word_cases() {
    let run = |text: &str| -> Vec<String> {
        steps(&format!("FROM x\n{text}"))
            .into_iter()
            .map(|s| match s.instruction {
                Instruction::Run(CmdForm::Shell(t)) => t,
                other => panic!("{other:?}"),
            })
            .collect()
    };
    assert_eq!(
        run("RUN echo hello\\\n  world\\\n  goodnight  \\\n  moon\\\n  light\\\nning\n"),
        ["echo hello  world  goodnight    moon  lightning"]
    );
    assert_eq!(run("RUN echo hello  \\  \nworld\n"), ["echo hello  world"]);
    assert_eq!(
        run("RUN echo hi \\\n \\\n world \\\n\\\n good\\\n\\\nnight\n"),
        ["echo hi   world  goodnight"]
    );
    assert_eq!(
        run("RUN echo hello \\\n# this is a comment\n\n# another\n\nthis is some more useful stuff\n"),
        ["echo hello this is some more useful stuff"]
    );
    assert_eq!(run("RUN foo \\\n\nbar \\\n\nbaz\n"), ["foo bar baz"]);

    let env = |text: &str| match one(text) {
        Instruction::Env(pairs) => pairs,
        other => panic!("{other:?}"),
    };
    let pair = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
    assert_eq!(
        env("ENV C trailing\\\\backslash\\\\"),
        pair("C", "trailing\\\\backslash\\\\")
    );
    assert_eq!(env("ENV E hello\\\n\\\nworld"), pair("E", "helloworld"));
    assert_eq!(env("ENV F hello\\\n \\\nworld"), pair("F", "hello world"));
    assert_eq!(env("ENV name='a\\'b''"), pair("name", "'a\\'b''"));
    assert_eq!(env("ENV name=\"a\\\"b\""), pair("name", "\"a\\\"b\""));
    assert_eq!(
        env("ENV name=value \\\n    name2=\"value2a \\\n           value2b\" \\\n"),
        vec![
            ("name".to_string(), "value".to_string()),
            (
                "name2".to_string(),
                "\"value2a            value2b\"".to_string()
            ),
        ]
    );
    assert_eq!(
        one("ADD \\conf\\\\\" /.znc"),
        Instruction::Add(CopyArgs {
            sources: strings(&["\\conf\\\\\""]),
            dest: "/.znc".into(),
            ..CopyArgs::default()
        })
    );
    assert_eq!(
        one("CMD [ \"\\/usr\\\\\\\"/bin/znc\", \"-f\", \"-r\" ]"),
        Instruction::Cmd(CmdForm::Exec(strings(&["/usr\\\"/bin/znc", "-f", "-r"])))
    );
}

#[test]
fn onbuild_triggers_parse_back_as_docker_runs_them() {
    let step = parse_trigger("RUN echo hi  ").ok();
    assert_eq!(
        step.map(|s| (s.original, s.instruction)),
        Some((
            "RUN echo hi".to_string(),
            Instruction::Run(CmdForm::Shell("echo hi".into()))
        ))
    );
    let e = parse_trigger("BOGUS x").err();
    assert_eq!(
        e.map(|e| e.to_string()).as_deref(),
        Some("unknown instruction: BOGUS")
    );
    let e = parse_trigger("RUN a\nRUN b").err();
    assert_eq!(
        e.map(|e| e.to_string()).as_deref(),
        Some("onbuild trigger should be a single expression")
    );
    // In a trigger, the instruction needs no stage.
    assert!(parse_trigger("COPY . /app").is_ok());
}
