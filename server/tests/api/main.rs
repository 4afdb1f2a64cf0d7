//! Integration tests: each starts the real server on a free port and drives
//! it over HTTP, once on SQLite and once on PostgreSQL.

mod access;
mod admin_users;
mod bounded_input;
mod cli;
mod coopr;
mod credentials;
mod cross_site;
mod deploy_isolation;
mod dialect_paths;
mod files;
mod fuzz;
mod helpers;
mod inspection;
mod metrics;
mod mws;
mod mws_query;
mod openapi;
mod pyvss;
mod query;
mod quota_and_races;
mod readiness;
mod seeds;
mod several_servers;
mod store;
mod ui;
mod ui_images;
mod ui_keys;
mod ui_lists;
mod ui_store;
mod ui_tenants;
mod uploads;
mod vice;
mod vice_environments;
mod vice_pages;
mod vss;
