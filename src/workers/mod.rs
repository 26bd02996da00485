//! Background work, started from `startup` beside the HTTP server. Each worker gets an
//! environment of its own (what it uses, built by the composition root), never the web
//! state.

pub mod expected;
pub mod outbox;
