//! Recursive descent over the lexemes: `or := and (OR and)*`,
//! `and := unary ([AND] unary)*`, `unary := (- | NOT) unary | ( or ) | term`.

use sluice_core::Level;
use sluice_core::index::tokens;

use super::lexer::{Lex, Raw, lex};
use super::{Cmp, Expr, Field, MAX_QUERY_BYTES, MAX_REGEX_BYTES, SyntaxError, Term, Value};

/// How deeply parentheses and negations may nest.
const MAX_DEPTH: usize = 64;

/// Parses a query (see the module doc of [`super`]).
pub fn parse(text: &str) -> Result<Expr, SyntaxError> {
    if text.len() > MAX_QUERY_BYTES {
        return Err(SyntaxError {
            position: 1,
            message: format!(
                "the query is {} bytes long; at most {MAX_QUERY_BYTES} are accepted",
                text.len()
            ),
        });
    }
    let lexemes = lex(text)?;
    let end = text.chars().count() + 1;
    let mut parser = Parser {
        lexemes,
        next: 0,
        end,
        depth: 0,
    };
    if parser.lexemes.is_empty() {
        return Ok(Expr::All);
    }
    let expr = parser.or()?;
    match parser.peek() {
        None => Ok(expr),
        Some((at, Lex::Close)) => Err(SyntaxError {
            position: at,
            message: "found `)` without a matching `(`".into(),
        }),
        Some((at, lex)) => Err(SyntaxError {
            position: at,
            message: format!("expected the end of the query, found {}", describe(lex)),
        }),
    }
}

struct Parser {
    lexemes: Vec<(usize, Lex)>,
    next: usize,
    end: usize,
    depth: usize,
}

fn describe(lex: &Lex) -> String {
    match lex {
        Lex::Open => "`(`".into(),
        Lex::Close => "`)`".into(),
        Lex::Minus => "`-`".into(),
        Lex::And => "AND".into(),
        Lex::Or => "OR".into(),
        Lex::Not => "NOT".into(),
        Lex::Term { .. } => "a term".into(),
    }
}

impl Parser {
    fn peek(&self) -> Option<(usize, &Lex)> {
        self.lexemes.get(self.next).map(|(at, l)| (*at, l))
    }

    fn bump(&mut self) -> Option<(usize, Lex)> {
        let lex = self.lexemes.get(self.next).cloned();
        self.next += 1;
        lex
    }

    fn found(&self) -> (usize, String) {
        match self.peek() {
            Some((at, lex)) => (at, describe(lex)),
            None => (self.end, "the end of the query".into()),
        }
    }

    fn or(&mut self) -> Result<Expr, SyntaxError> {
        let mut parts = vec![self.and()?];
        while let Some((_, Lex::Or)) = self.peek() {
            self.bump();
            parts.push(self.unary_after("OR")?);
            // The rest of this AND group.
            let last = parts.pop().unwrap_or(Expr::All);
            parts.push(self.and_from(last)?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Expr, SyntaxError> {
        let first = self.unary()?;
        self.and_from(first)
    }

    fn and_from(&mut self, first: Expr) -> Result<Expr, SyntaxError> {
        let mut parts = vec![first];
        loop {
            match self.peek() {
                Some((_, Lex::And)) => {
                    self.bump();
                    parts.push(self.unary_after("AND")?);
                }
                Some((_, Lex::Or | Lex::Close)) | None => break,
                Some(_) => parts.push(self.unary()?),
            }
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::And(parts)
        })
    }

    fn unary_after(&mut self, keyword: &str) -> Result<Expr, SyntaxError> {
        match self.peek() {
            None | Some((_, Lex::Or | Lex::And | Lex::Close)) => {
                let (at, found) = self.found();
                Err(SyntaxError {
                    position: at,
                    message: format!("expected a term after {keyword}, found {found}"),
                })
            }
            _ => self.unary(),
        }
    }

    fn unary(&mut self) -> Result<Expr, SyntaxError> {
        let (at, found) = self.found();
        let Some((_, lex)) = self.bump() else {
            return Err(SyntaxError {
                position: at,
                message: format!("expected a term, found {found}"),
            });
        };
        match lex {
            Lex::Minus | Lex::Not => {
                let inner = self.nested(at, |p| {
                    p.unary_after(if lex == Lex::Not { "NOT" } else { "-" })
                })?;
                Ok(Expr::Not(Box::new(inner)))
            }
            Lex::Open => {
                let inner = self.nested(at, |p| {
                    if let Some((_, Lex::Close)) = p.peek() {
                        return Err(SyntaxError {
                            position: at,
                            message: "expected a term inside `()`".into(),
                        });
                    }
                    p.or()
                })?;
                match self.bump() {
                    Some((_, Lex::Close)) => Ok(inner),
                    _ => Err(SyntaxError {
                        position: at,
                        message: "the `(` here has no matching `)`".into(),
                    }),
                }
            }
            Lex::Term { field, value } => term(at, field, value).map(Expr::Term),
            Lex::Close | Lex::And | Lex::Or => Err(SyntaxError {
                position: at,
                message: format!("expected a term, found {found}"),
            }),
        }
    }

    fn nested(
        &mut self,
        at: usize,
        f: impl FnOnce(&mut Parser) -> Result<Expr, SyntaxError>,
    ) -> Result<Expr, SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(SyntaxError {
                position: at,
                message: format!("nested more than {MAX_DEPTH} deep"),
            });
        }
        let out = f(self);
        self.depth -= 1;
        out
    }
}

fn field_of(name: &str) -> Field {
    match name.to_ascii_lowercase().as_str() {
        "app" => Field::App,
        "service" => Field::Service,
        "host" => Field::Host,
        "source" => Field::Source,
        "id" => Field::Id,
        "level" => Field::Level,
        "msg" | "message" => Field::Msg,
        _ => Field::Attr(name.to_string()),
    }
}

fn term(at: usize, field: Option<String>, raw: Raw) -> Result<Term, SyntaxError> {
    let field = field.as_deref().map_or(Field::Text, field_of);
    // Where the value starts, for errors about it.
    let value = match raw {
        Raw::Regex(pattern) => Value::Regex(
            regex::RegexBuilder::new(&pattern)
                .size_limit(MAX_REGEX_BYTES)
                .build()
                .map_err(|e| SyntaxError {
                    position: at,
                    message: format!("invalid regular expression: {}", one_line(&e.to_string())),
                })?,
        ),
        Raw::Quoted(text) if field == Field::Level => level_value(at, &text)?,
        Raw::Quoted(text) => Value::Text {
            tokens: tokens(&text).collect(),
            raw: text,
        },
        Raw::Bare(word) if field == Field::Level => level_value(at, &word)?,
        Raw::Bare(word) if word.ends_with('*') => {
            let prefix = word.trim_end_matches('*');
            if prefix.is_empty() {
                return Err(SyntaxError {
                    position: at,
                    message: "expected at least one character before `*`".into(),
                });
            }
            Value::Prefix(prefix.to_lowercase())
        }
        Raw::Bare(word) => Value::Text {
            tokens: tokens(&word).collect(),
            raw: word,
        },
    };
    Ok(Term { field, value })
}

fn level_value(at: usize, text: &str) -> Result<Value, SyntaxError> {
    let (cmp, name) = [
        (">=", Cmp::Ge),
        ("<=", Cmp::Le),
        (">", Cmp::Gt),
        ("<", Cmp::Lt),
        ("=", Cmp::Eq),
    ]
    .into_iter()
    .find_map(|(op, cmp)| text.strip_prefix(op).map(|rest| (cmp, rest)))
    .unwrap_or((Cmp::Eq, text));
    let level = Level::from_alias(name).ok_or_else(|| SyntaxError {
        position: at,
        message: format!(
            "expected a level (trace, debug, info, warn, error or fatal) after `level:`, found {name:?}"
        ),
    })?;
    Ok(Value::Level(cmp, level))
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(expr: &Expr) -> String {
        match expr {
            Expr::All => "ALL".into(),
            Expr::And(parts) => format!(
                "(and {})",
                parts.iter().map(shape).collect::<Vec<_>>().join(" ")
            ),
            Expr::Or(parts) => format!(
                "(or {})",
                parts.iter().map(shape).collect::<Vec<_>>().join(" ")
            ),
            Expr::Not(inner) => format!("(not {})", shape(inner)),
            Expr::Term(t) => {
                let field = match &t.field {
                    Field::Text => String::new(),
                    Field::Attr(k) => format!("{k}:"),
                    other => format!("{}:", format!("{other:?}").to_lowercase()),
                };
                let value = match &t.value {
                    Value::Text { raw, .. } => raw.clone(),
                    Value::Prefix(p) => format!("{p}*"),
                    Value::Regex(r) => format!("/{}/", r.as_str()),
                    Value::Level(cmp, level) => format!("{cmp:?}{}", level.as_str()),
                };
                format!("{field}{value}")
            }
        }
    }

    fn ok(text: &str) -> String {
        shape(&parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}")))
    }

    fn err(text: &str) -> String {
        parse(text).expect_err(text).to_string()
    }

    #[test]
    fn precedence_and_grouping() {
        assert_eq!(ok(""), "ALL");
        assert_eq!(ok("   "), "ALL");
        assert_eq!(ok("a b"), "(and a b)");
        assert_eq!(ok("a AND b"), "(and a b)");
        assert_eq!(ok("a b OR c"), "(or (and a b) c)");
        assert_eq!(ok("a OR b c"), "(or a (and b c))");
        assert_eq!(ok("a (b OR c)"), "(and a (or b c))");
        assert_eq!(ok("-a NOT b"), "(and (not a) (not b))");
        assert_eq!(ok("NOT (a OR b)"), "(not (or a b))");
        assert_eq!(ok("a or b"), "(and a or b)");
        assert_eq!(ok("x-y"), "x-y");
    }

    #[test]
    fn every_kind_of_term() {
        assert_eq!(ok(r#""payment declined""#), "payment declined");
        assert_eq!(ok("pay*"), "pay*");
        assert_eq!(ok("PAY*"), "pay*");
        assert_eq!(ok(r"/time(d)? out\/x/"), "/time(d)? out/x/");
        assert_eq!(ok("service:checkout"), "service:checkout");
        assert_eq!(ok("Service:checkout"), "service:checkout");
        assert_eq!(ok("request_id:req-123"), "request_id:req-123");
        assert_eq!(ok(r#"user:"Zoë K""#), "user:Zoë K");
        assert_eq!(ok("host:web*"), "host:web*");
        assert_eq!(ok("service:/^check/"), "service:/^check/");
        assert_eq!(ok("level:>=warn"), "level:GeWARN");
        assert_eq!(ok("level:error"), "level:EqERROR");
        assert_eq!(ok("level:<warning"), "level:LtWARN");
        assert_eq!(ok("msg:timeout"), "msg:timeout");
        assert_eq!(ok("10:30"), "10:30");
        assert_eq!(ok(r#""a \"b\" c\\""#), r#"a "b" c\"#);
    }

    #[test]
    fn errors_name_the_position_and_what_was_expected() {
        assert_eq!(
            err("a OR"),
            "at 5: expected a term after OR, found the end of the query"
        );
        assert_eq!(err("a OR OR b"), "at 6: expected a term after OR, found OR");
        assert_eq!(err("(a b"), "at 1: the `(` here has no matching `)`");
        assert_eq!(err("a b)"), "at 4: found `)` without a matching `(`");
        assert_eq!(err("()"), "at 1: expected a term inside `()`");
        assert_eq!(
            err(r#"a "open"#),
            "at 3: the quoted text starting here has no closing \""
        );
        assert_eq!(
            err("/ab"),
            "at 1: the regular expression starting here has no closing /"
        );
        assert_eq!(
            err("service:"),
            "at 9: expected a value after `service:`, found the end of the query"
        );
        assert_eq!(
            err("service: x"),
            "at 9: expected a value directly after `service:`"
        );
        assert_eq!(
            err("level:loud"),
            "at 1: expected a level (trace, debug, info, warn, error or fatal) after `level:`, found \"loud\""
        );
        assert_eq!(err("*"), "at 1: expected at least one character before `*`");
        assert_eq!(
            err("NOT"),
            "at 4: expected a term after NOT, found the end of the query"
        );
        assert!(err("/(/").starts_with("at 1: invalid regular expression"));
        assert!(err(&"(".repeat(100)).contains("nested more than 64 deep"));
        assert!(err(&"a ".repeat(3000)).contains("at most 4096"));
        assert_eq!(
            err("a AND"),
            "at 6: expected a term after AND, found the end of the query"
        );
    }
}
