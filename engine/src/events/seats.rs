//! The event's Event Pro seats: slot-numbered keys, as many as the organization's active
//! Event Pro quantity.

use serde_json::json;

use crate::{
    Engine, Error, Result,
    access::{Action, Target, decide, require},
    accounts::validate_email,
    kind::Kind,
    model::{Event, Seat, Seats},
    plan::{Write, judged_key},
    time,
};

const SEAT_FIELDS: &str = "event, slot, person, assigned_by, created_at";

impl Engine {
    pub async fn seats(&self, actor: &str, event: &str) -> Result<Seats> {
        let (ev, s) = self.standing(actor, event).await?;
        require(decide(&s, Action::Read, Target::Seats), "event")?;
        self.load_seats(&ev).await
    }

    async fn load_seats(&self, ev: &Event) -> Result<Seats> {
        let limit = self.event_pro_slots(&ev.org).await?;
        let seats: Vec<Seat> = self
            .store
            .run(&format!("SELECT {SEAT_FIELDS} FROM seat WHERE event = $e ORDER BY slot"), json!({ "e": ev.id }))
            .await?
            .all(0)?;
        Ok(Seats { limit, used: seats.len() as i64, seats })
    }

    /// Gives `email`'s account one of the event's Event Pro seats. Anyone with an account
    /// may hold a seat, inside the organization or not. The seats are the organization's
    /// active Event Pro quantity; past it the assignment is refused.
    pub async fn assign_seat(&self, actor: &str, event: &str, email: &str) -> Result<Seat> {
        let (ev, s) = self.standing(actor, event).await?;
        require(decide(&s, Action::Write, Target::Seats), "event")?;
        let email = validate_email(email)?;
        let person = self.account_by_email(&email).await?.ok_or_else(|| {
            Error::rule("no_account", "no BackOps account uses that email; ask the person to sign up first")
        })?;
        // Slots are keys: if two assignments race for the last free slot, one CREATE fails
        // and that request tries again, finding no free slot. Two assignments of one person
        // to two slots (on two nodes at once) are judged on the person's seats: the later
        // commit fails and tries again, finding the person seated.
        let key = judged_key(Kind::Seat, &person.id);
        for _ in 0..4 {
            let seen = self.judgement(&ev.id, &key).await?;
            let current = self.load_seats(&ev).await?;
            if current.seats.iter().any(|x| x.person == person.id) {
                return Err(Error::conflict("already_seated", "that person already holds a seat on this event"));
            }
            let Some(slot) = (0..current.limit).find(|n| !current.seats.iter().any(|x| x.slot == *n)) else {
                return Err(Error::conflict(
                    "seats_exhausted",
                    format!(
                        "all {} Event Pro seats of this event are taken (the limit is the organization's {} active Event Pro licenses); release a seat or buy more",
                        current.limit, current.limit
                    ),
                ));
            };
            let seat = Seat {
                event: ev.id.clone(),
                slot,
                person: person.id.clone(),
                assigned_by: actor.into(),
                created_at: time::now(),
            };
            match self
                .commit(
                    &ev.id,
                    vec![
                        Write::create(Kind::Seat, &seat_key(&ev.id, slot), &seat, Vec::new())?
                            .about(&person.id)
                            .judged_on(&key, seen),
                    ],
                )
                .await
            {
                Ok(_) => return Ok(seat),
                Err(Error::Conflict { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::conflict("busy", "seats changed while assigning; try again"))
    }

    pub async fn release_seat(&self, actor: &str, event: &str, person: &str) -> Result<()> {
        let (ev, s) = self.standing(actor, event).await?;
        require(decide(&s, Action::Write, Target::Seats), "event")?;
        let key = judged_key(Kind::Seat, person);
        let seen = self.judgement(&ev.id, &key).await?;
        let seats = self.load_seats(&ev).await?;
        let Some(seat) = seats.seats.iter().find(|x| x.person == person) else {
            return Err(Error::not_found("seat"));
        };
        let w = Write::delete(Kind::Seat, &seat_key(&ev.id, seat.slot), Vec::new()).about(person).judged_on(&key, seen);
        self.commit(&ev.id, vec![w]).await?;
        Ok(())
    }
}

pub(super) fn seat_key(event: &str, slot: i64) -> String {
    format!("{event}|{slot}")
}
