//! Drift made behind sync's back, and found: a document deleted from the collection and one
//! changed in it (through the API, which a `writable = true` collection allows), and a row
//! changed while the triggers were off (as a restore or a migration script might). Verify names
//! them; repair queues them, and the collection equals the table again.

use serde_json::{Value, json};

use super::{READY, SOURCE, Setup, assert_in_sync, post_json, wait_status};

#[tokio::test]
async fn verify_finds_drift_behind_syncs_back_and_repair_fixes_it() {
    let setup = Setup::new(&format!("{SOURCE}\n[people]\nwritable = true\n")).await;
    let db = setup.pg.client().await;
    db.batch_execute(
        "INSERT INTO profiles (id, name, city) SELECT i, 'person ' || i, 'Kyiv' FROM generate_series(1, 30) AS i",
    )
    .await
    .unwrap();
    let gw = setup.gateway(&[]);
    gw.wait_ready(READY).await;
    assert_in_sync(&gw, &setup.pg, "people").await;
    wait_status(&gw, "people", "idle", |s| s["queued"] == 0 && s["backfill"]["state"] == "done").await;
    let client = reqwest::Client::new();
    let clean = post_json(&client, &gw, "/collections/people/sync/verify", json!({})).await;
    assert_eq!((clean["missing"]["count"].clone(), clean["stale"]["count"].clone()), (json!(0), json!(0)));
    assert_eq!(
        (clean["rows"].clone(), clean["documents"].clone(), clean["extra"]["count"].clone()),
        (json!(30), json!(30), json!(0))
    );

    // Behind sync's back: in the collection ...
    let deleted = client.delete(gw.url("/collections/people/documents/7")).send().await.unwrap();
    assert_eq!(deleted.status(), 200);
    let changed = json!({"documents": [{"id": "8", "text": "not what the table says", "payload": {"city": "Kyiv"}}]});
    assert_eq!(client.put(gw.url("/collections/people/documents")).json(&changed).send().await.unwrap().status(), 200);
    // ... and in the table, with the triggers off.
    db.batch_execute(
        "ALTER TABLE profiles DISABLE TRIGGER USER;
         DELETE FROM profiles WHERE id = 9;
         INSERT INTO profiles (id, name) VALUES (31, 'restored without triggers');
         ALTER TABLE profiles ENABLE TRIGGER USER;",
    )
    .await
    .unwrap();

    let found = post_json(&client, &gw, "/collections/people/sync/verify", json!({"repair": false})).await;
    let drift = |kind: &str| (found[kind]["count"].clone(), found[kind]["ids"].clone());
    assert_eq!(drift("missing"), (json!(2), json!(["31", "7"])), "{found}");
    assert_eq!(drift("stale"), (json!(1), json!(["8"])), "{found}");
    assert_eq!(drift("extra"), (json!(1), json!(["9"])), "{found}");
    assert_eq!(found["queued"], 0, "without repair nothing is queued");

    let repaired = post_json(&client, &gw, "/collections/people/sync/verify", json!({"repair": true})).await;
    assert_eq!(repaired["queued"], 4, "{repaired}");
    assert_in_sync(&gw, &setup.pg, "people").await;
    let after: Value = post_json(&client, &gw, "/collections/people/sync/verify", json!({})).await;
    for kind in ["missing", "stale", "extra"] {
        assert_eq!(after[kind]["count"], 0, "{after}");
    }
    // Bad input is named.
    let response =
        client.post(gw.url("/collections/people/sync/verify")).json(&json!({"repiar": true})).send().await.unwrap();
    assert_eq!(response.status(), 422);
    let response = client.get(gw.url("/collections/unknown/sync")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.json::<Value>().await.unwrap()["code"], "not_synced");
}
