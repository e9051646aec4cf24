//! PostgreSQL physical backups and point-in-time recovery: the `postgres-physical` source (a streamed
//! `pg_basebackup` saved file by file, [`backup`]), what a base backup says about its WAL ([`control`]), laying a
//! base backup out as a data directory that recovers through `gumvault wal-fetch` ([`pgdata`]), and the test
//! restore that starts a scratch server on it ([`scratch`]).

pub mod backup;
pub mod control;
pub mod pgdata;
pub mod scratch;
mod tar_stream;
