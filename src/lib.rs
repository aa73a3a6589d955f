//! mcpgate turns REST APIs described by OpenAPI into protected remote MCP servers.
//!
//! Modules in reading order: a document is read (`source`), ingested into one model
//! (`openapi`), and turned into MCP tool definitions with a report (`tools`); `cli` is the
//! command-line edge.

pub mod cli;
pub mod mcp;
pub mod openapi;
pub mod source;
pub mod tools;
