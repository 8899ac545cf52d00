//! What goes into the outbox: a notice per event worth telling the team, each with an id that
//! is unique per event, so a redelivery or a retry never tells them twice.

use super::context::Ctx;
use crate::image::{Digest, Image};
use crate::notify::{NoticeKind, Notification, Subject};

impl Ctx<'_> {
    /// A notice about the deployment in flight (nothing when none is).
    pub(super) fn notify(&mut self, kind: NoticeKind, reason: Option<String>) {
        let Some(d) = self.s.in_flight.clone() else {
            return;
        };
        let previous = self
            .s
            .last_known_good
            .as_ref()
            .filter(|g| g.deployment_id != d.id)
            .map(|g| g.image.label());
        let id = format!("{}/{}", d.id, kind.word());
        let arn = d.task_definition_arn().map(str::to_owned);
        self.notice_about(kind, id, d.id, d.release.image, arn, reason);
        self.set_previous(previous);
    }

    /// Names the release before the one the last notice is about.
    pub(super) fn set_previous(&mut self, previous: Option<String>) {
        if let Some(n) = self.notices.last_mut() {
            n.previous = previous.clone();
        }
        if let Some(n) = self.s.outbox.last_mut() {
            n.previous = previous;
        }
    }

    /// A notification about any release, in flight or not; `id` must be unique per event.
    pub(super) fn notice_about(
        &mut self,
        kind: NoticeKind,
        id: String,
        subject: impl Into<Subject>,
        image: Image,
        task_definition_arn: Option<String>,
        reason: Option<String>,
    ) {
        let notice = Notification {
            id,
            kind,
            project: self.policy.project.clone(),
            environment: self.s.environment.clone(),
            service: self.s.service.clone(),
            subject: subject.into(),
            image,
            task_definition_arn,
            previous: None,
            reason,
            at: self.now,
            claimed_until: None,
            attempts: 0,
        };
        self.notices.push(notice.clone());
        self.s.outbox.push(notice);
    }

    /// A notice about a release that is not in flight, unique to this moment (the event that
    /// caused it is de-duplicated before it gets here).
    pub(super) fn notice_now(
        &mut self,
        kind: NoticeKind,
        about: impl Into<Subject>,
        image: Image,
        reason: &str,
    ) {
        let about = about.into();
        let id = format!("{about}/{}/{}", kind.word(), self.now.timestamp_millis());
        self.notice_about(kind, id, about, image, None, Some(reason.to_owned()));
    }

    /// The deployment that last deployed `digest`, for notices about it.
    pub(super) fn deployment_of(&self, digest: &Digest) -> Subject {
        (self.s.history.iter())
            .find(|h| &h.image.digest == digest && h.deployment_id.is_some())
            .and_then(|h| h.deployment_id.clone())
            .map_or_else(|| Subject::release(digest), Subject::from)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::*;
    use super::super::{decide, Observation, Rollout};
    use crate::notify::NoticeKind;

    #[test]
    fn each_event_worth_telling_puts_one_notice_in_the_outbox() {
        let mut bad = deployed();
        bad.bad_releases.push(crate::state::BadRelease {
            image: image('c', 30),
            why: "alarm".into(),
            at: t0(),
        });
        let cases = [
            (
                "a deployment starts",
                deployed(),
                Observation::ImagePushed {
                    event_id: "e-1".into(),
                    image: image('c', 30),
                },
                vec![NoticeKind::Started],
            ),
            (
                "a deployment succeeds",
                stabilizing(),
                Observation::RolloutObserved {
                    deployment: d_b(),
                    rollout: Rollout::Completed,
                },
                vec![NoticeKind::Succeeded],
            ),
            (
                "a push of a release marked bad is not deployed, and the team hears why",
                bad,
                Observation::ImagePushed {
                    event_id: "e-2".into(),
                    image: image('c', 30),
                },
                vec![NoticeKind::Ignored],
            ),
            (
                "nothing happened: nothing to tell",
                stabilizing(),
                Observation::RolloutObserved {
                    deployment: d_b(),
                    rollout: Rollout::InProgress,
                },
                vec![],
            ),
        ];
        for (case, state, obs, kinds) in cases {
            let step = decide(&state, &obs, t0(), &policy());
            let got: Vec<NoticeKind> = step.notices.iter().map(|n| n.kind).collect();
            assert_eq!(got, kinds, "{case}");
            // What is told is also kept in the outbox until SNS takes it.
            assert_eq!(step.state.outbox.len(), step.notices.len(), "{case}");
            let mut ids: Vec<&str> = step.notices.iter().map(|n| n.id.as_str()).collect();
            ids.dedup();
            assert_eq!(ids.len(), step.notices.len(), "{case}: unique ids");
        }
    }
}
