//! The Depot server: configuration, the domain core, the database and blob
//! store, and the HTTP surface (UI and REST dialects).

pub mod blob;
pub mod cli;
pub mod config;
pub mod core;
pub mod dialects;
pub mod jobs;
pub mod memory;
mod nesting;
pub mod personal;
pub mod serve;
mod stall;
pub mod state;
pub mod store;
pub mod web;
