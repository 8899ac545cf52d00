//! Keeping the images this service needs (what runs, what waits, what it can roll back to)
//! out of reach of ECR's lifecycle rules: the agent tags each with a protection tag the
//! project's policy never expires, and takes the tag off once the image is no longer needed.
//! One tag a step; a failure is remembered and tried again next tick, up to
//! [`PROTECTION_ATTEMPTS`], then said once and left. Housekeeping beside the deployments: its
//! outcome is always `Nothing`, so it never hides what the tick decided; the journal says it.

use chrono::Duration;

use super::context::Ctx;
use super::{Command, Outcome, Point};
use crate::image::Image;
use crate::notify::{NoticeKind, Subject};
use crate::retention::{kept_images, protection_tag};
use crate::state::{Protection, ProtectionStatus, PROTECTION_ATTEMPTS};

/// A failed try is not repeated within the same tick (the tick runs every minute).
const RETRY_AFTER: Duration = Duration::seconds(30);

impl Ctx<'_> {
    /// The tick's turn: the next tag to put or take off, if any.
    pub(super) fn protect_tick(&mut self) -> Outcome {
        let wanted: Vec<(String, Image)> = kept_images(&self.s)
            .into_iter()
            .map(|image| (self.tag_of(&image), image))
            .collect();
        let needed = |tag: &str| wanted.iter().any(|(t, _)| t == tag);
        // What never reached ECR and is no longer needed is simply forgotten.
        self.s
            .protections
            .retain(|p| p.on_image() || needed(&p.tag));
        let due = |at: chrono::DateTime<chrono::Utc>| self.now - at >= RETRY_AFTER;
        let drop = self.s.protections.iter().find(|p| {
            !needed(&p.tag)
                && match &p.status {
                    ProtectionStatus::Held { .. } => true,
                    ProtectionStatus::Dropping { at, .. } => due(*at),
                    _ => false,
                }
        });
        if let Some(p) = drop {
            let (image, tag) = (p.image.clone(), p.tag.clone());
            self.run(Command::UnprotectImage { image, tag });
            return Outcome::Nothing;
        }
        for (tag, image) in &wanted {
            let put = match self.s.protections.iter().find(|p| &p.tag == tag) {
                None => true,
                Some(p) => matches!(p.status, ProtectionStatus::Putting { at, .. } if due(at)),
            };
            if put {
                let (image, tag) = (image.clone(), tag.clone());
                self.run(Command::ProtectImage { image, tag });
                return Outcome::Nothing;
            }
        }
        Outcome::Nothing
    }

    /// ECR's answer to PutImage (`put`) or BatchDeleteImage of `tag`.
    pub(super) fn protection_answered(
        &mut self,
        image: &Image,
        tag: &str,
        put: bool,
        error: Option<&str>,
    ) -> Outcome {
        let at = self.s.protections.iter().position(|p| p.tag == tag);
        let attempts = at.map_or(0, |i| match &self.s.protections[i].status {
            ProtectionStatus::Putting { attempts, .. }
            | ProtectionStatus::Dropping { attempts, .. } => *attempts,
            _ => 0,
        }) + 1;
        let status = match (put, error) {
            (true, None) => Some(ProtectionStatus::Held { since: self.now }),
            (false, None) => None,
            (true, Some(e)) if attempts >= PROTECTION_ATTEMPTS => {
                self.gave_up(image, tag, e);
                Some(ProtectionStatus::GaveUp {
                    error: e.to_owned(),
                    at: self.now,
                })
            }
            (true, Some(e)) => Some(ProtectionStatus::Putting {
                attempts,
                error: e.to_owned(),
                at: self.now,
            }),
            (false, Some(e)) if attempts >= PROTECTION_ATTEMPTS => {
                let note = format!(
                    "taking tag {tag} off {} failed {attempts} times ({e}); left on the image (remove it by hand if it is not wanted)",
                    image.label()
                );
                self.protection_line(image, note);
                None
            }
            (false, Some(e)) => Some(ProtectionStatus::Dropping {
                attempts,
                error: e.to_owned(),
                at: self.now,
            }),
        };
        let verb = if put { "PutImage" } else { "BatchDeleteImage" };
        let line = match (error, &status) {
            (None, Some(_)) => format!("{} protected from expiry with tag {tag}", image.label()),
            (None, None) => format!("{} no longer needed: took off tag {tag}", image.label()),
            (
                Some(e),
                Some(ProtectionStatus::Putting { .. } | ProtectionStatus::Dropping { .. }),
            ) => {
                format!("{verb} of tag {tag} failed (try {attempts} of {PROTECTION_ATTEMPTS}): {e}; tried again next tick")
            }
            // Giving up was said already.
            (Some(_), _) => String::new(),
        };
        if !line.is_empty() {
            self.protection_line(image, line);
        }
        match (at, status) {
            (Some(i), Some(status)) => self.s.protections[i].status = status,
            (Some(i), None) => {
                self.s.protections.remove(i);
            }
            (None, Some(status)) => self.s.protections.push(Protection {
                tag: tag.to_owned(),
                image: image.clone(),
                status,
            }),
            (None, None) => {}
        }
        match error {
            // The next one, if any; a failure waits for the next tick.
            None => self.protect_tick(),
            Some(_) => Outcome::Nothing,
        }
    }

    /// Said once: the image may be expired by the lifecycle rules now.
    fn gave_up(&mut self, image: &Image, tag: &str, error: &str) {
        let words = format!(
            "could not tag {} with {tag} after {PROTECTION_ATTEMPTS} tries ({error}): ECR's lifecycle rules may expire it; a rollback to it checks it still exists first",
            image.label()
        );
        self.protection_line(image, words.clone());
        let about = Subject::release(&image.digest);
        self.notice_now(NoticeKind::Unprotected, about, image.clone(), &words);
    }

    fn protection_line(&mut self, image: &Image, note: String) {
        let digest = Some(image.digest.clone());
        self.journal_line(None, digest, (Point::Protection, Point::Protection), note);
    }

    fn tag_of(&self, image: &Image) -> String {
        protection_tag(&self.s.environment, &self.s.service, &image.digest)
    }
}
