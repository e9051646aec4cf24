//! The daemon's domain: the timetable of scheduled tasks, job health and metrics, and alerts.

pub mod alerts;
pub mod schedule;
pub mod status;
