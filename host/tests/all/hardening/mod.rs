//! Hardening, round 2: regression tests for what a second adversarial probe of the server
//! found — locations that escaped the allowed roots, host patterns bypassed through
//! Kafka bootstrap entries, secrets shown to viewers, idle sockets starving `/healthz`,
//! uploads queued behind large compiles, graceful restarts counted as crashes, S3
//! reaching any bucket — and the REST API over TLS.

mod connections;
mod crash_loops;
mod locations;
mod secrets;
mod tls;
mod uploads;
