//! Organizations (personal and team), their people, billing and licenses.

use serde::Deserialize;
use serde_json::json;

use crate::{
    Engine, Error, Result,
    access::{Decision, OrgAction, OrgRole, decide_org},
    accounts::{validate_email, validate_name},
    model::{
        Billing, BillingAddress, License, LicenseKind, LicenseStatus, Org, OrgKind, OrgMember, OrgWithRole,
        PaymentMethod, new_id,
    },
    store::on_duplicate,
    time,
};

/// Most licenses of one kind bought in one purchase.
pub const LICENSE_QUANTITY_MAX: i64 = 10_000;
/// Longest accepted payment-provider token.
pub const PROVIDER_TOKEN_LEN_MAX: usize = 200;
/// Longest accepted address line.
pub const ADDRESS_FIELD_LEN_MAX: usize = 200;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurchaseInput {
    pub kind: LicenseKind,
    pub quantity: i64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleInput {
    pub role: OrgRole,
}

const ORG_FIELDS: &str = "record::id(id) AS id, name, kind, created_by, created_at";
const LICENSE_FIELDS: &str =
    "record::id(id) AS id, org, kind, quantity, status, purchased_by, created_at, activate_at, activated_at";

/// Turns a decision about an organization into the error the caller may see.
pub(crate) fn org_gate(decision: Decision) -> Result<()> {
    match decision {
        Decision::Allow => Ok(()),
        Decision::Hidden => Err(Error::not_found("organization")),
        Decision::ReadOnly | Decision::Denied => {
            Err(Error::forbidden("org_admin_required", "only the organization's owners and admins can do this"))
        }
    }
}

/// A change of a person's role in an organization changes their standing in each of its
/// events. In the same transaction as the change, every event of the organization gets one
/// entry in its change log (`Op::Role`, `$note`: the entry's JSON text, the same for every
/// event) at the next seq, and its access version is bumped (see `crate::cache`). The feeds of
/// every node read the entry in order with the rest, so a session narrows or widens at that
/// point, and a resume from before it knows the role changed. `$org` is the organization;
/// returns the events.
const ROLE_NOTES: &str = "LET $events = (SELECT VALUE record::id(id) FROM event WHERE org = $org);
     FOR $e IN $events {
         LET $n = (UPSERT type::record('event_seq', $e) SET n = (n ?? 0) + 1, access = (access ?? 0) + 1 RETURN VALUE n)[0];
         CREATE type::record('change', [$e, $n]) CONTENT { first: $n, entries: $note, about: [0] } RETURN NONE;
     };";

/// The log entry of `person`'s role in `org` going from `before` to `after`, as a page's
/// entries text (see [`ROLE_NOTES`]).
fn role_note(org: &str, person: &str, before: Option<OrgRole>, after: Option<OrgRole>) -> Result<String> {
    let entry = crate::changes::Change {
        event: String::new(),
        seq: 0,
        kind: crate::kind::Kind::Event,
        record: format!("{org}|{person}"),
        op: crate::changes::Op::Role,
        collaborators_before: Vec::new(),
        collaborators_after: Vec::new(),
        subject: Some(person.to_string()),
        data: Some(json!({ "before": before, "after": after })),
        origin: None,
        at: time::now(),
    };
    let mut v = serde_json::to_value(&entry)?;
    if let Some(m) = v.as_object_mut() {
        m.remove("seq");
        m.remove("event");
    }
    Ok(serde_json::to_string(&[v])?)
}

/// A member removed or changed by someone else meanwhile is "not found".
fn gone_member(e: Error) -> Error {
    match e {
        Error::Internal(m) if m.contains("backops:record_missing") => Error::not_found("member"),
        other => other,
    }
}

impl Engine {
    /// Runs `statement` (which changes `person`'s role in `org` from `before` to `after`) in
    /// one transaction with the role's entries in the logs of the organization's events, then
    /// wakes those events' feeds. `vars` are the statement's parameters.
    async fn change_org_role(
        &self,
        org: &str,
        person: &str,
        (before, after): (Option<OrgRole>, Option<OrgRole>),
        statement: &str,
        mut vars: serde_json::Value,
    ) -> Result<()> {
        vars["org"] = json!(org);
        vars["note"] = json!(role_note(org, person, before, after)?);
        let sql = format!(
            "BEGIN TRANSACTION;\n{statement};\n{ROLE_NOTES}\nRETURN {{ events: $events }};\nCOMMIT TRANSACTION;"
        );
        #[derive(Deserialize)]
        struct Noted {
            events: Vec<String>,
        }
        let noted: Option<Noted> = self.store.run(&sql, vars).await?.last_value()?;
        let events = noted.map(|n| n.events).unwrap_or_default();
        self.shared.access.forget_all();
        for e in events {
            // Nobody listening is fine: the feeds also poll.
            let _ = self.commits.send((e, 0));
        }
        Ok(())
    }

    pub(crate) async fn org_role(&self, person: &str, org: &str) -> Result<Option<OrgRole>> {
        self.store
            .run(
                "SELECT VALUE role FROM type::record('org_member', $org + '|' + $person)",
                json!({ "org": org, "person": person }),
            )
            .await?
            .value(0)
    }

    /// Checks `action` on `org` for `actor` and returns the organization and actor's role.
    async fn org_for(&self, actor: &str, org: &str, action: OrgAction) -> Result<(Org, OrgRole)> {
        let role = self.org_role(actor, org).await?;
        org_gate(decide_org(role, action))?;
        let found: Option<Org> = self
            .store
            .run(&format!("SELECT {ORG_FIELDS} FROM type::record('org', $org)"), json!({ "org": org }))
            .await?
            .first(0)?;
        match (found, role) {
            (Some(o), Some(r)) => Ok((o, r)),
            _ => Err(Error::not_found("organization")),
        }
    }

    /// Creates a team organization with `actor` as its owner.
    pub async fn create_team_org(&self, actor: &str, name: &str) -> Result<Org> {
        let name = validate_name("name", name)?;
        let org = Org { id: new_id(), name, kind: OrgKind::Team, created_by: actor.into(), created_at: time::now() };
        self.store
            .run(
                "BEGIN TRANSACTION;
                 CREATE type::record('org', $id) CONTENT { name: $name, kind: 'team', created_by: $by, created_at: $now };
                 CREATE type::record('org_member', $id + '|' + $by) CONTENT { org: $id, person: $by, role: 'owner', created_at: $now };
                 COMMIT TRANSACTION;",
                json!({ "id": org.id, "name": org.name, "by": actor, "now": org.created_at }),
            )
            .await?;
        Ok(org)
    }

    /// Every organization `actor` belongs to, personal first.
    pub async fn list_orgs(&self, actor: &str) -> Result<Vec<OrgWithRole>> {
        let mut rows = self
            .store
            .run(
                "SELECT role, org FROM org_member WHERE person = $p;
                 SELECT record::id(id) AS id, name, kind, created_by, created_at
                     FROM (SELECT VALUE type::record('org', org) FROM org_member WHERE person = $p);",
                json!({ "p": actor }),
            )
            .await?;
        #[derive(Deserialize)]
        struct R {
            role: OrgRole,
            org: String,
        }
        let roles: Vec<R> = rows.all(0)?;
        let orgs: Vec<Org> = rows.all(1)?;
        let mut out: Vec<OrgWithRole> = orgs
            .into_iter()
            .filter_map(|org| roles.iter().find(|r| r.org == org.id).map(|r| OrgWithRole { role: r.role, org }))
            .collect();
        out.sort_by(|a, b| {
            (a.org.kind != OrgKind::Personal, &a.org.created_at)
                .cmp(&(b.org.kind != OrgKind::Personal, &b.org.created_at))
        });
        Ok(out)
    }

    pub async fn get_org(&self, actor: &str, org: &str) -> Result<OrgWithRole> {
        let (org, role) = self.org_for(actor, org, OrgAction::View).await?;
        Ok(OrgWithRole { org, role })
    }

    pub async fn rename_org(&self, actor: &str, org: &str, name: &str) -> Result<Org> {
        let (mut o, _) = self.org_for(actor, org, OrgAction::Manage).await?;
        o.name = validate_name("name", name)?;
        self.store
            .run("UPDATE type::record('org', $id) SET name = $name", json!({ "id": o.id, "name": o.name }))
            .await?
            .written::<serde_json::Value>(0)?;
        Ok(o)
    }

    pub async fn list_org_members(&self, actor: &str, org: &str) -> Result<Vec<OrgMember>> {
        self.org_for(actor, org, OrgAction::View).await?;
        // Members, then the roles still waiting for their person's email.
        let mut rows = self
            .store
            .run(
                "SELECT person, role, type::record('account', person).email AS email,
                        type::record('account', person).name AS name, created_at
                 FROM org_member WHERE org = $org ORDER BY created_at;
                 SELECT person, role, email, type::record('account', person).name AS name, created_at, true AS pending
                 FROM org_pending WHERE org = $org ORDER BY created_at;",
                json!({ "org": org }),
            )
            .await?;
        let mut members: Vec<OrgMember> = rows.all(0)?;
        members.extend(rows.all::<OrgMember>(1)?);
        Ok(members)
    }

    /// Adds an existing account to a team organization.
    pub async fn add_org_member(&self, actor: &str, org: &str, email: &str, role: OrgRole) -> Result<OrgMember> {
        let action = if role == OrgRole::Owner { OrgAction::ManageOwners } else { OrgAction::Manage };
        let (o, _) = self.org_for(actor, org, action).await?;
        if o.kind == OrgKind::Personal {
            return Err(Error::rule(
                "personal_org",
                "a personal organization is just its owner; create a team organization to work with others",
            ));
        }
        let email = validate_email(email)?;
        let (person, proven) = self.proven_account(&email).await?;
        let person = person.ok_or_else(|| {
            Error::rule("no_account", "no BackOps account uses that email; ask the person to sign up first")
        })?;
        if self.org_role(&person.id, org).await?.is_some() {
            return Err(Error::conflict("already_member", "that person is already in this organization"));
        }
        if !proven {
            // The role waits for the person to prove the address (see `crate::proof`).
            self.store
                .run(
                    "CREATE type::record('org_pending', $org + '|' + $p) CONTENT {
                         org: $org, person: $p, email: $email, role: $role, added_by: $by, created_at: $now }",
                    json!({ "org": org, "p": person.id, "email": email, "role": role, "by": actor, "now": time::now() }),
                )
                .await
                .map_err(|e| on_duplicate(e, "already_member", "that person's role already waits for their email"))?;
            return Ok(OrgMember { person: person.id, email: person.email, name: person.name, role, pending: true });
        }
        self.change_org_role(
            org,
            &person.id,
            (None, Some(role)),
            "CREATE type::record('org_member', $org + '|' + $p) CONTENT { org: $org, person: $p, role: $role, created_at: $now }",
            json!({ "p": person.id, "role": role, "now": time::now() }),
        )
        .await
        .map_err(|e| on_duplicate(e, "already_member", "that person is already in this organization"))?;
        Ok(OrgMember { person: person.id, email: person.email, name: person.name, role, pending: false })
    }

    /// Adds a role that waited for its person's email, now proven.
    pub(crate) async fn grant_waiting_role(&self, r: &crate::proof::WaitingRole) -> Result<()> {
        let key = format!("{}|{}", r.org, r.person);
        if self.org_role(&r.person, &r.org).await?.is_none() {
            self.change_org_role(
                &r.org,
                &r.person,
                (None, Some(r.role)),
                "CREATE type::record('org_member', $org + '|' + $p) CONTENT { org: $org, person: $p, role: $role, created_at: $now };
                 DELETE type::record('org_pending', $k)",
                json!({ "p": r.person, "role": r.role, "now": time::now(), "k": key }),
            )
            .await?;
        } else {
            self.store.run("DELETE type::record('org_pending', $k)", json!({ "k": key })).await?;
        }
        Ok(())
    }

    /// Changes a member's role. Only owners grant or take the owner role, and an
    /// organization always keeps at least one owner.
    pub async fn set_org_role(&self, actor: &str, org: &str, person: &str, role: OrgRole) -> Result<()> {
        let current = self.org_role(person, org).await?;
        let touches_owner = role == OrgRole::Owner || current == Some(OrgRole::Owner);
        let action = if touches_owner { OrgAction::ManageOwners } else { OrgAction::Manage };
        self.org_for(actor, org, action).await?;
        let Some(current) = current else { return Err(Error::not_found("member")) };
        if current == OrgRole::Owner && role != OrgRole::Owner {
            self.ensure_another_owner(org).await?;
        }
        self.change_org_role(
            org,
            person,
            (Some(current), Some(role)),
            "IF array::len(UPDATE type::record('org_member', $org + '|' + $p) SET role = $role RETURN VALUE id) = 0 {
                 THROW 'backops:record_missing'
             }",
            json!({ "p": person, "role": role }),
        )
        .await
        .map_err(gone_member)
    }

    pub async fn remove_org_member(&self, actor: &str, org: &str, person: &str) -> Result<()> {
        let current = self.org_role(person, org).await?;
        let action = if current == Some(OrgRole::Owner) { OrgAction::ManageOwners } else { OrgAction::Manage };
        // Anyone may leave an organization themselves.
        if actor != person {
            self.org_for(actor, org, action).await?;
        } else {
            self.org_for(actor, org, OrgAction::View).await?;
        }
        let Some(current) = current else {
            // A role still waiting for the person's email is withdrawn.
            let gone: Vec<serde_json::Value> = self
                .store
                .run(
                    "DELETE type::record('org_pending', $org + '|' + $p) RETURN BEFORE",
                    json!({ "org": org, "p": person }),
                )
                .await?
                .all(0)?;
            return if gone.is_empty() { Err(Error::not_found("member")) } else { Ok(()) };
        };
        if current == OrgRole::Owner {
            self.ensure_another_owner(org).await?;
        }
        self.change_org_role(
            org,
            person,
            (Some(current), None),
            "IF array::len(DELETE type::record('org_member', $org + '|' + $p) RETURN BEFORE) = 0 {
                 THROW 'backops:record_missing'
             }",
            json!({ "p": person }),
        )
        .await
        .map_err(gone_member)
    }

    async fn ensure_another_owner(&self, org: &str) -> Result<()> {
        let owners: Option<i64> = self
            .store
            .run("RETURN count(SELECT * FROM org_member WHERE org = $org AND role = 'owner')", json!({ "org": org }))
            .await?
            .value(0)?;
        if owners.unwrap_or(0) <= 1 {
            return Err(Error::rule("last_owner", "an organization must keep at least one owner"));
        }
        Ok(())
    }

    // ---- billing ----

    pub async fn billing(&self, actor: &str, org: &str) -> Result<Billing> {
        self.org_for(actor, org, OrgAction::Manage).await?;
        self.load_billing(org).await
    }

    /// The billing profile as shown to the organization: the provider token stays inside.
    async fn load_billing(&self, org: &str) -> Result<Billing> {
        let mut b: Billing = self
            .store
            .run("SELECT payment_method, address FROM type::record('billing', $org)", json!({ "org": org }))
            .await?
            .first(0)?
            .unwrap_or_default();
        if let Some(pm) = &mut b.payment_method {
            pm.provider_token.clear();
        }
        Ok(b)
    }

    /// Stores a payment method: the provider's token and the last four digits, never a
    /// full card or account number.
    pub async fn set_payment_method(&self, actor: &str, org: &str, pm: PaymentMethod) -> Result<Billing> {
        self.org_for(actor, org, OrgAction::Manage).await?;
        let token = pm.provider_token.trim().to_string();
        if token.is_empty() || token.len() > PROVIDER_TOKEN_LEN_MAX {
            return Err(Error::invalid(format!(
                "provider_token must be the payment provider's token (1 to {PROVIDER_TOKEN_LEN_MAX} characters)"
            )));
        }
        let digits = token.chars().filter(char::is_ascii_digit).count();
        if digits >= 8 && token.chars().all(|c| c.is_ascii_digit() || c == ' ' || c == '-') {
            return Err(Error::invalid(
                "provider_token looks like a card or account number; send the payment provider's token instead, never the number",
            ));
        }
        if pm.last4.len() != 4 || !pm.last4.chars().all(|c| c.is_ascii_digit()) {
            return Err(Error::invalid("last4 must be the last four digits of the card or account"));
        }
        let pm = PaymentMethod { provider_token: token, ..pm };
        self.upsert_billing(org, "payment_method", serde_json::to_value(&pm)?).await
    }

    /// Stores the billing address; the zip code is required.
    pub async fn set_billing_address(&self, actor: &str, org: &str, a: BillingAddress) -> Result<Billing> {
        self.org_for(actor, org, OrgAction::Manage).await?;
        let req = |field: &str, v: &str| -> Result<String> {
            let v = v.trim();
            if v.is_empty() {
                return Err(Error::rule("missing_field", format!("{field} is required in the billing address")));
            }
            if v.chars().count() > ADDRESS_FIELD_LEN_MAX {
                return Err(Error::invalid(format!("{field} must be at most {ADDRESS_FIELD_LEN_MAX} characters")));
            }
            Ok(v.to_string())
        };
        let opt = |field: &str, v: Option<String>| -> Result<Option<String>> {
            match v.as_deref().map(str::trim) {
                None | Some("") => Ok(None),
                Some(s) => req(field, s).map(Some),
            }
        };
        let a = BillingAddress {
            name: opt("name", a.name)?,
            line1: req("line1", &a.line1)?,
            line2: opt("line2", a.line2)?,
            city: req("city", &a.city)?,
            region: opt("region", a.region)?,
            zip: req("zip", &a.zip).map_err(|_| Error::rule("missing_zip", "a zip code is required for billing"))?,
            country: req("country", &a.country)?,
        };
        let mut v = serde_json::to_value(&a)?;
        if let Some(m) = v.as_object_mut() {
            m.retain(|_, x| !x.is_null());
        }
        self.upsert_billing(org, "address", v).await
    }

    async fn upsert_billing(&self, org: &str, field: &str, value: serde_json::Value) -> Result<Billing> {
        self.store
            .run(
                &format!("UPSERT type::record('billing', $org) SET org = $org, {field} = $v, updated_at = $now"),
                json!({ "org": org, "v": value, "now": time::now() }),
            )
            .await?
            .written::<serde_json::Value>(0)?;
        self.load_billing(org).await
    }

    // ---- licenses ----

    /// Buys `quantity` licenses of a kind inside `org`. Needs a payment method and a billing
    /// address with a zip code. The license starts `pending` and turns `active` after the
    /// activation step.
    pub async fn purchase_license(&self, actor: &str, org: &str, input: PurchaseInput) -> Result<License> {
        self.org_for(actor, org, OrgAction::Manage).await?;
        if !(1..=LICENSE_QUANTITY_MAX).contains(&input.quantity) {
            return Err(Error::invalid(format!("quantity must be 1 to {LICENSE_QUANTITY_MAX}")));
        }
        let billing = self.load_billing(org).await?;
        let mut missing = Vec::new();
        if billing.payment_method.is_none() {
            missing.push("a payment method");
        }
        match &billing.address {
            None => missing.push("a billing address with a zip code"),
            Some(a) if a.zip.trim().is_empty() => missing.push("a zip code in the billing address"),
            Some(_) => {}
        }
        if !missing.is_empty() {
            return Err(Error::rule(
                "billing_incomplete",
                format!("the purchase needs {} first", missing.join(" and ")),
            ));
        }
        let now = chrono::Utc::now();
        let delay = chrono::Duration::from_std(self.config.license_activation_delay).unwrap_or_default();
        let license = License {
            id: new_id(),
            org: org.into(),
            kind: input.kind,
            quantity: input.quantity,
            status: LicenseStatus::Pending,
            purchased_by: actor.into(),
            created_at: time::format(now),
            activate_at: time::format(now + delay),
            activated_at: None,
        };
        let mut content = serde_json::to_value(&license)?;
        if let Some(m) = content.as_object_mut() {
            m.remove("id");
            m.retain(|_, x| !x.is_null());
        }
        self.store
            .run("CREATE type::record('license', $id) CONTENT $c", json!({ "id": license.id, "c": content }))
            .await?
            .written::<serde_json::Value>(0)?;
        tracing::info!(license = %license.id, org, kind = ?license.kind, quantity = license.quantity, "license purchased");
        self.schedule_activation(license.id.clone(), self.config.license_activation_delay);
        Ok(license)
    }

    pub async fn list_licenses(&self, actor: &str, org: &str) -> Result<Vec<License>> {
        self.org_for(actor, org, OrgAction::View).await?;
        self.store
            .run(
                &format!("SELECT {LICENSE_FIELDS} FROM license WHERE org = $org ORDER BY created_at"),
                json!({ "org": org }),
            )
            .await?
            .all(0)
    }

    /// The license `id` if it belongs to `org`; a license of another organization is
    /// reported as not found.
    pub(crate) async fn org_license(&self, org: &str, id: &str) -> Result<Option<License>> {
        self.store
            .run(
                &format!("SELECT {LICENSE_FIELDS} FROM type::record('license', $id) WHERE org = $org"),
                json!({ "org": org, "id": id }),
            )
            .await?
            .first(0)
    }

    /// Total quantity of active Event Pro licenses in `org`: the number of seats on each
    /// of its events.
    pub(crate) async fn event_pro_slots(&self, org: &str) -> Result<i64> {
        Ok(self
            .store
            .run(
                "RETURN math::sum(SELECT VALUE quantity FROM license WHERE org = $org AND kind = 'event_pro' AND status = 'active')",
                json!({ "org": org }),
            )
            .await?
            .value(0)?
            .unwrap_or(0))
    }

    fn schedule_activation(&self, license: String, after: std::time::Duration) {
        let engine = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            if let Err(e) = engine.activate_license(&license).await {
                tracing::error!(%license, error = ?e, "license activation failed");
            }
        });
    }

    /// The activation step: pending → active. Idempotent.
    async fn activate_license(&self, id: &str) -> Result<()> {
        self.store
            .run(
                "UPDATE type::record('license', $id) SET status = 'active', activated_at = $now WHERE status = 'pending'",
                json!({ "id": id, "now": time::now() }),
            )
            .await?;
        tracing::info!(license = %id, "license active");
        Ok(())
    }

    /// Licenses still pending when the process stopped get their activation step again.
    pub(crate) async fn resume_pending_activations(&self) -> Result<()> {
        #[derive(Deserialize)]
        struct P {
            id: String,
            activate_at: String,
        }
        let pending: Vec<P> = self
            .store
            .run(
                "SELECT record::id(id) AS id, activate_at FROM license WHERE status = 'pending'",
                serde_json::Value::Null,
            )
            .await?
            .all(0)?;
        let now = time::now();
        for p in pending {
            let wait = chrono::DateTime::parse_from_rfc3339(&p.activate_at)
                .ok()
                .filter(|_| p.activate_at > now)
                .and_then(|t| (t.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().ok())
                .unwrap_or_default();
            self.schedule_activation(p.id, wait);
        }
        Ok(())
    }
}
