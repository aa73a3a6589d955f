//! The MCP edge: the only module that knows MCP wire types (`rmcp::model`). Each hosted server
//! is an rmcp Streamable HTTP service whose handler, [`Gateway`], reads the server's current
//! catalog and forwards tool calls through `upstream`.

mod definition;
mod gateway;

pub use definition::tool_definition;
pub use gateway::{Gateway, service};
