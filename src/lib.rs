//! mcpgate turns REST APIs described by OpenAPI into protected remote MCP servers.
//!
//! Modules in reading order. Start-up: `config`, `telemetry`, `app` (router and run), `hosting`
//! (the hosted servers). Import: a document is read (`source`), ingested into one model
//! (`openapi`) and turned into tool definitions (`tools`), which a `catalog` serves. A call:
//! `mcp` (the MCP edge) validates it and `upstream` forwards it to the backend. `store` keeps
//! servers across restarts; `cli` is the command line. The HTTP clients that reach identity
//! providers and document URLs come from `outbound`.

pub mod config;
pub mod secrets;
pub mod telemetry;
pub mod metrics;
pub mod app;
pub mod hosting;
pub mod outbound;
pub mod auth;
pub mod devidp;
pub mod source;
pub mod openapi;
pub mod tools;
pub mod ratelimit;
pub mod calls;
pub mod catalog;
pub mod policy;
pub mod snapshot;
pub mod credentials;
pub mod connect;
pub mod mcp;
pub mod upstream;
pub mod store;
pub mod admin;
pub mod sample_backend;
pub mod cli;
