//! Integration tests of the host: examples end to end against independent
//! expectations, bad guests, timers/state/side outputs, and the CLI.
//!
//! They need the example plugins and fixture guests built (`make plugins`).

mod architecture;
mod bad_guests;
mod cep;
mod cli;
mod cluster;
mod examples;
mod fault;
mod features;
mod hardening;
mod joins;
mod kafka;
mod kubernetes;
mod languages;
mod nexmark;
mod objects;
mod postgres;
mod s3;
mod server;
mod support;
