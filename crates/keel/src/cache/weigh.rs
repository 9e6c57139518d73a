//! What a cached value keeps on the heap, estimated from its serde form.
//!
//! The in-process tier's byte budget must bound the memory its entries
//! really hold: the typed value too, not only its JSON. No crate measures
//! the heap of an arbitrary `T` (the deep-size crates need a derive on
//! every type, a sea-orm model's field types included), but every cached
//! value is `Serialize`, and its serde form shows what it owns: a string
//! is a `String`'s allocation, a sequence a `Vec`'s, a map a `serde_json`
//! object's entries. Each allocation is counted as glibc's malloc takes
//! it (a 16-byte granule above an 8-byte header, 32 bytes at least).
//! Where the form cannot tell, the estimate is the larger one: a sequence
//! element is counted as a `serde_json::Value` (an `i32` array is
//! over-weighed, a JSON array is not under-weighed). Values shown through
//! `Display` (`collect_str`: chrono's timestamps and dates) own nothing.

use std::fmt::Display;
use std::mem::size_of;

use serde::Serialize;
use serde::ser;

/// What malloc takes for a request of `n` bytes (nothing for none).
pub(crate) const fn alloc(n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    let chunk = (n + 8).div_ceil(16) * 16;
    if chunk < 32 { 32 } else { chunk }
}

/// The heap `value` owns, in bytes, besides its own `size_of`.
pub(crate) fn heap_of<T: Serialize + ?Sized>(value: &T) -> usize {
    value.serialize(Heap).unwrap_or(0)
}

/// The room one element of a sequence or value of a map takes inline.
const NODE: usize = size_of::<serde_json::Value>();

/// An index map's entry beside its value: the hash and a `String` key.
const ENTRY: usize = NODE + size_of::<u64>() + size_of::<String>();

/// Never raised: estimating cannot fail.
#[derive(Debug)]
pub(crate) struct Never;

impl Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("heap estimate")
    }
}

impl std::error::Error for Never {}

impl ser::Error for Never {
    fn custom<T: Display>(_msg: T) -> Self {
        Never
    }
}

/// The serializer that sums a value's heap.
struct Heap;

/// A compound value being summed: the heap of its parts, how many there
/// are, and what one part takes inline in its container.
struct Parts {
    heap: usize,
    count: usize,
    inline: usize,
    /// A map (entries and an index table) rather than a sequence.
    map: bool,
}

impl Parts {
    fn new(inline: usize, map: bool) -> Self {
        Parts {
            heap: 0,
            count: 0,
            inline,
            map,
        }
    }

    fn add<T: Serialize + ?Sized>(&mut self, value: &T) {
        self.heap += heap_of(value);
    }

    fn total(self) -> usize {
        let own = alloc(self.count * self.inline);
        // indexmap's index table: one `usize` and a control byte a bucket,
        // at most 7/8 full.
        let index = if self.map && self.count > 0 {
            alloc((self.count * 8 / 7 + 1).next_power_of_two() * 9)
        } else {
            0
        };
        self.heap + own + index
    }
}

macro_rules! nothing {
    ($($method:ident($ty:ty)),* $(,)?) => {
        $(fn $method(self, _v: $ty) -> Result<usize, Never> { Ok(0) })*
    };
}

impl ser::Serializer for Heap {
    type Ok = usize;
    type Error = Never;
    type SerializeSeq = Parts;
    type SerializeTuple = Parts;
    type SerializeTupleStruct = Parts;
    type SerializeTupleVariant = Parts;
    type SerializeMap = Parts;
    type SerializeStruct = Parts;
    type SerializeStructVariant = Parts;

    nothing!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
    );

    fn serialize_str(self, v: &str) -> Result<usize, Never> {
        Ok(alloc(v.len()))
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<usize, Never> {
        Ok(alloc(v.len()))
    }

    fn serialize_none(self) -> Result<usize, Never> {
        Ok(0)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<usize, Never> {
        Ok(heap_of(value))
    }

    fn serialize_unit(self) -> Result<usize, Never> {
        Ok(0)
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<usize, Never> {
        Ok(0)
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
    ) -> Result<usize, Never> {
        Ok(0)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<usize, Never> {
        Ok(heap_of(value))
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        value: &T,
    ) -> Result<usize, Never> {
        Ok(heap_of(value))
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Parts, Never> {
        Ok(Parts::new(NODE, false))
    }

    fn serialize_tuple(self, _len: usize) -> Result<Parts, Never> {
        Ok(Parts::new(0, false))
    }

    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Parts, Never> {
        Ok(Parts::new(0, false))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Parts, Never> {
        Ok(Parts::new(0, false))
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Parts, Never> {
        Ok(Parts::new(ENTRY, true))
    }

    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Parts, Never> {
        Ok(Parts::new(0, false))
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Parts, Never> {
        Ok(Parts::new(0, false))
    }

    /// A `Display` value (a timestamp, a date) owns no heap of its own.
    fn collect_str<T: Display + ?Sized>(self, _value: &T) -> Result<usize, Never> {
        Ok(0)
    }
}

/// The compound parts of `Heap`: each element or field adds its heap
/// (and, in a sequence, its inline room).
macro_rules! parts {
    ($($part:ident :: $method:ident ($($key:ty)?) counted: $counted:literal;)*) => {$(
        impl ser::$part for Parts {
            type Ok = usize;
            type Error = Never;

            fn $method<T: Serialize + ?Sized>(
                &mut self,
                $(_key: $key,)?
                value: &T,
            ) -> Result<(), Never> {
                self.count += usize::from($counted);
                self.add(value);
                Ok(())
            }

            fn end(self) -> Result<usize, Never> {
                Ok(self.total())
            }
        }
    )*};
}

parts! {
    SerializeSeq::serialize_element() counted: true;
    SerializeTuple::serialize_element() counted: false;
    SerializeTupleStruct::serialize_field() counted: false;
    SerializeTupleVariant::serialize_field() counted: false;
    SerializeStruct::serialize_field(&'static str) counted: false;
    SerializeStructVariant::serialize_field(&'static str) counted: false;
}

impl ser::SerializeMap for Parts {
    type Ok = usize;
    type Error = Never;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Never> {
        self.count += 1;
        self.add(key);
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Never> {
        self.add(value);
        Ok(())
    }

    fn end(self) -> Result<usize, Never> {
        Ok(self.total())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Row {
        id: i64,
        name: String,
        note: Option<String>,
        at: chrono::DateTime<chrono::Utc>,
        tags: serde_json::Value,
    }

    #[test]
    fn malloc_sizes() {
        assert_eq!(alloc(0), 0);
        assert_eq!(alloc(1), 32);
        assert_eq!(alloc(24), 32);
        assert_eq!(alloc(25), 48);
        assert_eq!(alloc(1000), 1008);
    }

    #[test]
    fn strings_and_json_own_their_allocations_and_timestamps_nothing() {
        let row = Row {
            id: 1,
            name: "x".repeat(100),
            note: None,
            at: chrono::Utc::now(),
            tags: serde_json::json!({"a": "b"}),
        };
        let name = alloc(100);
        let tags = alloc(1) + alloc(1) + alloc(ENTRY) + alloc(2 * 9);
        assert_eq!(heap_of(&row), name + tags);
        let rows = vec![row];
        assert!(heap_of(&rows) > name + tags, "the vector's own buffer too");
    }

    #[test]
    fn an_estimate_is_at_least_what_a_string_heavy_value_allocates() {
        let words: Vec<String> = (0..1000).map(|i| format!("word number {i}")).collect();
        let allocated: usize = words.iter().map(|w| alloc(w.capacity())).sum::<usize>()
            + alloc(words.capacity() * size_of::<String>());
        assert!(heap_of(&words) >= allocated);
    }
}
