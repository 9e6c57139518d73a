//! Tokens of the filter language.

use crate::Error;

/// A token and the 1-based character position where it starts.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Token {
    pub(crate) kind: TokenKind,
    pub(crate) pos: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum TokenKind {
    LParen,
    RParen,
    Comma,
    Minus,
    Comparator(Comparator),
    /// A bare word: a field name, a keyword (`AND`, `OR`, `NOT`) or `true`/`false`/`null`.
    Word(String),
    /// A quoted string, unescaped.
    Str(String),
    /// A number as written.
    Number(String),
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Comparator {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `:` (has / contains)
    Has,
    /// `IN (...)`
    In,
}

impl Comparator {
    /// The operator as written in a filter.
    pub fn symbol(self) -> &'static str {
        match self {
            Comparator::Eq => "=",
            Comparator::Ne => "!=",
            Comparator::Lt => "<",
            Comparator::Le => "<=",
            Comparator::Gt => ">",
            Comparator::Ge => ">=",
            Comparator::Has => ":",
            Comparator::In => "IN",
        }
    }

    pub(crate) fn ops(self) -> crate::Ops {
        use crate::Ops;
        match self {
            Comparator::Eq => Ops::EQ,
            Comparator::Ne => Ops::NE,
            Comparator::Lt => Ops::LT,
            Comparator::Le => Ops::LE,
            Comparator::Gt => Ops::GT,
            Comparator::Ge => Ops::GE,
            Comparator::Has => Ops::HAS,
            Comparator::In => Ops::IN,
        }
    }
}

pub(crate) fn err(pos: usize, message: impl std::fmt::Display) -> Error {
    Error::invalid_argument(
        "filter",
        format!("invalid filter at position {pos}: {message}"),
    )
}

/// Splits `input` into tokens.
pub(crate) fn tokenize(input: &str) -> Result<Vec<Token>, Error> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let pos = i + 1;
        let kind = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => {
                i += 1;
                TokenKind::LParen
            }
            ')' => {
                i += 1;
                TokenKind::RParen
            }
            ',' => {
                i += 1;
                TokenKind::Comma
            }
            ':' => {
                i += 1;
                TokenKind::Comparator(Comparator::Has)
            }
            '=' => {
                i += 1;
                TokenKind::Comparator(Comparator::Eq)
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                i += 2;
                TokenKind::Comparator(Comparator::Ne)
            }
            '<' | '>' => {
                let eq = chars.get(i + 1) == Some(&'=');
                i += if eq { 2 } else { 1 };
                TokenKind::Comparator(match (c, eq) {
                    ('<', false) => Comparator::Lt,
                    ('<', true) => Comparator::Le,
                    ('>', false) => Comparator::Gt,
                    _ => Comparator::Ge,
                })
            }
            '"' | '\'' => {
                let (s, next) = string(&chars, i)?;
                i = next;
                TokenKind::Str(s)
            }
            '-' if chars
                .get(i + 1)
                .is_some_and(|d| d.is_ascii_digit() || *d == '.') =>
            {
                let next = number_end(&chars, i + 1);
                let text: String = chars[i..next].iter().collect();
                i = next;
                TokenKind::Number(text)
            }
            '-' => {
                i += 1;
                TokenKind::Minus
            }
            c if c.is_ascii_digit()
                || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let next = number_end(&chars, i);
                let text: String = chars[i..next].iter().collect();
                i = next;
                TokenKind::Number(text)
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.')
                {
                    i += 1;
                }
                TokenKind::Word(chars[start..i].iter().collect())
            }
            other => return Err(err(pos, format_args!("unexpected character {other:?}"))),
        };
        tokens.push(Token { kind, pos });
    }
    Ok(tokens)
}

fn number_end(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() {
        let c = chars[i];
        let exponent_sign =
            (c == '-' || c == '+') && matches!(chars.get(i.wrapping_sub(1)), Some('e' | 'E'));
        if c.is_ascii_alphanumeric() || c == '.' || c == '_' || exponent_sign {
            i += 1;
        } else {
            break;
        }
    }
    i
}

/// Reads a quoted string starting at `chars[start]`; returns it unescaped and the index after it.
fn string(chars: &[char], start: usize) -> Result<(String, usize), Error> {
    let quote = chars[start];
    let mut out = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            c if c == quote => return Ok((out, i + 1)),
            '\\' => {
                let escaped = chars
                    .get(i + 1)
                    .ok_or_else(|| err(i + 1, "unfinished escape sequence at end of filter"))?;
                if *escaped == 'u' {
                    let (c, next) = unicode_escape(chars, i)?;
                    out.push(c);
                    i = next;
                    continue;
                }
                out.push(match escaped {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    'b' => '\u{8}',
                    'f' => '\u{c}',
                    '\\' | '"' | '\'' | '/' => *escaped,
                    other => {
                        return Err(err(
                            i + 1,
                            format_args!("unknown escape sequence \\{other}"),
                        ));
                    }
                });
                i += 2;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Err(err(start + 1, "unterminated string"))
}

/// Reads `\uXXXX` (and a following low surrogate, as JSON writes characters
/// outside the basic plane) starting at the backslash `chars[at]`.
fn unicode_escape(chars: &[char], at: usize) -> Result<(char, usize), Error> {
    let hex = |start: usize| -> Option<u32> {
        let digits: String = chars.get(start..start + 4)?.iter().collect();
        u32::from_str_radix(&digits, 16).ok()
    };
    let bad = || {
        err(
            at + 1,
            "invalid \\u escape: expected four hexadecimal digits of a valid character",
        )
    };
    let high = hex(at + 2).ok_or_else(bad)?;
    if (0xD800..0xDC00).contains(&high) {
        if chars.get(at + 6) == Some(&'\\') && chars.get(at + 7) == Some(&'u') {
            let low = hex(at + 8).ok_or_else(bad)?;
            if (0xDC00..0xE000).contains(&low) {
                let c = char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
                    .ok_or_else(bad)?;
                return Ok((c, at + 12));
            }
        }
        return Err(bad());
    }
    Ok((char::from_u32(high).ok_or_else(bad)?, at + 6))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(input: &str) -> Vec<TokenKind> {
        tokenize(input)
            .unwrap()
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    #[test]
    fn comparators_and_literals() {
        assert_eq!(
            kinds(r#"a>=1 AND b != "x\"y" OR c:-2.5e3"#),
            vec![
                TokenKind::Word("a".into()),
                TokenKind::Comparator(Comparator::Ge),
                TokenKind::Number("1".into()),
                TokenKind::Word("AND".into()),
                TokenKind::Word("b".into()),
                TokenKind::Comparator(Comparator::Ne),
                TokenKind::Str("x\"y".into()),
                TokenKind::Word("OR".into()),
                TokenKind::Word("c".into()),
                TokenKind::Comparator(Comparator::Has),
                TokenKind::Number("-2.5e3".into()),
            ]
        );
    }

    #[test]
    fn json_escapes_are_understood() {
        let text = "a\u{1}\u{8}\u{c}/é🦀\"\\";
        let json = serde_json::to_string(text).unwrap();
        assert_eq!(kinds(&json), vec![TokenKind::Str(text.into())]);
        assert_eq!(
            kinds(r#""\ud83e\udd80""#),
            vec![TokenKind::Str("🦀".into())]
        );
        assert!(tokenize(r#""\ud83e""#).is_err());
        assert!(tokenize(r#""\u12""#).is_err());
    }

    #[test]
    fn positions_count_characters() {
        let tokens = tokenize("é = 'ü' ;").unwrap_err();
        assert!(tokens.to_string().contains("position 9"), "{tokens}");
    }

    #[test]
    fn unterminated_string_is_reported_where_it_starts() {
        let e = tokenize("name = \"abc").unwrap_err();
        assert!(e.to_string().contains("position 8"), "{e}");
        assert!(e.to_string().contains("unterminated string"));
    }
}
