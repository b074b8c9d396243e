//! The webhook sink, split by concern (see [`crate::sinks`]): the
//! configuration is `vantage_core::webhook::WebhookSpec`; [`encoder`] signs
//! a body as Standard Webhooks specifies; [`request`] builds the HTTP
//! request a delivery sends. Delivery itself (the service and the outbox
//! sink) comes with alerts.

pub mod encoder;
pub mod request;
