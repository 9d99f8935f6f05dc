//! `--jq EXPR`: filters the JSON a verb prints through a jq program (the `jaq` implementation of
//! the jq language), printing each result as `gh --jq` does: a string raw, any other value as
//! compact JSON, one a line.
//!
//! An expression is checked when the command line is read ([`check`]), before any request is
//! sent, so a typo is a usage error (exit 2) and never a half-done operation. A runtime error
//! (`.foo` on a string) fails the command with exit 1, as any other error does.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data, unwrap_valr};
use jaq_json::Val;

/// The compiled program: jaq's filter over JSON values.
type Filter = jaq_core::compile::Filter<jaq_core::Native<data::JustLut<Val>>>;

/// Why an expression cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The expression does not parse or names something undefined.
    #[error("invalid --jq expression {expression:?}: {detail}")]
    Invalid { expression: String, detail: String },
    /// The expression failed on this input (e.g. `.name` of an array).
    #[error("--jq: {0}")]
    Runtime(String),
}

/// Checks that `expression` compiles (parse errors and undefined names).
pub fn check(expression: &str) -> Result<(), Error> {
    compile(expression).map(drop)
}

/// Runs `expression` on `input` and returns what to print: each result on its own line,
/// strings raw, other values as compact JSON.
pub fn run(expression: &str, input: &serde_json::Value) -> Result<Vec<u8>, Error> {
    let filter = compile(expression)?;
    let bytes = serde_json::to_vec(input).map_err(|error| Error::Runtime(error.to_string()))?;
    let value = jaq_json::read::parse_single(&bytes)
        .map_err(|error| Error::Runtime(format!("cannot read the input: {error}")))?;
    let context = Ctx::<data::JustLut<Val>>::new(&filter.lut, Vars::new([]));
    let mut out = Vec::new();
    for result in filter.id.run((context, value)).map(unwrap_valr) {
        let value = result.map_err(|error| Error::Runtime(error.to_string()))?;
        match &value {
            Val::TStr(text) => out.extend_from_slice(text),
            other => jaq_json::write::write(&mut out, &Default::default(), 0, other)
                .map_err(|error| Error::Runtime(error.to_string()))?,
        }
        out.push(b'\n');
    }
    Ok(out)
}

fn compile(expression: &str) -> Result<Filter, Error> {
    let invalid = |detail: String| Error::Invalid {
        expression: expression.to_string(),
        detail,
    };
    let program = File {
        code: expression,
        path: (),
    };
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs());
    let funs = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs());
    let arena = Arena::default();
    let modules = Loader::new(defs)
        .load(&arena, program)
        .map_err(|errors| invalid(describe_load_errors(expression, errors)))?;
    Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map_err(|errors| {
            let names: Vec<String> = errors
                .into_iter()
                .flat_map(|(_, undefined)| undefined)
                .map(|(name, kind)| format!("undefined {} `{name}`", kind.as_str()))
                .collect();
            invalid(names.join("; "))
        })
}

/// "expected … at character N" for the first lex or parse error (the rest follow from it).
fn describe_load_errors(expression: &str, errors: jaq_core::load::Errors<&str, ()>) -> String {
    use jaq_core::load::Error as LoadError;
    use jaq_core::load::lex::Expect as Lex;

    // Each error carries the rest of the expression where it happened: a suffix of it.
    let at = |rest: &str| expression.len().saturating_sub(rest.len()) + 1;
    let Some((_, error)) = errors.into_iter().next() else {
        return "cannot be parsed".to_string();
    };
    match error {
        LoadError::Lex(errors) => match errors.first() {
            Some((expect, rest)) => {
                let expected = match expect {
                    Lex::Digit => "a digit",
                    Lex::Ident => "an identifier",
                    Lex::Delim("(") => "a closing parenthesis",
                    Lex::Delim("[") => "a closing bracket",
                    Lex::Delim("{") => "a closing brace",
                    Lex::Delim("\"") => "a closing quote",
                    Lex::Escape => "a string escape sequence",
                    Lex::Unicode => "a 4-digit hexadecimal code point",
                    _ => "a token",
                };
                format!("expected {expected} at character {}", at(rest))
            }
            None => "cannot be read".to_string(),
        },
        LoadError::Parse(errors) => match errors.first() {
            Some((expect, rest)) => {
                format!("expected {} at character {}", expect.as_str(), at(rest))
            }
            None => "cannot be parsed".to_string(),
        },
        LoadError::Io(errors) => errors
            .into_iter()
            .map(|(path, detail)| format!("cannot load module {path:?}: {detail}"))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(expression: &str, input: serde_json::Value) -> String {
        String::from_utf8(run(expression, &input).unwrap()).unwrap()
    }

    #[test]
    fn strings_are_raw_and_other_values_compact() {
        let input = serde_json::json!({"agents": [{"id": "a1", "n": 1}, {"id": "a2", "n": 2}]});
        assert_eq!(output(".agents[].id", input.clone()), "a1\na2\n");
        assert_eq!(
            output(".agents[0]", input.clone()),
            "{\"id\":\"a1\",\"n\":1}\n"
        );
        assert_eq!(output("[.agents[].n]", input.clone()), "[1,2]\n");
        assert_eq!(output(".missing", input.clone()), "null\n");
        assert_eq!(output("\"a\\tb\"", input.clone()), "a\tb\n");
        assert_eq!(output("empty", input.clone()), "");
        assert_eq!(
            output(".agents | map(select(.n > 1)) | length", input),
            "1\n"
        );
    }

    #[test]
    fn the_standard_library_is_there() {
        let input = serde_json::json!({"s": ["b", "a"], "t": "2026-11-25T19:53:44Z"});
        assert_eq!(output(".s | sort | join(\",\")", input.clone()), "a,b\n");
        assert_eq!(output(".t | test(\"^2026\")", input.clone()), "true\n");
        assert_eq!(output("keys", input), "[\"s\",\"t\"]\n");
    }

    #[test]
    fn syntax_errors_say_where() {
        let error = check(".agents[").unwrap_err();
        assert!(matches!(error, Error::Invalid { .. }), "{error:?}");
        let error = check(".a | ").unwrap_err().to_string();
        assert!(
            error.starts_with("invalid --jq expression \".a | \": expected"),
            "{error}"
        );
        let error = check("nosuchfilter").unwrap_err().to_string();
        assert!(error.contains("undefined filter `nosuchfilter`"), "{error}");
        assert!(check(".agents[] | .id").is_ok());
    }

    #[test]
    fn runtime_errors_are_errors() {
        let error = run(".a.b", &serde_json::json!({"a": [1]})).unwrap_err();
        assert!(matches!(error, Error::Runtime(_)), "{error:?}");
    }
}
