//! The derived services work in a crate that renamed its keel dependency.

use engine::{Context, Keel, ListQuery};
use keel_renamed::{label, note};

async fn keel() -> Keel {
    let keel = Keel::builder()
        .database_url("sqlite::memory:")
        .connect()
        .await
        .expect("in-memory SQLite");
    keel.create_table(note::Entity).await.unwrap();
    keel.create_table(label::Entity).await.unwrap();
    keel
}

#[tokio::test]
async fn a_resource_derived_through_the_renamed_dependency_works() {
    let keel = keel().await;
    let notes = keel.service::<note::Entity>();
    let ctx = Context::actor("ada");
    let created = notes
        .create(
            &ctx,
            note::NewNote {
                body: "first".into(),
                pin: Some(engine::Redacted::new("1234".into())),
            },
        )
        .await
        .unwrap();
    assert!(!format!("{created:?}").contains("1234"));
    let updated = notes
        .update(
            &ctx,
            created.id,
            note::NotePatch::default()
                .body("second")
                .pin(None)
                .if_version(created.version),
        )
        .await
        .unwrap();
    assert_eq!(
        (updated.body.as_str(), updated.pin.is_none()),
        ("second", true)
    );
    let page = notes
        .list(&ctx, &ListQuery::new().filter("body : \"sec\""))
        .await
        .unwrap();
    assert_eq!(page.items, vec![updated.clone()]);
    let err = notes
        .create(
            &ctx,
            note::NewNote {
                body: String::new(),
                pin: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "VALIDATION_FAILED");
    notes.delete(&ctx, updated.id).await.unwrap();
    assert!(notes.find(&ctx, updated.id).await.unwrap().is_none());
    let history = keel
        .audit_log()
        .history::<note::Entity>(&ctx, updated.id, &Default::default())
        .await
        .unwrap();
    assert_eq!(history.items.len(), 3, "created, updated, deleted");
}

#[tokio::test]
async fn a_resource_with_an_explicit_crate_path_works() {
    let keel = keel().await;
    let labels = keel.service::<label::Entity>();
    let ctx = Context::actor("ada");
    let red = labels
        .create(
            &ctx,
            label::NewLabel {
                slug: "red".into(),
                colour: "#f00".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(labels.get(&ctx, "red".to_owned()).await.unwrap(), red);
    let err = labels
        .update(
            &ctx,
            "red".to_owned(),
            label::LabelPatch::default().colour("x".repeat(21)),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "VALIDATION_FAILED");
}
