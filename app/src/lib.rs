//! Depot's shared half: the model and query types, the UI and its server
//! functions. Everything here compiles for the server (`ssr`) and for the
//! browser (`hydrate`); I/O lives only behind the `ssr` feature.

pub mod api;
mod components;
pub mod dates;
pub mod error;
pub mod model;
mod pages;
pub mod pieces;
#[cfg(feature = "ssr")]
pub mod ports;
pub mod query;
mod shell;

pub use shell::{shell, App};
