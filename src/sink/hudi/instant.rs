//! Instants and the timeline files under `.hoodie/` (timeline layout 1).

use chrono::{NaiveDateTime, TimeDelta, Utc};
use std::fmt;

/// A Hudi instant time: 17 digits `yyyyMMddHHmmssSSS`, in UTC for lakefold tables.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(String);

const FORMAT: &str = "%Y%m%d%H%M%S%3f";

impl Instant {
    /// Parses 17 (or Hudi's older 14) digits.
    pub fn parse(s: &str) -> Option<Instant> {
        ((s.len() == 17 || s.len() == 14) && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| Instant(s.to_string()))
    }

    /// The current UTC time as an instant, strictly after `after` when given (a clock that stepped back or
    /// two commits within one millisecond still give increasing instants).
    pub fn next(after: Option<&Instant>) -> Instant {
        let now = Utc::now().naive_utc();
        let candidate = match after.and_then(|a| a.datetime()) {
            Some(last) if now <= last => last + TimeDelta::milliseconds(1),
            _ => now,
        };
        Instant(candidate.format(FORMAT).to_string())
    }

    /// The instant as a UTC time (lakefold writes UTC instants).
    pub fn datetime(&self) -> Option<NaiveDateTime> {
        let padded = if self.0.len() == 14 {
            format!("{}000", self.0)
        } else {
            self.0.clone()
        };
        NaiveDateTime::parse_from_str(&padded, FORMAT).ok()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an instant does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Commit,
    ReplaceCommit,
    DeltaCommit,
    Clean,
    Rollback,
    Other,
}

/// Where an instant is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    Requested,
    Inflight,
    Completed,
}

/// One file of the timeline, parsed from its name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TimelineFile {
    pub instant: Instant,
    pub action: Action,
    pub state: State,
    pub file_name: String,
}

impl TimelineFile {
    /// Parses names like `20240418173551906.commit`, `….commit.requested`, `….inflight`,
    /// `….replacecommit.inflight`, `….clean`; `None` for anything else (hoodie.properties, folders).
    pub fn parse(name: &str) -> Option<TimelineFile> {
        let (ts, rest) = name.split_once('.')?;
        let instant = Instant::parse(ts)?;
        let (action, state) = match rest {
            "commit" => (Action::Commit, State::Completed),
            "commit.requested" => (Action::Commit, State::Requested),
            "inflight" => (Action::Commit, State::Inflight),
            "replacecommit" => (Action::ReplaceCommit, State::Completed),
            "replacecommit.requested" => (Action::ReplaceCommit, State::Requested),
            "replacecommit.inflight" => (Action::ReplaceCommit, State::Inflight),
            "deltacommit" => (Action::DeltaCommit, State::Completed),
            "deltacommit.requested" => (Action::DeltaCommit, State::Requested),
            "deltacommit.inflight" => (Action::DeltaCommit, State::Inflight),
            "clean" => (Action::Clean, State::Completed),
            "clean.requested" => (Action::Clean, State::Requested),
            "clean.inflight" => (Action::Clean, State::Inflight),
            "rollback" => (Action::Rollback, State::Completed),
            "rollback.requested" => (Action::Rollback, State::Requested),
            "rollback.inflight" => (Action::Rollback, State::Inflight),
            _ => (Action::Other, State::Completed),
        };
        Some(TimelineFile {
            instant,
            action,
            state,
            file_name: name.to_string(),
        })
    }

    /// The timeline file names of a commit instant in each state.
    pub fn commit_names(instant: &Instant) -> [String; 3] {
        Self::names(instant, Action::Commit)
    }

    /// The timeline file names of an instant of `action` in each state (requested, inflight, completed);
    /// a commit's inflight file is `<t>.inflight` in timeline layout 1.
    pub fn names(instant: &Instant, action: Action) -> [String; 3] {
        let a = match action {
            Action::Commit => {
                return [
                    format!("{instant}.commit.requested"),
                    format!("{instant}.inflight"),
                    format!("{instant}.commit"),
                ]
            }
            Action::ReplaceCommit => "replacecommit",
            Action::DeltaCommit => "deltacommit",
            Action::Clean => "clean",
            Action::Rollback => "rollback",
            Action::Other => "unknown",
        };
        [
            format!("{instant}.{a}.requested"),
            format!("{instant}.{a}.inflight"),
            format!("{instant}.{a}"),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_17_digits_and_strictly_increase() {
        let a = Instant::next(None);
        assert_eq!(a.as_str().len(), 17);
        let future = Instant::parse("29991231235959998").unwrap();
        let b = Instant::next(Some(&future));
        assert_eq!(b.as_str(), "29991231235959999");
        let c = Instant::next(Some(&b));
        assert_eq!(c.as_str(), "30000101000000000");
        assert!(c > b && b > future);
    }

    #[test]
    fn timeline_names_parse_by_action_and_state() {
        let f = TimelineFile::parse("20240418173551906.commit").unwrap();
        assert_eq!((f.action, f.state), (Action::Commit, State::Completed));
        let f = TimelineFile::parse("20240418173551906.inflight").unwrap();
        assert_eq!((f.action, f.state), (Action::Commit, State::Inflight));
        let f = TimelineFile::parse("20240418173551906.replacecommit.requested").unwrap();
        assert_eq!(
            (f.action, f.state),
            (Action::ReplaceCommit, State::Requested)
        );
        assert!(TimelineFile::parse("hoodie.properties").is_none());
        assert!(TimelineFile::parse("archived").is_none());
    }
}
