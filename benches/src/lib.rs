//! Shared set-up for the benchmarks: an engine with one organization, license and event,
//! ready for work.

use std::time::Duration;

use engine::{Engine, EngineConfig, NewAccount, NewEvent, PasswordHashing, PurchaseInput, model::*};

pub struct Fixture {
    pub engine: Engine,
    pub owner: String,
    pub event: String,
}

/// Opens an engine on `url` and prepares an event owned by a fresh account.
pub async fn fixture(url: &str) -> Fixture {
    let config = EngineConfig { license_activation_delay: Duration::ZERO, password_hashing: PasswordHashing::Fast };
    let engine = Engine::open(url, None, config).await.expect("open");
    let owner = engine
        .sign_up(NewAccount {
            email: "bench@example.test".into(),
            name: "Bench".into(),
            password: "benchmark pass".into(),
        })
        .await
        .expect("sign up")
        .id;
    let org = engine.list_orgs(&owner).await.expect("orgs")[0].org.id.clone();
    engine
        .set_payment_method(
            &owner,
            &org,
            PaymentMethod { kind: PaymentKind::Card, provider_token: "tok".into(), last4: "4242".into() },
        )
        .await
        .expect("card");
    engine
        .set_billing_address(
            &owner,
            &org,
            BillingAddress {
                name: None,
                line1: "1 Bench St".into(),
                line2: None,
                city: "Austin".into(),
                region: None,
                zip: "78701".into(),
                country: "US".into(),
            },
        )
        .await
        .expect("address");
    let license = engine
        .purchase_license(&owner, &org, PurchaseInput { kind: LicenseKind::EventPro, quantity: 5 })
        .await
        .expect("purchase")
        .id;
    let event = loop {
        match engine
            .create_event(
                &owner,
                &org,
                NewEvent {
                    name: "Bench Fest".into(),
                    default_collaborator_name: "Prod".into(),
                    license: license.clone(),
                },
            )
            .await
        {
            Ok(ev) => break ev.event.id,
            Err(engine::Error::Rule { .. }) => tokio::time::sleep(Duration::from_millis(5)).await,
            Err(e) => panic!("create event: {e:?}"),
        }
    };
    Fixture { engine, owner, event }
}
