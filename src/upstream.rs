//! Forwarding: a tool call becomes the HTTP request its operation describes (`request`), is sent
//! to the backend within the hosted server's limits (`forward`), and the answer becomes a tool
//! result (`response`).

mod forward;
pub mod request;
mod response;

pub use forward::{Backend, Error, forward};
pub use response::{Outcome, Part, Structured};
