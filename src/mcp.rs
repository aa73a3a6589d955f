//! The MCP edge: the only module that knows MCP wire types (`rmcp::model`). Each hosted server
//! is an [`Endpoint`]: two rmcp Streamable HTTP services, stateless and with sessions, whose
//! handler, [`Gateway`], reads the server's current catalog and forwards tool calls through
//! `upstream`; sessions hear when the catalog changes.

mod catalog_mode;
mod confirm;
mod connect;
mod definition;
mod direct;
mod ended_sessions;
mod endpoint;
mod envelope;
mod gateway;
mod listeners;
mod observe;
mod session_ids;
mod version;

pub use catalog_mode::called_tool;
pub use definition::{listed_definition, tool_definition};
pub use endpoint::{Endpoint, IDLE_TIMEOUT, SessionLimits};
pub use gateway::Gateway;
pub use version::ToolVersion;
