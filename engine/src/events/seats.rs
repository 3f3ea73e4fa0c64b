//! The event's Event Pro seats: slot-numbered keys, as many as the organization's active
//! Event Pro quantity.

use serde_json::json;

use crate::{
    Engine, Error, Result,
    access::{Action, Target, decide, require},
    accounts::validate_email,
    kind::Kind,
    model::{Assigned, Event, PendingSeat, Seat, Seats},
    plan::{Write, judged_key},
    store::on_duplicate,
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
        let pending: Vec<PendingSeat> = self
            .store
            .run(
                "SELECT event, person, email, assigned_by, created_at FROM seat_pending WHERE event = $e ORDER BY created_at",
                json!({ "e": ev.id }),
            )
            .await?
            .all(0)?;
        Ok(Seats { limit, used: seats.len() as i64, seats, pending })
    }

    /// Gives `email`'s account one of the event's Event Pro seats. Anyone with an account
    /// may hold a seat, inside the organization or not. The seats are the organization's
    /// active Event Pro quantity; past it the assignment is refused. A person who has not
    /// proven the email yet gets the seat when they do: until then it waits, listed as
    /// pending, and takes no slot.
    pub async fn assign_seat(&self, actor: &str, event: &str, email: &str) -> Result<Assigned> {
        let (ev, s) = self.standing(actor, event).await?;
        require(decide(&s, Action::Write, Target::Seats), "event")?;
        let email = validate_email(email)?;
        let (person, proven) = self.proven_account(&email).await?;
        let person = person.ok_or_else(|| {
            Error::rule("no_account", "no BackOps account uses that email; ask the person to sign up first")
        })?;
        if proven {
            return Ok(Assigned::Seat(self.seat_person(&ev, &person.id, actor).await?));
        }
        let waiting = PendingSeat {
            event: ev.id.clone(),
            person: person.id.clone(),
            email,
            assigned_by: actor.into(),
            created_at: time::now(),
        };
        self.store
            .run(
                "CREATE type::record('seat_pending', $k) CONTENT $w",
                json!({ "k": format!("{}|{}", ev.id, person.id), "w": waiting }),
            )
            .await
            .map_err(|e| on_duplicate(e, "already_pending", "that person's seat already waits for their email"))?;
        Ok(Assigned::Pending(waiting))
    }

    /// Seats `person` on `event` in its first free slot (`by`: who assigned it). Access was
    /// checked by the caller.
    pub(crate) async fn seat_person(&self, ev: &Event, person: &str, by: &str) -> Result<Seat> {
        // Slots are keys: if two assignments race for the last free slot, one CREATE fails
        // and that request tries again, finding no free slot. Two assignments of one person
        // to two slots (on two nodes at once) are judged on the person's seats: the later
        // commit fails and tries again, finding the person seated.
        let key = judged_key(Kind::Seat, person);
        for _ in 0..4 {
            let seen = self.judgement(&ev.id, &key).await?;
            let current = self.load_seats(ev).await?;
            if current.seats.iter().any(|x| x.person == person) {
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
                person: person.into(),
                assigned_by: by.into(),
                created_at: time::now(),
            };
            match self
                .commit(
                    &ev.id,
                    vec![
                        Write::create(Kind::Seat, &seat_key(&ev.id, slot), &seat, Vec::new())?
                            .about(person)
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
            // A seat still waiting for the person's email is withdrawn.
            let gone: Vec<serde_json::Value> = self
                .store
                .run(
                    "DELETE type::record('seat_pending', $k) RETURN BEFORE",
                    json!({ "k": format!("{}|{person}", ev.id) }),
                )
                .await?
                .all(0)?;
            return if gone.is_empty() { Err(Error::not_found("seat")) } else { Ok(()) };
        };
        let w = Write::delete(Kind::Seat, &seat_key(&ev.id, seat.slot), Vec::new()).about(person).judged_on(&key, seen);
        self.commit(&ev.id, vec![w]).await?;
        Ok(())
    }
}

pub(super) fn seat_key(event: &str, slot: i64) -> String {
    format!("{event}|{slot}")
}
