//! What a client may know of each field: its JSON type, whether it is input,
//! and the rules it is validated against. The derive writes one
//! [`FieldSchema`] per model field; the REST layer turns them into OpenAPI.

use super::choice::Choice;

/// The values of an enum field, made once: `#[derive(Service)]` writes one
/// such function per field whose type is not one Keel knows; it returns
/// nothing unless the type is a sea-orm `ActiveEnum`.
pub type Choices = fn() -> &'static [Choice];

/// The JSON shape of a field's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchemaType {
    /// A 32-bit (or smaller) integer.
    Int32,
    /// A 64-bit integer.
    Int64,
    /// A floating-point number.
    Number,
    /// A decimal, written as a string to keep its precision.
    Decimal,
    /// Text.
    String,
    /// `true` / `false`.
    Boolean,
    /// A UUID, as a string.
    Uuid,
    /// An RFC 3339 timestamp, as a string.
    DateTime,
    /// A calendar date (`2026-11-22`).
    Date,
    /// A time of day (`13:45:00`).
    Time,
    /// Any JSON value.
    Json,
    /// Bytes, base64-encoded.
    Bytes,
    /// A type of the application's own: no constraint is stated.
    Any,
}

/// One field of a resource as the API shows it.
#[derive(Clone, Copy, Debug)]
pub struct FieldSchema {
    /// The API name.
    pub name: &'static str,
    /// Its JSON type.
    pub ty: SchemaType,
    /// Whether it may be `null`.
    pub nullable: bool,
    /// Whether the create input has it (required unless nullable).
    pub in_create: bool,
    /// Whether a patch may set it.
    pub in_patch: bool,
    /// Whether it is the key.
    pub key: bool,
    /// Fewest characters (or bytes).
    pub min_length: Option<u64>,
    /// Most characters (or bytes).
    pub max_length: Option<u64>,
    /// Smallest value.
    pub minimum: Option<f64>,
    /// Largest value.
    pub maximum: Option<f64>,
    /// A regular expression the text must match.
    pub pattern: Option<&'static str>,
    /// `email` or `uri` when the text must be one.
    pub format: Option<&'static str>,
    /// The values it may take, when its type is an enum (see [`Choice`]).
    pub choices: Option<Choices>,
}

impl FieldSchema {
    /// A field of type `ty`, server-owned (neither created nor patched) until
    /// told otherwise.
    pub const fn new(name: &'static str, ty: SchemaType) -> Self {
        FieldSchema {
            name,
            ty,
            nullable: false,
            in_create: false,
            in_patch: false,
            key: false,
            min_length: None,
            max_length: None,
            minimum: None,
            maximum: None,
            pattern: None,
            format: None,
            choices: None,
        }
    }

    /// Sets whether it is nullable, in the create input, in a patch, the key.
    #[must_use]
    pub const fn io(mut self, nullable: bool, in_create: bool, in_patch: bool, key: bool) -> Self {
        self.nullable = nullable;
        self.in_create = in_create;
        self.in_patch = in_patch;
        self.key = key;
        self
    }

    /// Sets the length bounds.
    #[must_use]
    pub const fn length(mut self, min: Option<u64>, max: Option<u64>) -> Self {
        self.min_length = min;
        self.max_length = max;
        self
    }

    /// Sets the value bounds.
    #[must_use]
    pub const fn range(mut self, min: Option<f64>, max: Option<f64>) -> Self {
        self.minimum = min;
        self.maximum = max;
        self
    }

    /// Sets the pattern.
    #[must_use]
    pub const fn pattern(mut self, pattern: &'static str) -> Self {
        self.pattern = Some(pattern);
        self
    }

    /// Sets the format (`email`, `uri`).
    #[must_use]
    pub const fn format(mut self, format: &'static str) -> Self {
        self.format = Some(format);
        self
    }

    /// Sets the values of an enum field.
    #[must_use]
    pub const fn choices(mut self, choices: Choices) -> Self {
        self.choices = Some(choices);
        self
    }
    /// The values of an enum field; empty for any other field.
    pub fn choice_list(&self) -> &'static [Choice] {
        self.choices.map_or(&[], |f| f())
    }
}
