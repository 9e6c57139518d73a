//! The typed filter AST and its parser (a subset of Google AIP-160).
//!
//! Grammar, with AIP-160's precedence (`OR` binds tighter than `AND`):
//!
//! ```text
//! filter     := expression?
//! expression := sequence ("AND" sequence)*
//! sequence   := factor ("OR" factor)*
//! factor     := ("NOT" | "-") factor | term
//! term       := "(" expression ")" | comparison
//! comparison := FIELD ("=" | "!=" | "<" | "<=" | ">" | ">=" | ":") value
//! value      := STRING | NUMBER | "true" | "false" | "null"
//! ```
//!
//! Strings are quoted with `"` or `'` (escapes: `\\ \" \' \n \t \r`)
//! and cannot hold NUL or other control characters (tab, line feed and
//! carriage return aside); timestamps are RFC 3339 strings and UUIDs are
//! strings; an enum field takes its variants' JSON forms. `:` on a text
//! field is a case-insensitive substring match (the database's `LOWER()` on
//! both sides). `=`, `!=` and `IN` compare text exactly on every database
//! (see the `exact` module). `= null` / `!= null` test for NULL; any other
//! comparison, `!=` included, never matches NULL.

use std::fmt;

use sea_orm::sea_query::{BinOper, Condition, Expr, ExprTrait, Func};
use sea_orm::{ColumnTrait, DbBackend, EntityTrait, Value};

use super::exact;
use super::lexer::{Comparator, Token, TokenKind, err, tokenize};
use crate::resource::describe_choices;
use crate::resource::value::{self, FieldType};
use crate::{Error, Field, Resource, View};

/// Bounds on the size of a filter, so a request cannot make the database do unbounded work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryLimits {
    /// Longest filter text, in characters (default 2048).
    pub max_filter_length: usize,
    /// Most comparisons in one filter (default 32).
    pub max_clauses: usize,
    /// Deepest nesting of parentheses and `NOT` (default 8).
    pub max_depth: usize,
    /// Most `:` (contains) comparisons in one filter (default 4): each is a
    /// scan of the column that no ordinary index serves.
    pub max_contains: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            max_filter_length: 2048,
            max_clauses: 32,
            max_depth: 8,
            max_contains: 4,
        }
    }
}

/// A literal as written in a filter.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A number with a fraction or exponent.
    Float(f64),
    /// A quoted string (also timestamps, dates and UUIDs).
    Str(String),
    /// The values of `IN (...)`.
    List(Vec<Literal>),
}

impl Literal {
    /// Whether this literal is the JSON value `json` (an enum's variant).
    fn is_json(&self, json: &serde_json::Value) -> bool {
        use serde_json::Value as Json;
        match (self, json) {
            (Literal::Null, Json::Null) => true,
            (Literal::Bool(a), Json::Bool(b)) => a == b,
            (Literal::Int(a), Json::Number(b)) => b.as_i64() == Some(*a),
            (Literal::Float(a), Json::Number(b)) => b.as_f64() == Some(*a),
            (Literal::Str(a), Json::String(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Null => f.write_str("null"),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Int(n) => write!(f, "{n}"),
            Literal::Float(x) => write!(f, "{x:?}"),
            Literal::Str(s) => write!(f, "{}", serde_json::Value::String(s.clone())),
            Literal::List(items) => {
                f.write_str("(")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str(")")
            }
        }
    }
}

/// One `field op value` test, checked against the resource's allow-list.
pub struct Comparison<E: EntityTrait> {
    /// The field, from the resource's [`FIELDS`](Resource::FIELDS).
    pub field: &'static Field<E>,
    /// The operator.
    pub op: Comparator,
    /// The literal as written.
    pub literal: Literal,
    /// The literal converted to the column's type, bound as parameters
    /// (one value; several for `IN`).
    values: Vec<Value>,
}

impl<E: EntityTrait> Clone for Comparison<E> {
    fn clone(&self) -> Self {
        Comparison {
            field: self.field,
            op: self.op,
            literal: self.literal.clone(),
            values: self.values.clone(),
        }
    }
}

impl<E: EntityTrait> fmt::Debug for Comparison<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl<E: EntityTrait> fmt::Display for Comparison<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.field.name,
            self.op.symbol(),
            self.literal
        )
    }
}

/// A parsed, type-checked filter over resource `E`.
///
/// ```
/// # use keel::query::Filter;
/// # fn demo<E: keel::Resource>() -> keel::Result<()> {
/// let filter = Filter::<E>::parse("price_cents > 100 AND NOT sku : \"old\"")?;
/// # Ok(()) }
/// ```
pub enum Filter<E: EntityTrait> {
    /// Every part must hold.
    And(Vec<Filter<E>>),
    /// At least one part must hold.
    Or(Vec<Filter<E>>),
    /// The part must not hold.
    Not(Box<Filter<E>>),
    /// A comparison.
    Compare(Comparison<E>),
}

impl<E: EntityTrait> Clone for Filter<E> {
    fn clone(&self) -> Self {
        match self {
            Filter::And(parts) => Filter::And(parts.clone()),
            Filter::Or(parts) => Filter::Or(parts.clone()),
            Filter::Not(inner) => Filter::Not(inner.clone()),
            Filter::Compare(c) => Filter::Compare(c.clone()),
        }
    }
}

impl<E: EntityTrait> fmt::Debug for Filter<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Filter({self})")
    }
}

/// The canonical text of the filter: fully parenthesised, strings re-quoted.
impl<E: EntityTrait> fmt::Display for Filter<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |f: &mut fmt::Formatter<'_>, parts: &[Filter<E>], sep: &str| {
            f.write_str("(")?;
            for (i, part) in parts.iter().enumerate() {
                if i > 0 {
                    f.write_str(sep)?;
                }
                write!(f, "{part}")?;
            }
            f.write_str(")")
        };
        match self {
            Filter::And(parts) => join(f, parts, " AND "),
            Filter::Or(parts) => join(f, parts, " OR "),
            Filter::Not(inner) => write!(f, "NOT {inner}"),
            Filter::Compare(c) => write!(f, "{c}"),
        }
    }
}

impl<E: Resource> Filter<E> {
    /// Parses `text` with the default [`QueryLimits`]. `Ok(None)` for an empty filter.
    pub fn parse(text: &str) -> Result<Option<Self>, Error> {
        Self::parse_with(text, &QueryLimits::default())
    }

    /// Parses `text` within `limits`. `Ok(None)` for an empty filter.
    pub fn parse_with(text: &str, limits: &QueryLimits) -> Result<Option<Self>, Error> {
        Self::parse_in(text, limits, View::All)
    }

    /// Parses `text` within `limits` for a caller with `view`: in
    /// [`View::Public`] the resource's private fields are unknown fields.
    pub fn parse_in(text: &str, limits: &QueryLimits, view: View) -> Result<Option<Self>, Error> {
        let length = text.chars().count();
        if length > limits.max_filter_length {
            return Err(Error::invalid_argument(
                "filter",
                format!(
                    "filter is {length} characters long; at most {} are allowed",
                    limits.max_filter_length
                ),
            ));
        }
        let tokens = tokenize(text)?;
        if tokens.is_empty() {
            return Ok(None);
        }
        let mut parser = Parser {
            tokens,
            at: 0,
            clauses: 0,
            contains: 0,
            limits,
            view,
            end: length + 1,
            entity: std::marker::PhantomData::<E>,
        };
        let filter = parser.expression(0)?;
        if let Some(token) = parser.peek() {
            if let TokenKind::Word(w) = &token.kind
                && matches!(w.as_str(), "and" | "or")
            {
                return Err(err(
                    token.pos,
                    format_args!(
                        "`{w}` is not an operator; logical operators are uppercase: {}",
                        w.to_uppercase()
                    ),
                ));
            }
            return Err(err(
                token.pos,
                format_args!(
                    "unexpected {}; expected AND, OR or the end of the filter",
                    describe(&token.kind)
                ),
            ));
        }
        Ok(Some(filter))
    }

    /// The SQL condition for `backend`, with every value bound as a parameter.
    pub fn condition(&self, backend: DbBackend) -> Condition {
        match self {
            Filter::And(parts) => parts
                .iter()
                .fold(Condition::all(), |c, p| c.add(p.condition(backend))),
            Filter::Or(parts) => parts
                .iter()
                .fold(Condition::any(), |c, p| c.add(p.condition(backend))),
            Filter::Not(inner) => Condition::all().add(inner.condition(backend)).not(),
            Filter::Compare(c) => Condition::all().add(comparison_expr(c, backend)),
        }
    }
}

fn comparison_expr<E: EntityTrait>(c: &Comparison<E>, backend: DbBackend) -> Expr {
    let column = c.field.column;
    if c.op == Comparator::In {
        return exact::is_in(backend, column, &c.values);
    }
    let v = c.values.first().cloned().unwrap_or(Value::Bool(None));
    if value::is_null(&v) {
        return match c.op {
            Comparator::Ne => column.is_not_null(),
            _ => column.is_null(),
        };
    }
    match c.op {
        Comparator::Eq | Comparator::In => exact::eq(backend, column, v),
        Comparator::Ne => exact::ne(backend, column, v),
        Comparator::Lt => column.lt(v),
        Comparator::Le => column.lte(v),
        Comparator::Gt => column.gt(v),
        Comparator::Ge => column.gte(v),
        Comparator::Has => {
            let pattern = match &c.literal {
                Literal::Str(needle) => format!("%{}%", escape_like(needle)),
                _ => String::from("%"),
            };
            // The same LOWER() on both sides: SQLite's folds ASCII only, and
            // a needle folded in Rust would then miss its own text.
            let pattern = Expr::Binary(
                Box::new(Func::lower(Expr::val(pattern)).into()),
                BinOper::Escape,
                Box::new(Expr::Constant('!'.into())),
            );
            Expr::expr(Func::lower(Expr::col(column.as_column_ref())))
                .binary(BinOper::Like, pattern)
        }
    }
}

/// Escapes LIKE wildcards with `!` (a character no SQL dialect treats specially in a literal).
fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '!') {
            out.push('!');
        }
        out.push(c);
    }
    out
}

fn describe(kind: &TokenKind) -> String {
    match kind {
        TokenKind::LParen => "`(`".into(),
        TokenKind::RParen => "`)`".into(),
        TokenKind::Comma => "`,`".into(),
        TokenKind::Minus => "`-`".into(),
        TokenKind::Comparator(c) => format!("`{}`", c.symbol()),
        TokenKind::Word(w) => format!("`{w}`"),
        TokenKind::Str(s) => format!("string {}", serde_json::Value::String(s.clone())),
        TokenKind::Number(n) => format!("number {n}"),
    }
}

struct Parser<'a, E> {
    tokens: Vec<Token>,
    at: usize,
    clauses: usize,
    contains: usize,
    limits: &'a QueryLimits,
    view: View,
    end: usize,
    entity: std::marker::PhantomData<E>,
}

impl<E: Resource> Parser<'_, E> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self, expected: &str) -> Result<Token, Error> {
        let token = self.tokens.get(self.at).cloned().ok_or_else(|| {
            err(
                self.end,
                format_args!("unexpected end of filter; expected {expected}"),
            )
        })?;
        self.at += 1;
        Ok(token)
    }

    fn peek_word(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token { kind: TokenKind::Word(w), .. }) if w == word)
    }

    fn nest(&self, depth: usize, pos: usize) -> Result<usize, Error> {
        if depth + 1 > self.limits.max_depth {
            return Err(err(
                pos,
                format_args!(
                    "the filter nests deeper than {} levels",
                    self.limits.max_depth
                ),
            ));
        }
        Ok(depth + 1)
    }

    fn expression(&mut self, depth: usize) -> Result<Filter<E>, Error> {
        let mut parts = vec![self.sequence(depth)?];
        while self.peek_word("AND") {
            self.at += 1;
            parts.push(self.sequence(depth)?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Filter::And(parts)
        })
    }

    fn sequence(&mut self, depth: usize) -> Result<Filter<E>, Error> {
        let mut parts = vec![self.factor(depth)?];
        while self.peek_word("OR") {
            self.at += 1;
            parts.push(self.factor(depth)?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Filter::Or(parts)
        })
    }

    fn factor(&mut self, depth: usize) -> Result<Filter<E>, Error> {
        match self.peek() {
            Some(Token {
                kind: TokenKind::Minus,
                pos,
            }) => {
                let depth = self.nest(depth, *pos)?;
                self.at += 1;
                Ok(Filter::Not(Box::new(self.factor(depth)?)))
            }
            Some(Token {
                kind: TokenKind::Word(w),
                pos,
            }) if w == "NOT" => {
                let depth = self.nest(depth, *pos)?;
                self.at += 1;
                Ok(Filter::Not(Box::new(self.factor(depth)?)))
            }
            _ => self.term(depth),
        }
    }

    fn term(&mut self, depth: usize) -> Result<Filter<E>, Error> {
        let token = self.next("a comparison such as `field = value`")?;
        match token.kind {
            TokenKind::LParen => {
                let depth = self.nest(depth, token.pos)?;
                let inner = self.expression(depth)?;
                let close = self.next("`)`")?;
                if close.kind != TokenKind::RParen {
                    return Err(err(
                        close.pos,
                        format_args!(
                            "expected `)` to close the `(` at position {}, found {}",
                            token.pos,
                            describe(&close.kind)
                        ),
                    ));
                }
                Ok(inner)
            }
            TokenKind::Word(name) => self.comparison(&name, token.pos),
            other => Err(err(
                token.pos,
                format_args!("expected a field name, found {}", describe(&other)),
            )),
        }
    }

    fn comparison(&mut self, name: &str, pos: usize) -> Result<Filter<E>, Error> {
        if matches!(name, "AND" | "OR") {
            return Err(err(
                pos,
                format_args!("expected a comparison before `{name}`"),
            ));
        }
        if matches!(name, "and" | "or" | "not") {
            return Err(err(
                pos,
                format_args!(
                    "`{name}` is not an operator; logical operators are uppercase: {}",
                    name.to_uppercase()
                ),
            ));
        }
        let field = find_field::<E>(name, self.view).ok_or_else(|| {
            let known: Vec<&str> = E::FIELDS
                .iter()
                .filter(|f| !f.ops.is_empty() && self.view.shows::<E>(f.name))
                .map(|f| f.name)
                .collect();
            err(
                pos,
                format_args!(
                    "unknown field `{name}`; filterable fields are: {}",
                    known.join(", ")
                ),
            )
        })?;
        if field.ops.is_empty() {
            return Err(err(
                pos,
                format_args!("field `{name}` cannot be filtered on"),
            ));
        }
        let op_token = self.next("a comparison operator (=, !=, <, <=, >, >=, :, IN)")?;
        let op = match op_token.kind {
            TokenKind::Comparator(op) => op,
            TokenKind::Word(ref w) if w == "IN" => Comparator::In,
            ref other => {
                return Err(err(
                    op_token.pos,
                    format_args!(
                        "expected a comparison operator (=, !=, <, <=, >, >=, :, IN) after `{name}`, found {}",
                        describe(other)
                    ),
                ));
            }
        };
        if !field.ops.contains(op.ops()) {
            return Err(err(
                op_token.pos,
                format_args!(
                    "operator `{}` is not allowed on field `{name}`; allowed: {}",
                    op.symbol(),
                    field.ops
                ),
            ));
        }
        if op == Comparator::Has {
            self.contains += 1;
            if self.contains > self.limits.max_contains {
                return Err(err(
                    op_token.pos,
                    format_args!(
                        "the filter has more than {} `:` (contains) comparisons, each a scan of its column",
                        self.limits.max_contains
                    ),
                ));
            }
        }
        self.clauses += 1;
        if self.clauses > self.limits.max_clauses {
            return Err(err(
                pos,
                format_args!(
                    "the filter has more than {} comparisons",
                    self.limits.max_clauses
                ),
            ));
        }
        let (literal, values) = if op == Comparator::In {
            self.list(field)?
        } else {
            let value_token = self.next("a value")?;
            let literal = literal(&value_token)?;
            let value = typed_value::<E>(field, op, &literal, value_token.pos)?;
            (literal, vec![value])
        };
        Ok(Filter::Compare(Comparison {
            field,
            op,
            literal,
            values,
        }))
    }

    /// `(v1, v2, ...)` after `IN`: at least one value, at most `MAX_IN_VALUES`, no null.
    fn list(&mut self, field: &'static Field<E>) -> Result<(Literal, Vec<Value>), Error> {
        const MAX_IN_VALUES: usize = 100;
        let open = self.next("`(` and a list of values")?;
        if open.kind != TokenKind::LParen {
            return Err(err(
                open.pos,
                format_args!(
                    "`IN` takes a parenthesised list such as (\"a\", \"b\"), found {}",
                    describe(&open.kind)
                ),
            ));
        }
        let (mut literals, mut values) = (Vec::new(), Vec::new());
        loop {
            let token = self.next("a value")?;
            let item = literal(&token)?;
            if item == Literal::Null {
                return Err(err(token.pos, "`IN` lists cannot hold null; use `= null`"));
            }
            values.push(typed_value::<E>(field, Comparator::Eq, &item, token.pos)?);
            literals.push(item);
            if literals.len() > MAX_IN_VALUES {
                return Err(err(
                    token.pos,
                    format_args!("an `IN` list holds at most {MAX_IN_VALUES} values"),
                ));
            }
            let next = self.next("`,` or `)`")?;
            match next.kind {
                TokenKind::Comma => {}
                TokenKind::RParen => break,
                other => {
                    return Err(err(
                        next.pos,
                        format_args!(
                            "expected `,` or `)` in the `IN` list, found {}",
                            describe(&other)
                        ),
                    ));
                }
            }
        }
        Ok((Literal::List(literals), values))
    }
}

/// The field called `name`, if the caller's `view` shows it.
pub(crate) fn find_field<E: Resource>(name: &str, view: View) -> Option<&'static Field<E>> {
    E::FIELDS
        .iter()
        .find(|f| f.name == name)
        .filter(|f| view.shows::<E>(f.name))
}

fn literal(token: &Token) -> Result<Literal, Error> {
    Ok(match &token.kind {
        TokenKind::Str(s) if s.chars().any(crate::validate::is_forbidden_control) => {
            return Err(err(
                token.pos,
                "a string in a filter cannot contain control characters (U+0000-U+001F other than tab, line feed and carriage return)",
            ));
        }
        TokenKind::Str(s) => Literal::Str(s.clone()),
        TokenKind::Number(text) => {
            let is_float = text.contains(['.', 'e', 'E']);
            if is_float {
                match text.parse::<f64>() {
                    Ok(x) if x.is_finite() => Literal::Float(x),
                    _ => return Err(err(token.pos, format_args!("invalid number `{text}`"))),
                }
            } else {
                Literal::Int(text.parse().map_err(|_| {
                    err(
                        token.pos,
                        format_args!("invalid or out of range integer `{text}`"),
                    )
                })?)
            }
        }
        TokenKind::Word(w) if w == "true" => Literal::Bool(true),
        TokenKind::Word(w) if w == "false" => Literal::Bool(false),
        TokenKind::Word(w) if w == "null" => Literal::Null,
        TokenKind::Word(w) => {
            return Err(err(
                token.pos,
                format_args!("expected a value, found `{w}`; strings must be quoted"),
            ));
        }
        other => {
            return Err(err(
                token.pos,
                format_args!("expected a value, found {}", describe(other)),
            ));
        }
    })
}

fn typed_value<E: Resource>(
    field: &Field<E>,
    op: Comparator,
    literal: &Literal,
    pos: usize,
) -> Result<Value, Error> {
    let ty = value::column_type::<E>(field.column);
    let kind = FieldType::of(&ty);
    let mismatch = || {
        err(
            pos,
            format_args!(
                "field `{}` takes {}, found {literal}",
                field.name,
                kind.describe()
            ),
        )
    };
    let choices = field.choice_list();
    if !choices.is_empty() && literal != &Literal::Null {
        return match op {
            Comparator::Eq | Comparator::Ne | Comparator::In => choices
                .iter()
                .find(|c| literal.is_json(&c.json))
                .map(|c| c.stored.clone())
                .ok_or_else(|| {
                    err(
                        pos,
                        format_args!(
                            "field `{}` takes one of {}; found {literal}",
                            field.name,
                            describe_choices(choices)
                        ),
                    )
                }),
            _ => Err(err(
                pos,
                format_args!(
                    "field `{}` is an enum: compare it with =, != or IN",
                    field.name
                ),
            )),
        };
    }
    if op == Comparator::Has {
        return match (kind, literal) {
            (FieldType::Text, Literal::Str(s)) => Ok(Value::String(Some(s.clone()))),
            (FieldType::Text, _) => Err(err(pos, "`:` takes a quoted string")),
            _ => Err(err(
                pos,
                format_args!(
                    "`:` applies only to text fields; `{}` is not one",
                    field.name
                ),
            )),
        };
    }
    match literal {
        Literal::Null => {
            if !matches!(op, Comparator::Eq | Comparator::Ne) {
                return Err(err(pos, "null can only be compared with = or !="));
            }
            value::typed_null(&ty).ok_or_else(mismatch)
        }
        Literal::Bool(b) if kind == FieldType::Bool => Ok(Value::Bool(Some(*b))),
        Literal::Int(n) if kind == FieldType::Int => value::integer(&ty, *n).ok_or_else(|| {
            err(
                pos,
                format_args!("{n} is out of range for field `{}`", field.name),
            )
        }),
        #[allow(clippy::cast_precision_loss)]
        Literal::Int(n) if kind == FieldType::Float => {
            value::float(&ty, *n as f64).ok_or_else(mismatch)
        }
        Literal::Float(x) if kind == FieldType::Float => value::float(&ty, *x).ok_or_else(mismatch),
        Literal::Str(s)
            if matches!(
                kind,
                FieldType::Text | FieldType::Uuid | FieldType::Timestamp | FieldType::Date
            ) =>
        {
            value::text(&ty, s).ok_or_else(mismatch)
        }
        _ => Err(mismatch()),
    }
}
