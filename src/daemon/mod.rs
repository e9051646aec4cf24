//! The daemon: the timetable of every job's tasks ([`schedule`]), the loop that runs them as child processes
//! ([`runner`], [`child`], [`clock`]), job health and metrics ([`status`], [`recovery`], [`metrics`]), alerts ([`alerts`]), the
//! HTTP endpoint ([`http`], answering from [`endpoint`] what [`refresh`] computed in the background), and the same timetable for cron or systemd ([`export`]).

pub mod alerts;
pub mod child;
pub mod clock;
pub mod endpoint;
pub mod export;
pub mod http;
pub mod metrics;
pub mod recovery;
pub mod refresh;
pub mod runner;
pub mod schedule;
pub mod status;
pub mod tasks;
