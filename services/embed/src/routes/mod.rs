//! One module per route group.

pub(crate) mod embed;
pub(crate) mod info;
pub(crate) mod openai;
