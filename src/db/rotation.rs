//! Background work one organisation at a time. Citus refuses `FOR UPDATE SKIP LOCKED` over
//! many shards, so a worker first lists the organisations with due work and then claims work
//! of one organisation at a time, with the organisation in every query. The order rotates:
//! each round starts after the organisation the previous round started with, so that no
//! organisation waits behind a busy one. Plain Postgres runs the same code.

use std::sync::Mutex;

use crate::ids::OrgId;

#[derive(Default)]
pub struct OrgRotation {
    last_first: Mutex<Option<OrgId>>,
}

impl OrgRotation {
    /// `orgs` (any order, no repeats) in this round's order: from the first one after the
    /// previous round's first, wrapping around.
    pub fn round(&self, mut orgs: Vec<OrgId>) -> Vec<OrgId> {
        orgs.sort();
        let Ok(mut last) = self.last_first.lock() else {
            return orgs;
        };
        let start = match *last {
            Some(previous) => orgs.iter().position(|o| *o > previous).unwrap_or(0),
            None => 0,
        };
        orgs.rotate_left(start);
        *last = orgs.first().copied();
        orgs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(n: u128) -> OrgId {
        OrgId(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn each_round_starts_after_the_previous_rounds_first() {
        let rotation = OrgRotation::default();
        assert_eq!(
            rotation.round(vec![org(3), org(1), org(2)]),
            vec![org(1), org(2), org(3)]
        );
        assert_eq!(
            rotation.round(vec![org(1), org(2), org(3)]),
            vec![org(2), org(3), org(1)]
        );
        assert_eq!(
            rotation.round(vec![org(1), org(2), org(3)]),
            vec![org(3), org(1), org(2)]
        );
        assert_eq!(
            rotation.round(vec![org(1), org(2), org(3)]),
            vec![org(1), org(2), org(3)]
        );
        // An organisation that has no more work drops out; the order still moves on.
        assert_eq!(rotation.round(vec![org(2), org(3)]), vec![org(2), org(3)]);
        assert_eq!(rotation.round(vec![org(1)]), vec![org(1)]);
        assert!(rotation.round(Vec::new()).is_empty());
    }
}
