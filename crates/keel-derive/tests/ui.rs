//! Compile-time behaviour of the derives: what compiles, and the exact
//! errors for each misuse (reviewed `.stderr` snapshots, taken on the
//! project's stable toolchain; refresh with `TRYBUILD=overwrite`).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/pass/*.rs");
    t.compile_fail("tests/ui/*.rs");
}
