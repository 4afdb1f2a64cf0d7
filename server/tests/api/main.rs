//! Integration tests: each starts the real server on a free port and drives
//! it over HTTP, once on SQLite and once on PostgreSQL.

mod access;
mod cli;
mod files;
mod helpers;
mod query;
mod ui;
