//! Where things live in Redis: a scope's keys, escaped parts, a query's
//! keys.

/// Where one entity's rows of one tenant live (see [`Cache::scope`](super::Cache::scope)).
#[derive(Clone, Debug)]
pub struct Scope {
    /// `{prefix}:{entity}:{tenant}`
    pub(super) base: String,
}

pub(super) fn escape(part: &str) -> std::borrow::Cow<'_, str> {
    if part.contains([':', '%']) {
        part.replace('%', "%25").replace(':', "%3A").into()
    } else {
        part.into()
    }
}

impl Scope {
    pub(super) fn value_key(&self, id: &str) -> String {
        format!("{}:v:{}", self.base, escape(id))
    }

    pub(super) fn gen_key(&self, id: &str) -> String {
        format!("{}:g:{}", self.base, escape(id))
    }

    pub(super) fn entity_gen_key(&self) -> String {
        format!("{}:g", self.base)
    }

    pub(super) fn query_prefix(&self) -> String {
        format!("{}:q:", self.base)
    }
}

/// The Redis keys of one read.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(super) enum RedisKeys {
    Row {
        value: String,
        generation: String,
    },
    Query {
        entity_generation: String,
        prefix: String,
        hash: String,
    },
}

pub(super) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(entity: &str, tenant: &str) -> Scope {
        Scope {
            base: format!("keel:{}:{}", escape(entity), escape(tenant)),
        }
    }

    #[test]
    fn parts_with_a_colon_or_a_percent_are_escaped() {
        assert_eq!(escape("plain-id_1"), "plain-id_1");
        assert!(matches!(escape("plain"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(escape("a:b"), "a%3Ab");
        assert_eq!(escape("50%"), "50%25");
        // Escaped first, then the colon: "%3A" written by a user stays distinct.
        assert_eq!(escape("%3A"), "%253A");
        assert_ne!(escape("a:b"), escape("a%3Ab"));
    }

    #[test]
    fn an_id_cannot_reach_another_scope_or_kind_of_key() {
        let s = scope("product", "t1");
        assert_eq!(s.value_key("7"), "keel:product:t1:v:7");
        assert_eq!(s.gen_key("7"), "keel:product:t1:g:7");
        assert_eq!(s.entity_gen_key(), "keel:product:t1:g");
        assert_eq!(s.query_prefix(), "keel:product:t1:q:");
        // An id holding the separators stays one segment of its own scope.
        let hostile = s.value_key("7:g:8");
        assert_eq!(hostile, "keel:product:t1:v:7%3Ag%3A8");
        assert_eq!(hostile.matches(':').count(), 4);
        assert_ne!(
            s.value_key("1:v:2"),
            scope("product", "t1:v").value_key("2")
        );
    }

    #[test]
    fn hex_is_lower_case_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xab, 0xff]), "000fabff");
        assert_eq!(hex(&[]), "");
    }
}
