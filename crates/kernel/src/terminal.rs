//! The session's terminal, as seen by services.

use plexus_protocol::{TermRequest, TermResponse};

use crate::service::BoxFuture;
use crate::Error;

/// The terminal of the session a call belongs to: the λ shell or `plx send` on the user's own
/// machine, wherever the call is evaluated. Session-scoped services (`io.term`) use it.
pub trait Terminal: Send + Sync + 'static {
    /// Asks the terminal to do something and waits for its answer.
    fn request(&self, request: TermRequest) -> BoxFuture<'_, Result<TermResponse, Error>>;
}
