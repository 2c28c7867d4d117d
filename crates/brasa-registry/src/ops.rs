//! Changes to a manifest: publish, promote, rollback, staged rollout. Each checks its
//! preconditions, records a history entry, and leaves the manifest valid; on error nothing
//! changed.

use semver::Version;

use crate::error::{RegistryError, Result};
use crate::manifest::{Channel, ChannelMove, Manifest, MoveKind, Rollout, VersionEntry};

impl Manifest {
    /// Whether `version` may still be published: [`RegistryError::AlreadyPublished`] if the
    /// manifest has it. [`Manifest::publish`] checks this too; call it first to refuse before
    /// any costly check of what is to be published.
    pub fn check_unpublished(&self, version: &Version) -> Result<()> {
        if self.versions.contains_key(version) {
            return Err(RegistryError::AlreadyPublished {
                model: self.model.clone(),
                version: version.clone(),
            });
        }
        Ok(())
    }

    /// Add an immutable version; optionally point `channel` at it.
    pub fn publish(
        &mut self,
        version: Version,
        entry: VersionEntry,
        channel: Option<&str>,
        at: &str,
    ) -> Result<()> {
        self.check_unpublished(&version)?;
        let mut next = self.clone();
        let reason = entry.notes.clone();
        next.versions.insert(version.clone(), entry);
        if let Some(channel) = channel {
            next.move_channel(channel, version, MoveKind::Publish, at, &reason);
        }
        next.validate()?;
        *self = next;
        Ok(())
    }

    /// Point `channel` at a published `version` (creating the channel if needed). Ends any
    /// rollout on it.
    pub fn promote(&mut self, channel: &str, version: &Version, at: &str, reason: &str) -> Result<()> {
        if !self.versions.contains_key(version) {
            return Err(self.invalid(format!("cannot promote unpublished version {version}")));
        }
        if self.channels.get(channel).is_some_and(|c| &c.version == version && c.rollout.is_none()) {
            return Err(self.invalid(format!("channel `{channel}` already points at {version}")));
        }
        let mut next = self.clone();
        next.move_channel(channel, version.clone(), MoveKind::Promote, at, reason);
        next.validate()?;
        *self = next;
        Ok(())
    }

    /// Return `channel` to the version it pointed at before its latest move. Ends any rollout.
    /// Returns the version it now points at.
    pub fn rollback(&mut self, channel: &str, at: &str, reason: &str) -> Result<Version> {
        let current = self
            .channels
            .get(channel)
            .ok_or_else(|| self.invalid(format!("no channel `{channel}` to roll back")))?
            .version
            .clone();
        // The publish or promotion that brought the channel to its current version says where it
        // was before. Rollbacks are skipped, so rolling back twice steps back twice instead of
        // toggling between two versions.
        let previous = self
            .history
            .iter()
            .rev()
            .find(|m| {
                m.channel == channel
                    && m.to == current
                    && matches!(m.kind, MoveKind::Publish | MoveKind::Promote)
            })
            .and_then(|m| m.from.clone())
            .ok_or_else(|| {
                self.invalid(format!("channel `{channel}` has no earlier version to return to"))
            })?;
        let mut next = self.clone();
        next.move_channel(channel, previous.clone(), MoveKind::Rollback, at, reason);
        next.validate()?;
        *self = next;
        Ok(previous)
    }

    /// Start, change (`percent` > 0) or end (`percent` == 0) a staged rollout of `version` on
    /// `channel`.
    pub fn set_rollout(&mut self, channel: &str, version: &Version, percent: f64, at: &str) -> Result<()> {
        let mut next = self.clone();
        let current = next
            .channels
            .get_mut(channel)
            .ok_or_else(|| self.invalid(format!("no channel `{channel}` to roll out on")))?;
        if &current.version == version {
            return Err(self.invalid(format!("channel `{channel}` already serves {version} to everyone")));
        }
        current.rollout = (percent > 0.0).then(|| Rollout { version: version.clone(), percent });
        let from = Some(current.version.clone());
        next.record(channel, from, version.clone(), MoveKind::Rollout, at, &format!("rollout at {percent}%"));
        next.validate()?;
        *self = next;
        Ok(())
    }

    fn move_channel(&mut self, channel: &str, to: Version, kind: MoveKind, at: &str, reason: &str) {
        let from = self.channels.get(channel).map(|c| c.version.clone());
        self.channels.insert(channel.into(), Channel { version: to.clone(), rollout: None });
        self.record(channel, from, to, kind, at, reason);
    }

    fn record(
        &mut self,
        channel: &str,
        from: Option<Version>,
        to: Version,
        kind: MoveKind,
        at: &str,
        reason: &str,
    ) {
        let (channel, at, reason) = (channel.into(), at.into(), reason.into());
        self.history.push(ChannelMove { channel, from, to, kind, at, reason });
    }

    fn invalid(&self, reason: String) -> RegistryError {
        RegistryError::InvalidManifest { model: self.model.clone(), reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::FileEntry;

    fn entry(n: u8) -> VersionEntry {
        let hex = format!("{n:02x}").repeat(32);
        VersionEntry {
            files: vec![FileEntry {
                path: format!("files/sha256-{hex}.bpk"),
                size: 100,
                sha256: hex,
                format: "burnpack".into(),
                dtype: brasa_types::WeightsDtype::F32,
                tolerance: None,
                name: None,
            }],
            signature: None,
            golden: None,
            published_at: "2026-11-25T00:00:00Z".into(),
            notes: format!("build {n}"),
            builds: Default::default(),
            package: None,
        }
    }

    const AT: &str = "2026-11-25T00:00:00Z";

    #[test]
    fn publish_promote_rollback() {
        let mut m = Manifest::new("mnist");
        let v1 = Version::new(1, 0, 0);
        let v2 = Version::new(1, 1, 0);
        m.publish(v1.clone(), entry(1), Some("stable"), AT).unwrap();
        m.publish(v2.clone(), entry(2), Some("canary"), AT).unwrap();
        let again = m.publish(v1.clone(), entry(3), None, AT).unwrap_err();
        assert!(matches!(again, RegistryError::AlreadyPublished { .. }), "versions are immutable: {again:?}");
        assert_eq!(
            again.to_string(),
            "mnist 1.0.0 is already published; versions are immutable (publish a new version)"
        );
        assert_eq!(m.check_unpublished(&v1), Err(again));
        m.check_unpublished(&Version::new(2, 0, 0)).unwrap();
        assert_eq!(m.versions[&v1], entry(1));

        m.promote("stable", &v2, AT, "canary looked good").unwrap();
        assert_eq!(m.channels["stable"].version, v2);
        assert_eq!(m.rollback("stable", AT, "regression").unwrap(), v1);
        assert_eq!(m.channels["stable"].version, v1);
        // The first version of a channel has nothing before it.
        assert!(m.clone().rollback("canary", AT, "").is_err());
        assert_eq!(m.history.len(), 4);
        assert_eq!(m.history.last().unwrap().kind, MoveKind::Rollback);
        m.validate().unwrap();
    }

    #[test]
    fn repeated_rollbacks_step_back_through_history() {
        let mut m = Manifest::new("mnist");
        let versions: Vec<Version> = (0..3).map(|minor| Version::new(1, minor, 0)).collect();
        m.publish(versions[0].clone(), entry(0), Some("stable"), AT).unwrap();
        for (n, v) in versions.iter().enumerate().skip(1) {
            m.publish(v.clone(), entry(n as u8), None, AT).unwrap();
            m.promote("stable", v, AT, "").unwrap();
        }
        assert_eq!(m.rollback("stable", AT, "").unwrap(), versions[1]);
        assert_eq!(m.rollback("stable", AT, "").unwrap(), versions[0]);
        assert!(m.rollback("stable", AT, "").is_err(), "nothing before the first version");
    }

    #[test]
    fn rollouts_start_and_end() {
        let mut m = Manifest::new("mnist");
        let v1 = Version::new(1, 0, 0);
        let v2 = Version::new(2, 0, 0);
        m.publish(v1.clone(), entry(1), Some("stable"), AT).unwrap();
        m.publish(v2.clone(), entry(2), None, AT).unwrap();
        m.set_rollout("stable", &v2, 10.0, AT).unwrap();
        assert_eq!(m.channels["stable"].rollout.as_ref().unwrap().percent, 10.0);
        assert!(m.clone().set_rollout("stable", &v2, 150.0, AT).is_err());
        let before = m.clone();
        assert!(m.set_rollout("stable", &Version::new(9, 0, 0), 5.0, AT).is_err());
        assert_eq!(m, before, "a refused change changes nothing");
        m.set_rollout("stable", &v2, 0.0, AT).unwrap();
        assert!(m.channels["stable"].rollout.is_none());
        m.promote("stable", &v2, AT, "").unwrap();
        assert_eq!(m.rollback("stable", AT, "").unwrap(), v1);
    }
}
