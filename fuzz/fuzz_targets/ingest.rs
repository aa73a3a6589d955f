//! Fuzz target: arbitrary bytes through the whole conversion, `openapi::ingest` then
//! `tools::generate` then `mcp::tool_definition`, checking the invariants every MCP client
//! relies on. A panic, an abort (stack overflow) or a failed assertion is a finding.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mcpgate::openapi;

#[path = "../../tests/support/invariants.rs"]
mod invariants;

fuzz_target!(|bytes: &[u8]| {
    // Refusing a document is fine; only what is accepted must convert correctly.
    let Ok(spec) = openapi::ingest(bytes) else { return };
    invariants::check_structure(&spec);
});
