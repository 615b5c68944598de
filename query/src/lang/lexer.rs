//! Splits a query into lexemes, each with its 1-based character position.

use super::SyntaxError;

/// One lexeme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lex {
    Open,
    Close,
    /// `-` directly before a term.
    Minus,
    And,
    Or,
    Not,
    /// A term: an optional field, and its value.
    Term {
        field: Option<String>,
        value: Raw,
    },
}

/// A term's value as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Raw {
    /// A bare word (may end in `*` or start with a comparison).
    Bare(String),
    /// A `"quoted"` text, unescaped.
    Quoted(String),
    /// A `/regex/`, with `\/` turned into `/`.
    Regex(String),
}

/// The lexemes of `text`, with positions.
pub fn lex(text: &str) -> Result<Vec<(usize, Lex)>, SyntaxError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let at = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        match c {
            '(' => {
                out.push((at, Lex::Open));
                i += 1;
            }
            ')' => {
                out.push((at, Lex::Close));
                i += 1;
            }
            '-' if chars.get(i + 1).is_some_and(|n| starts_term(*n)) => {
                out.push((at, Lex::Minus));
                i += 1;
            }
            _ => {
                let (lex, next) = term(&chars, i)?;
                out.push((at, lex));
                i = next;
            }
        }
    }
    Ok(out)
}

/// Whether a term can start with `c` (after a `-`).
fn starts_term(c: char) -> bool {
    !c.is_whitespace() && c != ')' && c != '-'
}

/// Whether `c` ends a bare word.
fn ends_bare(c: char) -> bool {
    c.is_whitespace() || c == '(' || c == ')' || c == '"'
}

/// Whether `c` may be part of a field name.
fn field_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '@')
}

/// The term starting at `i`, and the index after it.
fn term(chars: &[char], i: usize) -> Result<(Lex, usize), SyntaxError> {
    // A field name directly followed by `:` (and a value) makes a field term.
    let mut j = i;
    while j < chars.len() && field_char(chars[j]) {
        j += 1;
    }
    let (field, start) = if j > i && chars.get(j) == Some(&':') {
        let name: String = chars[i..j].iter().collect();
        match chars.get(j + 1) {
            None => {
                return Err(SyntaxError {
                    position: j + 2,
                    message: format!(
                        "expected a value after `{name}:`, found the end of the query"
                    ),
                });
            }
            Some(c) if c.is_whitespace() || *c == ')' => {
                return Err(SyntaxError {
                    position: j + 2,
                    message: format!("expected a value directly after `{name}:`"),
                });
            }
            Some(_) => (Some(name), j + 1),
        }
    } else {
        (None, i)
    };
    let (value, next) = match chars[start] {
        '"' => delimited(chars, start, '"').map(|(v, n)| (Raw::Quoted(v), n))?,
        '/' => delimited(chars, start, '/').map(|(v, n)| (Raw::Regex(v), n))?,
        _ => {
            let mut k = start;
            while k < chars.len() && !ends_bare(chars[k]) {
                k += 1;
            }
            let word: String = chars[start..k].iter().collect();
            if field.is_none() {
                let keyword = match word.as_str() {
                    "AND" => Some(Lex::And),
                    "OR" => Some(Lex::Or),
                    "NOT" => Some(Lex::Not),
                    _ => None,
                };
                if let Some(keyword) = keyword {
                    return Ok((keyword, k));
                }
            }
            (Raw::Bare(word), k)
        }
    };
    Ok((Lex::Term { field, value }, next))
}

/// A text between two `quote`s starting at `start`, unescaped, and the
/// index after the closing one.
fn delimited(chars: &[char], start: usize, quote: char) -> Result<(String, usize), SyntaxError> {
    let what = if quote == '"' {
        "quoted text"
    } else {
        "regular expression"
    };
    let mut out = String::new();
    let mut k = start + 1;
    while k < chars.len() {
        match chars[k] {
            '\\' if chars.get(k + 1) == Some(&quote) => {
                out.push(quote);
                k += 2;
            }
            '\\' if quote == '"' && chars.get(k + 1) == Some(&'\\') => {
                out.push('\\');
                k += 2;
            }
            c if c == quote => return Ok((out, k + 1)),
            c => {
                out.push(c);
                k += 1;
            }
        }
    }
    Err(SyntaxError {
        position: start + 1,
        message: format!("the {what} starting here has no closing {quote}"),
    })
}
