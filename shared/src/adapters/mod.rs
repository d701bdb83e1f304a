//! The app's ports on real services: AWS ([`aws`]) and HTTPS ([`http`]).

pub mod aws;
pub mod http;
